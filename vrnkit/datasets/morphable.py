"""The morphable model behind 300W-LP and AFLW2000-3D: 3DDFA's cut of the Basel Face Model.

Both datasets describe each face by parameters of one linear model (53,215 vertices):

    mesh = (mu_shape + mu_exp) + w @ Shape_Para + w_exp @ Exp_Para      (3N values)

reshaped to 3 x N in Fortran order (x1, y1, z1, x2, ...), in model units (micrometres), with
x right, y up, z toward the viewer. Its pose in the photo is 3DDFA's (:func:`model_to_photo`).

The model files are not redistributable; get them once and put them in one folder
(``vrnkit prepare ... --model DIR``). Either of:

* 3DDFA's files: ``Model_Shape.mat`` (mu_shape (3N, 1), w (3N, 199), sigma (199, 1),
  tri (3, M) and keypoints (1, 68), both 1-based) made by 3DDFA's ModelGenerate.m from the Basel
  Face Model, and ``Model_Expression.mat`` (mu_exp (3N, 1), w_exp (3N, 29), sigma_exp (29, 1)).
* The Basel Face Model 2009's ``01_MorphableModel.mat`` (shapeMU, shapePC, shapeEV; 53,490
  vertices) with 3DDFA's ``model_info.mat`` (trimIndex (53215, 1), tri, keypoints), which cut it
  to the same 53,215 vertices, and ``Model_Expression.mat``.

:func:`toy_face_model` builds a small stand-in with the same layout (tests, benchmarks, demos)
and :meth:`MorphableModel.save_3ddfa` writes it in 3DDFA's file format.

>>> import numpy as np
>>> model = toy_face_model()
>>> model.n_shape, model.n_exp, model.landmarks.shape
(199, 29, (68,))
>>> v = model.vertices(np.zeros(199), np.zeros(29))       # the mean face, (N, 3), y up
>>> bool(v[model.landmarks[30], 2] == v[:, 2].max())       # the nose tip is the front-most point
True
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..geometry import OUTER_EYE_CORNERS, euler_to_matrix

NOSE_TIP = 30  # iBUG landmark 31 (1-based): the centre of the face region
# Face region = vertices within this many outer interocular distances of the nose tip (3D, on
# the mean face): about 85 mm on an adult face, i.e. eyes, nose, mouth and chin without the
# ears, the neck and most of the forehead. The paper's ~19k-vertex region came from BFM's
# segmentation files, which are not part of the files above; check len(model.face_region).
FACE_RADIUS = 0.9

WHERE_TO_GET = (
    "The model files are not redistributable; put them in one folder and pass it as --model DIR:\n"
    "  either Model_Shape.mat + Model_Expression.mat from 3DDFA (Zhu et al., 'Face Alignment Across\n"
    "  Large Poses: A 3D Solution', project page: its Matlab code makes Model_Shape.mat from the Basel\n"
    "  Face Model with ModelGenerate.m and ships Model_Expression.mat),\n"
    "  or 01_MorphableModel.mat (Basel Face Model 2009, University of Basel BFM page, free registration)\n"
    "  + model_info.mat + Model_Expression.mat (from the 3DDFA / Face Profiling / HPEN downloads).")


@dataclass
class MorphableModel:
    """A linear face model in 3DDFA's layout.

    mean: (N, 3) float32, mu_shape + mu_exp, model units, x right, y up, z toward the viewer
    shape_basis: (3N, K) float32, rows in the order x1, y1, z1, x2, ...
    exp_basis: (3N, E) float32
    faces: (M, 3) int32, 0-based
    landmarks: (68,) int64, 0-based vertex index of each iBUG landmark
    """

    mean: np.ndarray
    shape_basis: np.ndarray
    exp_basis: np.ndarray
    faces: np.ndarray
    landmarks: np.ndarray
    name: str = "model"
    shape_sigma: np.ndarray | None = None
    exp_sigma: np.ndarray | None = None
    _region: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        n = len(self.mean)
        for key, basis in (("shape", self.shape_basis), ("expression", self.exp_basis)):
            if basis.ndim != 2 or basis.shape[0] != 3 * n:
                raise ValueError(f"{self.name}: the {key} basis must have 3N = {3 * n} rows; got shape {basis.shape}")
        if self.landmarks.shape != (68,):
            raise ValueError(f"{self.name}: expected 68 landmark vertex indices; got shape {self.landmarks.shape}")
        for key, idx in (("triangle", self.faces), ("landmark", self.landmarks)):
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"{self.name}: {key} indices must lie in 1..{n} (1-based in the files); "
                                 f"got {idx.min() + 1}..{idx.max() + 1}")

    @property
    def n_vertices(self) -> int:
        return len(self.mean)

    @property
    def n_shape(self) -> int:
        return self.shape_basis.shape[1]

    @property
    def n_exp(self) -> int:
        return self.exp_basis.shape[1]

    def vertices(self, shape_para, exp_para) -> np.ndarray:
        """Mesh of parameters (K,) and (E,) -> (N, 3) float64; or a batch (B, K), (B, E) -> (B, N, 3)."""
        sp = np.asarray(shape_para, np.float32)
        ep = np.asarray(exp_para, np.float32)
        single = sp.ndim == 1
        sp, ep = np.atleast_2d(sp), np.atleast_2d(ep)
        if sp.shape[1] != self.n_shape or ep.shape[1] != self.n_exp or len(sp) != len(ep):
            raise ValueError(f"expected {self.n_shape} shape and {self.n_exp} expression parameters per face; "
                             f"got shapes {sp.shape} and {ep.shape}")
        # One matrix product for the whole batch: the basis is read from memory once.
        flat = self.shape_basis @ sp.T + self.exp_basis @ ep.T  # (3N, B)
        v = self.mean[None].astype(np.float64) + flat.T.reshape(len(sp), -1, 3)
        return v[0] if single else v

    @property
    def face_region(self) -> np.ndarray:
        """Indices (K,) int64 of the face-region vertices (the NME region): within FACE_RADIUS
        outer interocular distances of the nose tip on the mean face, plus the two outer eye corners."""
        if self._region is None:
            eyes = self.mean[self.landmarks[list(OUTER_EYE_CORNERS)]].astype(np.float64)
            iod = np.linalg.norm(eyes[0] - eyes[1])
            d = np.linalg.norm(self.mean - self.mean[self.landmarks[NOSE_TIP]], axis=1)
            self._region = np.union1d(np.nonzero(d <= FACE_RADIUS * iod)[0], self.landmarks[list(OUTER_EYE_CORNERS)])
        return self._region

    def save_3ddfa(self, folder) -> None:
        """Write Model_Shape.mat and Model_Expression.mat in 3DDFA's format (1-based indices)."""
        from scipy.io import savemat

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        zeros = np.zeros((3 * self.n_vertices, 1))
        sigma = self.shape_sigma if self.shape_sigma is not None else np.ones(self.n_shape)
        sigma_exp = self.exp_sigma if self.exp_sigma is not None else np.ones(self.n_exp)
        savemat(folder / "Model_Shape.mat", {
            "mu_shape": self.mean.astype(np.float64).reshape(-1, 1), "w": self.shape_basis,
            "sigma": np.reshape(sigma, (-1, 1)), "tri": (self.faces.T + 1).astype(np.float64),
            "keypoints": (self.landmarks[None] + 1).astype(np.float64)})
        # The whole mean is stored in mu_shape, so mu_exp is zero (only their sum matters).
        savemat(folder / "Model_Expression.mat", {"mu_exp": zeros, "w_exp": self.exp_basis,
                                                  "sigma_exp": np.reshape(sigma_exp, (-1, 1))})


# ---------------------------------------------------------------------------------------------
# Loading

def read_mat(path: Path, fields) -> dict:
    """Read the named fields of a .mat file, with errors that name the file and the field."""
    from scipy.io import loadmat

    try:
        data = loadmat(path, variable_names=list(fields))
    except NotImplementedError as e:  # MATLAB v7.3 files are HDF5
        raise ValueError(f"{path} is a MATLAB v7.3 (HDF5) file; save it again with MATLAB's -v7 option "
                         "(save(name, ..., '-v7'))") from e
    except Exception as e:  # truncated or not a .mat at all: scipy raises several kinds
        raise ValueError(f"could not read {path} ({type(e).__name__}: {e}); the file is corrupt or not a MATLAB .mat file") from e
    missing = [f for f in fields if f not in data]
    if missing:
        raise ValueError(f"{path} has no field(s) {missing}; expected {list(fields)}")
    return {f: np.asarray(data[f]) for f in fields}


def _indices(a, path, name, *, rows=None) -> np.ndarray:
    """1-based index array from a .mat -> 0-based int64; triangles given 3 x M or M x 3 -> (M, 3)."""
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
        raise ValueError(f"{path}: {name} must hold whole numbers (1-based vertex indices)")
    a = a.astype(np.int64) - 1
    if rows is None:
        return a.reshape(-1)
    if a.ndim == 2 and a.shape[0] == 3 and a.shape[1] != 3:
        a = a.T  # 3DDFA stores triangles as 3 x M
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"{path}: {name} must be 3 x M (or M x 3) triangle indices; got shape {a.shape}")
    return a


def _column(a, path, name, n) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if a.size != n or (a.ndim == 2 and 1 not in a.shape):
        raise ValueError(f"{path}: {name} must be a column of {n} values; got shape {a.shape}")
    return a.reshape(-1)


def load_morphable_model(folder) -> MorphableModel:
    """Load 3DDFA's model from ``folder`` (see the module docstring for the accepted files)."""
    folder = Path(folder)
    have = {p.name for p in folder.glob("*.mat")} if folder.is_dir() else set()
    exp_path = folder / "Model_Expression.mat"
    if {"Model_Shape.mat", "Model_Expression.mat"} <= have:
        path = folder / "Model_Shape.mat"
        d = read_mat(path, ["mu_shape", "w", "tri", "keypoints"])
        n3 = d["mu_shape"].size
        if n3 % 3:
            raise ValueError(f"{path}: mu_shape must hold 3N values (x, y, z per vertex); got {n3}")
        mean = _column(d["mu_shape"], path, "mu_shape", n3)
        shape_basis = d["w"]
        faces = _indices(d["tri"], path, "tri", rows=3)
        landmarks = _indices(d["keypoints"], path, "keypoints")
        sigma = read_mat(path, ["sigma"])["sigma"].reshape(-1) if _has(path, "sigma") else None
        name = str(folder / "Model_Shape.mat")
    elif {"01_MorphableModel.mat", "model_info.mat", "Model_Expression.mat"} <= have:
        info_path, bfm_path = folder / "model_info.mat", folder / "01_MorphableModel.mat"
        info = read_mat(info_path, ["trimIndex", "tri", "keypoints"])
        bfm = read_mat(bfm_path, ["shapeMU", "shapePC", "shapeEV"])
        keep = _indices(info["trimIndex"], info_path, "trimIndex")
        n_full = bfm["shapeMU"].size // 3
        if keep.min() < 0 or keep.max() >= n_full:
            raise ValueError(f"{info_path}: trimIndex must index the {n_full} vertices of {bfm_path}")
        rows = (3 * keep[:, None] + np.arange(3)).reshape(-1)  # x, y, z rows of each kept vertex
        mean = bfm["shapeMU"].reshape(-1)[rows].astype(np.float64)
        shape_basis = bfm["shapePC"][rows]
        faces = _indices(info["tri"], info_path, "tri", rows=3)
        landmarks = _indices(info["keypoints"], info_path, "keypoints")
        sigma, n3, name = bfm["shapeEV"].reshape(-1), len(rows), str(bfm_path)
    else:
        missing = sorted({"Model_Shape.mat", "Model_Expression.mat"} - have)
        raise FileNotFoundError(f"no morphable model in {folder}: missing {', '.join(missing)} "
                                f"(found: {sorted(have) or 'nothing'}).\n{WHERE_TO_GET}")
    e = read_mat(exp_path, ["mu_exp", "w_exp"])
    mu_exp = _column(e["mu_exp"], exp_path, "mu_exp", n3)
    if shape_basis.ndim != 2 or shape_basis.shape[0] != n3 or e["w_exp"].ndim != 2 or e["w_exp"].shape[0] != n3:
        raise ValueError(f"{name} and {exp_path} disagree: mean has {n3} rows, shape basis {shape_basis.shape}, "
                         f"expression basis {e['w_exp'].shape}; the bases need one row per mean value")
    exp_sigma = read_mat(exp_path, ["sigma_exp"])["sigma_exp"].reshape(-1) if _has(exp_path, "sigma_exp") else None
    return MorphableModel(
        mean=(mean + mu_exp).reshape(-1, 3).astype(np.float32),
        shape_basis=np.ascontiguousarray(shape_basis, np.float32),
        exp_basis=np.ascontiguousarray(e["w_exp"], np.float32),
        faces=faces.astype(np.int32), landmarks=landmarks, name=name,
        shape_sigma=sigma, exp_sigma=exp_sigma)


def _has(path, name) -> bool:
    from scipy.io import whosmat

    return any(v[0] == name for v in whosmat(path))


# ---------------------------------------------------------------------------------------------
# 3DDFA's pose: Pose_Para = [pitch, yaw, roll, tx, ty, tz, scale]

def rotation_3ddfa(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """3DDFA's R = Rx(pitch) @ Ry(yaw) @ Rz(roll) (radians), applied to y-up model points.

    Same product as geometry.euler_to_matrix, with 3DDFA's signs; in image axes (y flipped)
    it equals ``euler_to_matrix(-pitch, -yaw, roll)`` (see :func:`pose_angles`).
    """
    # 3DDFA's Ry and Rz are vrnkit's with the angle negated; Rx is the same.
    return euler_to_matrix(pitch, -yaw, -roll)


def check_pose(pose_para, *, name="Pose_Para") -> np.ndarray:
    """Pose_Para (1, 7) or (7,) -> (7,) float64, finite, with a positive scale."""
    p = np.asarray(pose_para, np.float64)
    if p.size != 7:
        raise ValueError(f"{name} must hold 7 values [pitch, yaw, roll, tx, ty, tz, scale] (1x7); got shape {p.shape}")
    p = p.reshape(7)
    if not np.all(np.isfinite(p)) or not p[6] > 0:
        raise ValueError(f"{name} must be finite with a positive scale (last value); got {p.tolist()}")
    return p


def model_to_photo(pose_para, image_height: int) -> np.ndarray:
    """(3, 4) affine from the frontal model in image axes, ``v * [1, -1, 1]``, to photo pixels.

    3DDFA: X = s R v + t (y up, MATLAB pixels, centre of the first pixel at 1), then image row
    y = H + 1 - Y; z is not flipped. vrnkit's pixel (i, j) covers [i, i+1), so both x and y move
    by -0.5. With F = diag(1, -1, 1): photo = s (F R F) (F v) + F t + (-0.5, H + 0.5, 0).
    """
    p = check_pose(pose_para)
    flip = np.diag([1.0, -1.0, 1.0])
    a = np.zeros((3, 4))
    a[:, :3] = p[6] * flip @ rotation_3ddfa(*p[:3]) @ flip
    a[:, 3] = flip @ p[3:6] + [-0.5, image_height + 0.5, 0.0]
    return a


def pose_angles(pose_para) -> dict:
    """Pitch, yaw, roll in degrees in vrnkit's convention (geometry.euler_to_matrix, image axes):
    3DDFA's pitch and yaw change sign, roll keeps it."""
    p = check_pose(pose_para)
    pitch, yaw, roll = np.degrees(p[:3])
    return {"yaw": float(-yaw), "pitch": float(-pitch), "roll": float(roll)}


# ---------------------------------------------------------------------------------------------
# A toy model with the real layout

# iBUG-68 positions on a frontal face, in half face widths (x right = image right, y up).
_JAW = [(0.85 * np.cos(t), 0.2 + 1.0 * np.sin(t)) for t in np.linspace(np.pi, 2 * np.pi, 17)]
_BROWS = [(x, 0.5 + 0.06 * np.cos(np.pi * (x + 0.4) / 0.5)) for x in np.linspace(-0.65, -0.15, 5)]
_BROWS += [(-x, y) for x, y in reversed(_BROWS)]
_NOSE = [(0.0, y) for y in np.linspace(0.28, -0.02, 4)] + [(x, -0.16 - 0.03 * (abs(x) < 0.05)) for x in np.linspace(-0.2, 0.2, 5)]
_REYE = [(-0.6, 0.3), (-0.48, 0.36), (-0.32, 0.36), (-0.2, 0.3), (-0.32, 0.25), (-0.48, 0.25)]
_LEYE = [(0.2, 0.3), (0.32, 0.36), (0.48, 0.36), (0.6, 0.3), (0.48, 0.25), (0.32, 0.25)]
_LIPS = [(-0.35, -0.45), (-0.22, -0.38), (-0.08, -0.35), (0.0, -0.36), (0.08, -0.35), (0.22, -0.38),
         (0.35, -0.45), (0.22, -0.55), (0.08, -0.6), (0.0, -0.6), (-0.08, -0.6), (-0.22, -0.55),
         (-0.28, -0.45), (-0.1, -0.42), (0.0, -0.42), (0.1, -0.42), (0.28, -0.45), (0.1, -0.49),
         (0.0, -0.49), (-0.1, -0.49)]
TOY_LANDMARKS_2D = np.array(_JAW + _BROWS + _NOSE + _REYE + _LEYE + _LIPS)  # (68, 2)


def toy_face_model(rows: int = 28, cols: int = 24, *, n_shape: int = 199, n_exp: int = 29,
                   n_vertices: int | None = None, seed: int = 0) -> MorphableModel:
    """A coarse face-like morphable model in 3DDFA's layout (for tests, benchmarks and demos).

    The mean is a half ellipsoid 150 mm wide and 188 mm tall with a nose, in micrometres like
    BFM; the grid (rows x cols, cropped to the ellipse) is triangulated cell by cell and its
    landmarks are the vertices nearest to a frontal iBUG-68 template. The bases are smooth
    random displacement fields (identity: the whole face; expression: around the mouth), so
    any parameters of a few sigma give a face-like mesh. ``n_vertices`` cuts the grid to that
    many vertices (dropping the last, top rows), e.g. 53215 for the real count.
    """
    rng = np.random.default_rng(seed)
    u, v = np.meshgrid(np.linspace(-1, 1, cols), np.linspace(-1.25, 1.25, rows))
    r2 = u**2 + (v / 1.25) ** 2
    keep = (r2 <= 1 + 1e-9).ravel()
    if n_vertices is not None:
        if n_vertices > keep.sum():
            raise ValueError(f"a {rows} x {cols} toy grid has only {keep.sum()} vertices; asked for {n_vertices}")
        keep[np.nonzero(keep)[0][n_vertices:]] = False
    nose = np.exp(-((u / 0.12) ** 2 + ((v + 0.02) / 0.25) ** 2))
    z = 0.7 * np.sqrt(np.clip(1 - r2, 0, None)) + 0.3 * nose
    scale = 75_000.0  # half face width in micrometres
    pts = (np.stack([u, v, z], -1).reshape(-1, 3) * scale)[keep]
    uv = np.stack([u.ravel(), v.ravel()], 1)[keep]

    # Triangles: two per grid cell whose four corners are all kept.
    new = np.full(rows * cols, -1)
    new[keep] = np.arange(keep.sum())
    i = (np.arange(rows - 1)[:, None] * cols + np.arange(cols - 1)[None]).ravel()
    quads = new[np.stack([i, i + 1, i + cols, i + cols + 1], 1)]
    quads = quads[(quads >= 0).all(1)]
    faces = np.concatenate([quads[:, [0, 2, 1]], quads[:, [1, 2, 3]]]).astype(np.int32)

    d2 = ((uv[None] - TOY_LANDMARKS_2D[:, None]) ** 2).sum(-1)
    landmarks = d2.argmin(1).astype(np.int64)

    def smooth_fields(k, weight, size):
        # Random mixtures of low-order polynomials in (u, v), one per axis and component.
        feats = np.stack([uv[:, 0] ** a * uv[:, 1] ** b for a in range(4) for b in range(4 - a)], 1)
        coef = rng.normal(size=(feats.shape[1], 3 * k)) / np.sqrt(feats.shape[1])
        f = (feats @ coef).reshape(len(uv), 3, k) * weight[:, None, None] * size
        return f.reshape(3 * len(uv), k)  # rows x1, y1, z1, x2, ...

    shape_sigma = 3000.0 / np.sqrt(np.arange(1, n_shape + 1))  # 3 mm for the first component
    exp_sigma = 2000.0 / np.sqrt(np.arange(1, n_exp + 1))
    mouth = np.exp(-((uv[:, 0] / 0.5) ** 2 + ((uv[:, 1] + 0.47) / 0.3) ** 2))
    return MorphableModel(
        mean=pts.astype(np.float32),
        shape_basis=smooth_fields(n_shape, np.ones(len(uv)), 1.0).astype(np.float32),
        exp_basis=smooth_fields(n_exp, mouth, 1.0).astype(np.float32),
        faces=faces, landmarks=landmarks, name=f"toy face model {rows}x{cols}",
        shape_sigma=shape_sigma, exp_sigma=exp_sigma)


def read_params(path, model: MorphableModel, *, extra=()) -> dict:
    """A 300W-LP / AFLW2000-3D .mat -> dict of 1-D float64 arrays Pose_Para (7,), Shape_Para (K,),
    Exp_Para (E,) and the ``extra`` fields as stored, with errors that name the file."""
    d = read_mat(Path(path), ["Pose_Para", "Shape_Para", "Exp_Para", *extra])
    sizes = {"Pose_Para": 7, "Shape_Para": model.n_shape, "Exp_Para": model.n_exp}
    for key, n in sizes.items():
        a = np.asarray(d[key], np.float64)
        if a.size != n or (a.ndim == 2 and 1 not in a.shape):
            raise ValueError(f"{path}: {key} has shape {a.shape}; expected {n} values ({n}x1 or 1x{n}) "
                             f"to match the model {model.name}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{path}: {key} contains NaN or infinite values")
        d[key] = a.reshape(-1)
    return d
