"""SynthFaces: vrnkit's own morphable face model (a small 3DMM built from geometry, no scans).

One fixed-topology triangle mesh of the face region (forehead to under the chin, ear to ear; no
ears, no neck), in dense correspondence across all faces:

    vertices = mean + B_id @ identity + B_exp @ expression          (like the Basel Face Model)

Frame: millimetres, image-space axes (x right, y down, z toward the viewer), frontal face.
Origin: on the mid-sagittal plane (x = 0), at the height of the eye centres (y = 0), at the depth
of the corneas (z = 0). The nose tip is near (0, 39, 23), the chin near (0, 120, -15), the ears near
x = +-72, z = -90. The subject's right side is at x < 0 (image left in a frontal view). The mean
face and the identity spread are calibrated against published adult anthropometry, men and
women separately (synthfaces.anthropometry; docs/results/anthropometry.md).

The mesh (vrnkit.synthfaces.mesh) is a graph over a cylinder around a vertical axis, so it cannot fold;
special rows are the eyelid margins and the lips' meeting line. The mouth is a slit of three rows
(upper inner lip, mouth interior, lower inner lip) that opens when the jaw drops; an eye closes
when its upper-lid row moves down to the lower one. Identity and expression are smooth
displacement fields over the mean face (_ID_FIELDS, _EXP_FIELDS), evaluated once into the linear
bases B_id and B_exp; every other field moves the lid and slit rows rigidly, so the mouth and the
eyes open only through the expressions meant to open them.

>>> import numpy as np
>>> model = FaceModel.default()
>>> rng = np.random.default_rng(0)
>>> v = model.vertices(model.sample_identity(rng), EXPRESSIONS["surprise"])
>>> v.shape == (model.n_vertices, 3) and model.landmarks.shape == (68,)
True
"""
from __future__ import annotations

import functools

import numpy as np

from .mesh import (AXIS_Z, EYE_INNER, EYE_OUTER, EYE_X, I_LL, I_LO, I_M, I_UL, I_UP, MOUTH_HALF, MOUTH_Y,
                       NU, NV, bottom_edge, bump, grid_faces, mouth_open_profile, nose_height,
                       smoothstep, surface_radius, template)
from ..geometry import FLIP_PERMUTATION, OUTER_EYE_CORNERS

# ---------------------------------------------------------------------------------------------
# Displacement fields. Each takes the template dict t and returns (N, 3) mm for one unit of
# its parameter (one standard deviation for identity, full strength for expression).

def _local(t, dx=0.0, dy=0.0, dr=0.0):
    """Displacement from components along x (dx), down (dy) and away from the axis (dr: along
    z on the front of the face, sideways at the ears)."""
    dx, dy, dr = (np.broadcast_to(np.asarray(a, float), t["X"].shape) for a in (dx, dy, dr))
    return np.stack([dx, dy, 0 * dx], 1) + dr[:, None] * t["e_rho"]


def _b(t, cx, cy, rx, ry):
    """A bump on both sides of the face (at +-cx)."""
    return bump(t["ax"], t["y"], cx, cy, rx, ry)


def _scale(t, kx=0.0, ky=0.0, kz=0.0, origin=(0.0, 0.0, 0.0), w=1.0):
    """Scale by (1 + k) about ``origin`` with per-vertex weight w."""
    d = (t["points"] - origin) * np.array([kx, ky, kz])
    return d * np.asarray(w, float)[..., None] if np.ndim(w) else d * w


# Identity: name -> field (1 standard deviation). Signs: + means more (wider, longer, ...).
_ID_FIELDS = {
    # +1 male, -1 female (drawn as one or the other): half the adult sex difference of the 3D Facial
    # Norms (synthfaces.anthropometry): 3.4 % larger overall, a longer lower face, a wider nose.
    "sex": lambda t: (_scale(t, kx=0.034, ky=0.034, kz=0.034, origin=(0.0, 0.0, AXIS_Z))
                      + _local(t, dy=0.008 * np.clip(t["y"] - 48, 0, None) * smoothstep(90, 40, t["ax"]),
                               dx=0.03 * t["X"] * _b(t, 0, 42, 25, 15))),
    "face_width": lambda t: _scale(t, kx=0.022),
    "face_height": lambda t: _local(t, dy=0.045 * np.clip(t["y"], 0, None)),
    "face_depth": lambda t: _scale(t, kz=0.05, origin=(0, 0, AXIS_Z)),
    "forehead_height": lambda t: _local(t, dy=-5 * smoothstep(-20, -95, t["y"])),
    "forehead_slope": lambda t: _local(t, dr=-6 * smoothstep(-25, -95, t["y"]) ** 2),
    "brow_ridge": lambda t: _local(t, dr=2.2 * _b(t, 27, -19, 30, 10) + 1.2 * _b(t, 0, -15, 14, 9)),
    "eye_spacing": lambda t: _local(t, dx=2.0 * np.sign(t["x"]) * _b(t, EYE_X, 0, 26, 22)),
    "eye_size": lambda t: _scale(t, kx=0.06, ky=0.025, origin=t["eye_centre"], w=_b(t, EYE_X, 0, 34, 24)),
    "eye_depth": lambda t: _local(t, dr=-2.0 * _b(t, EYE_X, -1, 20, 14)),
    "eye_tilt": lambda t: _local(t, dy=-0.07 * (t["ax"] - EYE_X) * _b(t, EYE_X, 0, 34, 20)),
    "nose_length": lambda t: _local(t, dy=2.5 * smoothstep(6, 32, t["y"]) * smoothstep(90, 36, t["y"])
                                     * smoothstep(40, 15, t["ax"])),
    "nose_width": lambda t: _local(t, dx=0.16 * t["X"] * _b(t, 0, 38, 30, 18)),
    "nose_projection": lambda t: _local(t, dr=0.09 * nose_height(t["X"], t["y"])),
    "nose_bridge": lambda t: _local(t, dr=1.8 * _b(t, 0, 14, 9, 14)),
    "nose_tip_up": lambda t: _local(t, dy=-1.2 * _b(t, 0, 38, 15, 17), dr=0.8 * _b(t, 0, 33, 10, 8)),
    "cheekbones": lambda t: _local(t, dx=0.025 * t["x"] * _b(t, 52, 12, 24, 18), dr=2.2 * _b(t, 52, 12, 24, 18)),
    "cheek_fullness": lambda t: _local(t, dr=2.5 * _b(t, 42, 52, 24, 26)),
    "jaw_width": lambda t: _local(t, dx=0.065 * t["x"] * smoothstep(40, 95, t["y"]) * smoothstep(10, 50, t["ax"])),
    "jaw_angle": lambda t: _local(t, dy=3.0 * _b(t, 90, 90, 40, 30)),
    "chin_height": lambda t: _local(t, dy=3.5 * smoothstep(78, 118, t["y"]) * smoothstep(75, 20, t["ax"])),
    "chin_projection": lambda t: _local(t, dr=2.5 * _b(t, 0, 104, 30, 22)),
    "chin_width": lambda t: _local(t, dx=0.12 * t["X"] * _b(t, 0, 104, 40, 24)),
    "mouth_width": lambda t: _local(t, dx=0.11 * t["X"] * _b(t, 0, MOUTH_Y, 55, 24)),
    "mouth_height": lambda t: _local(t, dy=2.5 * _b(t, 0, MOUTH_Y, 50, 36)),
    "upper_lip": lambda t: _local(t, dy=-0.5 * _b(t, 0, 60, 26, 12), dr=1.1 * _b(t, 0, 62, 24, 7)),
    "lower_lip": lambda t: _local(t, dy=0.7 * _b(t, 0, 73, 26, 13), dr=1.3 * _b(t, 0, 71, 24, 8)),
    "face_roundness": lambda t: _local(t, dr=3.0 * smoothstep(20, 60, t["ax"]) * smoothstep(-40, 10, t["y"])
                                       * smoothstep(125, 70, t["y"])),
    # Antisymmetric: mirroring the face flips their sign (see FaceModel.mirror_parameters).
    "nose_deviation": lambda t: _local(t, dx=1.5 * _b(t, 0, 28, 20, 30)),
    "chin_deviation": lambda t: _local(t, dx=1.5 * smoothstep(55, 110, t["y"]) * smoothstep(90, 30, t["ax"])),
    "eye_height_asym": lambda t: _local(t, dy=1.0 * np.tanh(t["X"] / 8) * _b(t, EYE_X, 0, 30, 32)),
}
ANTISYMMETRIC_IDENTITY = ("nose_deviation", "chin_deviation", "eye_height_asym")


def _brow_weight(t):
    """1 at the brows, 0 at the upper-lid margin and at the top of the forehead."""
    y = t["y"]
    return np.where(y > -20, smoothstep(t["lid_up"] - 1, -20, y), smoothstep(-90, -20, y))


def _relid(t, dy, eyeball_rows):
    """Displacement that moves eye-region vertices by dy (mm) and keeps them on the lid or
    eyeball surface at their new height."""
    y1 = t["y"] + dy
    rho1 = surface_radius(t["theta"], y1, t["X"], eyeball_rows)
    return _local(t, dy=dy, dr=np.where(dy != 0, rho1 - t["rho"], 0.0))


def _lids(t, up, lo, cover=False):
    """Move the upper lid margin by up*h and the lower by lo*h (h: the eye's opening height),
    with the skin above / below following and the eyeball rows spread evenly between (on the
    eyeball, or with ``cover`` on the lid that closes over it)."""
    h, we, r = t["lid_lo"] - t["lid_up"], t["we"], t["rows"]
    f = np.clip((r - I_UP) / (I_LO - I_UP), 0, 1)
    above = smoothstep(t["lid_up"] - 13, t["lid_up"], t["y"]) * (r <= I_UP)
    below = smoothstep(t["lid_lo"] + 8, t["lid_lo"], t["y"]) * (r >= I_LO)
    inside = (r > I_UP) & (r < I_LO)
    dy = h * we * (up * above + lo * below + inside * (up * (1 - f) + lo * f))
    return _relid(t, dy, t["eyeball"] & (not cover))


def _jaw_open(t):
    """The jaw turns about the ear joints and slides forward; the lips part along the slit and
    the slit's middle row sinks into the mouth (dark interior)."""
    y, r = t["y"], t["rows"]
    s = mouth_open_profile(t["X"])
    step = np.where(r >= I_LL, 1.0, np.where(r == I_M, 0.5, 0.0))
    w = s * step + (1 - s) * smoothstep(45, 85, y)
    # Turning 0.25 rad about a hinge at (y, z) = (12, -72), ~82 mm behind the lips, with the
    # soft tissue taking the downward part evenly; sliding 7 mm forward (the joint glides).
    d = np.stack([0 * y, 0.25 * 82.0 + 0 * y, -0.25 * (y - 12.0) + 7.0], 1) * w[:, None]
    return d + _local(t, dr=-14.0 * s * (r == I_M))


def _upper_lip_raise(t):
    r = t["rows"]
    s = smoothstep(32, 5, t["ax"])
    lift = smoothstep(34, 58, t["y"]) * np.where(r <= I_UL, 1.0, np.where(r == I_M, 0.5, 0.0))
    return _local(t, dy=-3.5 * s * lift - 1.0 * _b(t, 20, 46, 14, 14), dr=0.8 * s * lift)


_EXP_FIELDS = {
    "jaw_open": _jaw_open,
    # As strong as an acted smile: the corners go ~6 mm out and ~7 mm up, the cheeks rise and
    # bulge, the nasolabial fold deepens (a weaker field changed under 1 % of a crop's pixels).
    "smile": lambda t: _local(t, dx=0.24 * t["x"] * _b(t, 27, 64, 28, 24), dy=-7.0 * _b(t, 27, 62, 24, 22)
                              - 3.0 * _b(t, 36, 35, 18, 16),
                              dr=-3.5 * _b(t, 27, 66, 12, 12) + 4.0 * _b(t, 38, 38, 18, 14) - 1.5 * _b(t, 22, 50, 6, 14)),
    "frown": lambda t: _local(t, dy=5.0 * _b(t, 26, 70, 16, 16) - 2.0 * _b(t, 0, 98, 20, 12),
                              dr=-1.0 * _b(t, 26, 70, 14, 14) + 1.0 * _b(t, 0, 98, 20, 12)),
    "pucker": lambda t: _local(t, dx=-0.25 * t["X"] * _b(t, 0, MOUTH_Y, 40, 24),
                               dr=5.0 * _b(t, 0, MOUTH_Y, 30, 16)),
    "lip_stretch": lambda t: _local(t, dx=0.13 * t["x"] * _b(t, 26, MOUTH_Y, 30, 24), dy=1.0 * _b(t, 26, 70, 18, 16),
                                    dr=-2.0 * _b(t, 26, MOUTH_Y, 14, 14)),
    "upper_lip_raise": _upper_lip_raise,
    "cheek_puff": lambda t: _local(t, dx=0.05 * t["x"] * _b(t, 42, 60, 24, 26), dr=5.0 * _b(t, 40, 60, 24, 26)),
    "brow_raise": lambda t: _local(t, dy=-6.0 * _brow_weight(t) * smoothstep(70, 40, t["ax"])),
    "brow_lower": lambda t: _local(t, dx=-0.1 * t["x"] * _brow_weight(t) * _b(t, 20, -18, 30, 25),
                                   dy=3.5 * _brow_weight(t) * smoothstep(70, 40, t["ax"]), dr=1.0 * _b(t, 0, -12, 16, 10)),
    "brow_inner_raise": lambda t: _local(t, dy=-5.0 * _brow_weight(t) * _b(t, 12, -20, 26, 40)),
    "eye_close": lambda t: _lids(t, 0.85, 0.0, cover=True),
    "eye_wide": lambda t: _lids(t, -0.3, 0.08),
    "nose_wrinkle": lambda t: _local(t, dy=-2.0 * _b(t, 12, 38, 14, 14) - 1.5 * _b(t, 0, 12, 16, 14),
                                     dr=0.8 * _b(t, 8, 10, 10, 10)),
}
# Fields that move the lid and lip rows on purpose; every other field moves them rigidly
# (the slit rows together, the eyeball rows as a blend of the two lids), so they never cross.
_OPENING_FIELDS = ("jaw_open", "upper_lip_raise", "eye_close", "eye_wide")
EXPRESSION_RANGE = (0.0, 1.0)
IDENTITY_RANGE = (-3.0, 3.0)

# The six basic expressions (and neutral) as mixtures of the expression parameters.
_EXPRESSION_MIX = {
    "neutral": {},
    # Strong, as acted (BU-4DFE's expressions are posed at their peak).
    "anger": {"brow_lower": 1.0, "eye_wide": 0.35, "frown": 0.6, "pucker": 0.35, "nose_wrinkle": 0.35},
    "disgust": {"nose_wrinkle": 1.0, "upper_lip_raise": 1.0, "brow_lower": 0.6, "frown": 0.7, "eye_close": 0.35},
    "fear": {"brow_raise": 0.7, "brow_inner_raise": 0.9, "eye_wide": 1.0, "lip_stretch": 1.0, "jaw_open": 0.45},
    "happiness": {"smile": 1.0, "eye_close": 0.35, "jaw_open": 0.3, "cheek_puff": 0.25},
    "sadness": {"brow_inner_raise": 1.0, "frown": 1.0, "eye_close": 0.3, "pucker": 0.25},
    "surprise": {"brow_raise": 1.0, "eye_wide": 1.0, "jaw_open": 1.0},
}
IDENTITY_NAMES = tuple(_ID_FIELDS)
EXPRESSION_NAMES = tuple(_EXP_FIELDS)
EXPRESSIONS = {k: np.array([mix.get(n, 0.0) for n in EXPRESSION_NAMES], np.float32)
               for k, mix in _EXPRESSION_MIX.items()}


def _pin_openings(t, d):
    """Make a smooth field move the slit rows together and the eyeball rows as a blend of the
    two lid margins, so it never opens, closes or folds the mouth or the eyes. d: (N, 3)."""
    g = d.reshape(NV, NU, 3).copy()
    wm = t["wm"].reshape(NV, NU)[0][:, None]
    for r in (I_UL, I_LL):
        g[r] = wm * g[I_M] + (1 - wm) * g[r]
    we = t["we"].reshape(NV, NU)[0][:, None]
    for r in range(I_UP + 1, I_LO):
        f = (r - I_UP) / (I_LO - I_UP)
        g[r] = we * ((1 - f) * g[I_UP] + f * g[I_LO]) + (1 - we) * g[r]
    return g.reshape(-1, 3)


def _basis(t, fields):
    """(3N, K) float32 matrix whose column k is field k flattened (x0, y0, z0, x1, ...)."""
    cols = []
    for name, field in fields.items():
        d = field(t)
        if name not in _OPENING_FIELDS:
            d = _pin_openings(t, d)
        cols.append(d.reshape(-1))
    return np.stack(cols, 1).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Landmarks: targets on the right half (subject's right, x < 0) as (X arc mm, y mm, row or None);
# the left half is their mirror image. Jaw points are given by angle (degrees) around the axis.
# As in the iBUG-68 markup (300-W), the jaw line starts on the face's outline in front of the ear
# at the height of the outer eye corners (0), ends at the chin (8: where the mesh's jaw line turns
# under, mesh.surface_radius) and its points are evenly spaced along the outline between.
_JAW = [(-80, 0), (-78, 19.5), (-75.5, 40.5), (-71.5, 60), (-63, 79.5), (-50.5, 96.5), (-36, 108), (-18.5, 116.5),
        (0, 120)]
_RIGHT = {
    17: (-50, -17), 18: (-41, -23), 19: (-32, -25.5), 20: (-23, -25), 21: (-14, -22),
    27: (0, -4), 28: (0, 10), 29: (0, 24), 30: (0, 37),  # 30: the nose tip, the front-most point (pronasale)
    31: (-13, 41.5), 32: (-6.5, 43.5), 33: (0, 45),
    36: (-EYE_OUTER, None, (I_UP + I_LO) // 2), 37: (-(EYE_INNER + 2 * EYE_OUTER) / 3, None, I_UP), 38: (-(2 * EYE_INNER + EYE_OUTER) / 3, None, I_UP),
    39: (-EYE_INNER, None, (I_UP + I_LO) // 2), 40: (-(2 * EYE_INNER + EYE_OUTER) / 3, None, I_LO), 41: (-(EYE_INNER + 2 * EYE_OUTER) / 3, None, I_LO),
    48: (-MOUTH_HALF - 1, None, I_M), 49: (-15, "up"), 50: (-5, "up"), 51: (0, "up"),
    57: (0, "lo"), 58: (-6, "lo"), 59: (-15, "lo"),
    # The inner lip's 61 and 67 lie in line with the outer lip's 50 and 58, as in the iBUG markup.
    60: (-MOUTH_HALF + 2, None, I_M), 61: (-6, None, I_UL), 62: (0, None, I_UL),
    66: (0, None, I_LL), 67: (-6, None, I_LL),
}


def _landmark_indices(t):
    """(68,) int64 vertex index of each iBUG landmark (0-based), mirror-consistent."""
    col_of = lambda X: int(np.argmin(np.abs(t["X"][:NU] - X)))  # noqa: E731
    col_of_theta = lambda deg: int(np.argmin(np.abs(t["theta"][:NU] - np.radians(deg))))  # noqa: E731
    idx = np.full(68, -1)
    for k, (deg, y) in enumerate(_JAW):
        c = col_of_theta(deg)
        idx[k] = c + NU * int(np.argmin(np.abs(t["y"][c::NU] - y)))
    for k, target in _RIGHT.items():
        c = col_of(target[0])
        if len(target) == 3:
            idx[k] = target[2] * NU + c
            continue
        y = target[1]
        if isinstance(y, str):  # the outer lip contour (vermilion border)
            cc = np.clip(1 - (target[0] / MOUTH_HALF) ** 2, 0, 1)
            bow = 1.3 * np.exp(-((abs(target[0]) - 5) / 3) ** 2) - 0.8 * np.exp(-(target[0] / 2) ** 2)
            y = MOUTH_Y - (8 + bow) * cc ** 0.45 if y == "up" else MOUTH_Y + 10 * cc ** 0.55
        idx[k] = c + NU * int(np.argmin(np.abs(t["y"][c::NU] - y)))
    mirror = _mirror_indices()
    for k in range(68):
        j = FLIP_PERMUTATION[k]
        if idx[k] < 0:
            idx[k] = mirror[idx[j]]
    return idx


def _mirror_indices():
    """(N,) vertex permutation: vertex i of a mirrored face is the mirror image of vertex mirror[i]."""
    k = np.arange(NV * NU)
    return (k // NU) * NU + (NU - 1 - k % NU)


def _face_region(t):
    """(N,) bool: the face without the far sides and under the jaw (the NME region)."""
    jaw = bottom_edge(t["theta"]) - 10
    return (np.abs(t["theta"]) < np.radians(72)) & (t["y"] > -70) & (t["y"] < jaw)


# ---------------------------------------------------------------------------------------------
# The model

SPARSE_STEP = 5  # the sparse face for direct vertex regression: every 5th row and column (591 vertices)


class FaceModel:
    """The SynthFaces morphable model: a fixed mesh, its mean and two linear bases.

    Attributes: faces (M, 3) int32; mean (N, 3) float32 mm; identity_basis (3N, K_id) and
    expression_basis (3N, K_exp) float32; identity_names, expression_names; landmarks (68,) vertex
    indices in iBUG order; outer_eye_corners (2,) vertex indices (landmarks 36 and 45); face_region
    (K,) vertex indices (the NME region) and region_faces (R, 3) its triangles, numbered within it (so
    that ``vertices[face_region]`` with ``region_faces`` is a mesh); sparse_region (591,), sparse_faces
    and sparse_mirror: the same for every fifth row and column (what direct vertex regression predicts;
    sparse_mirror renumbers them for a mirrored face); mirror (N,) permutation (see mirror_vertices); uv (N, 2) float32
    grid coordinates (column, row) for texture look-ups; grid_shape (rows, columns).
    Build it once with ``FaceModel.default()`` (cached; about a second).
    """

    def __init__(self):
        t = template()
        self.grid_shape = (NV, NU)
        self.faces = grid_faces()
        self.mean = t["points"].astype(np.float32)
        self.identity_names, self.expression_names = IDENTITY_NAMES, EXPRESSION_NAMES
        # Stored (K, 3N) so that vertices() is a plain sum over rows (einsum: no BLAS threads,
        # which oversubscribe the cores of data-loader workers); exposed as (3N, K) views.
        self._id_rows = np.ascontiguousarray(_basis(t, _ID_FIELDS).T)
        self._exp_rows = np.ascontiguousarray(_basis(t, _EXP_FIELDS).T)
        self.identity_basis, self.expression_basis = self._id_rows.T, self._exp_rows.T
        self.landmarks = _landmark_indices(t)
        self.outer_eye_corners = self.landmarks[list(OUTER_EYE_CORNERS)]
        self.face_region = np.flatnonzero(_face_region(t))
        inside = np.full(len(self.mean), -1)
        inside[self.face_region] = np.arange(len(self.face_region))
        self.region_faces = inside[self.faces[(inside[self.faces] >= 0).all(1)]].astype(np.int32)
        coarse = grid_faces(SPARSE_STEP)
        coarse = coarse[(inside[coarse] >= 0).all(1)]
        self.sparse_region = np.unique(coarse)
        position = np.full(len(self.mean), -1)
        position[self.sparse_region] = np.arange(len(self.sparse_region))
        self.sparse_faces = position[coarse].astype(np.int32)
        self.mirror = _mirror_indices()
        self.sparse_mirror = position[self.mirror[self.sparse_region]]  # the region is symmetric: all >= 0
        self.uv = np.stack([t["cols"], t["rows"]], 1).astype(np.float32)
        self._id_sign = np.array([-1.0 if n in ANTISYMMETRIC_IDENTITY else 1.0 for n in IDENTITY_NAMES])
        self._sex = IDENTITY_NAMES.index("sex")

    @classmethod
    @functools.lru_cache(maxsize=1)
    def default(cls) -> "FaceModel":
        return cls()

    @property
    def n_vertices(self) -> int:
        return len(self.mean)

    # -- parameters ------------------------------------------------------------------------
    def check_identity(self, identity) -> np.ndarray:
        """Validate (K_id,) identity parameters (standard deviations, each in IDENTITY_RANGE)."""
        return _check(identity, self.identity_names, IDENTITY_RANGE, "identity")

    def check_expression(self, expression) -> np.ndarray:
        """Validate (K_exp,) expression parameters (strengths, each in EXPRESSION_RANGE)."""
        return _check(expression, self.expression_names, EXPRESSION_RANGE, "expression")

    def vertices(self, identity=None, expression=None) -> np.ndarray:
        """(N, 3) float32 mesh vertices (mm, frontal model frame) for the given parameters
        (None = the mean identity / neutral expression)."""
        v = self.mean.reshape(-1)
        if identity is not None:  # float32 all through: one small matrix-vector product each
            v = v + np.einsum("k,kn->n", self.check_identity(identity).astype(np.float32), self._id_rows)
        if expression is not None:
            v = v + np.einsum("k,kn->n", self.check_expression(expression).astype(np.float32), self._exp_rows)
        return v.reshape(-1, 3)

    def sample_identity(self, rng, *, scale: float = 1.0) -> np.ndarray:
        """Random identity: normal in standard-deviation units, clipped to +-2.5; the
        asymmetry parameters are drawn small (faces are nearly symmetric); "sex" is +1 (male) or
        -1 (female), half and half."""
        sd = np.where(self._id_sign < 0, 0.5, 1.0) * scale
        identity = np.clip(rng.normal(0.0, sd), -2.5, 2.5)
        identity[self._sex] = rng.choice([-1.0, 1.0])
        return identity.astype(np.float32)

    def sex_of(self, identity) -> str:
        """ "male" or "female": the sign of an identity's "sex" parameter."""
        return "male" if self.check_identity(identity)[self._sex] > 0 else "female"

    def sample_expression(self, rng, label: str | None = None) -> np.ndarray:
        """Random expression: one of EXPRESSIONS (``label``, or a uniform choice) at a random
        intensity, with a little of every other expression parameter mixed in."""
        if label is None:
            label = list(EXPRESSIONS)[rng.integers(len(EXPRESSIONS))]
        if label not in EXPRESSIONS:
            raise ValueError(f"unknown expression {label!r}; expected one of {list(EXPRESSIONS)}")
        e = EXPRESSIONS[label] * rng.uniform(0.5, 1.1) + rng.exponential(0.06, len(self.expression_names))
        return np.clip(e, *EXPRESSION_RANGE).astype(np.float32)

    # -- mirror symmetry -------------------------------------------------------------------
    def mirror_vertices(self, vertices) -> np.ndarray:
        """The mirror image (x -> -x) of a face, in this mesh's vertex order."""
        v = np.asarray(vertices)[self.mirror].copy()
        v[:, 0] *= -1
        return v

    def mirror_parameters(self, identity, expression=None):
        """Parameters of the mirrored face: the antisymmetric identity parameters change sign
        (the expression fields are all symmetric). Returns (identity, expression)."""
        ident = self.check_identity(identity) * self._id_sign
        return ident.astype(np.float32), None if expression is None else self.check_expression(expression)


def _check(values, names, bounds, what) -> np.ndarray:
    """Parameter vector -> float64 (K,), or ValueError saying what was expected."""
    a = np.asarray(values, dtype=np.float64)
    if a.shape != (len(names),):
        raise ValueError(f"{what} parameters must have shape ({len(names)},) (one per name in "
                         f"{what}_names); got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} parameters must be finite; got NaN/inf at {[names[i] for i in np.nonzero(~np.isfinite(a))[0]]}")
    lo, hi = bounds
    bad = np.nonzero((a < lo - 1e-6) | (a > hi + 1e-6))[0]
    if len(bad):
        shown = ", ".join(f"{names[i]}={a[i]:.3g}" for i in bad[:4])
        raise ValueError(f"{what} parameters must lie in [{lo}, {hi}]; got {shown}")
    return a
