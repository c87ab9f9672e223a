"""The SynthFaces mesh: a grid over a head-like surface, its mean shape, and appearance maps.

The face is a graph over a cylinder: vertex (row i, column j) sits at angle theta_j around a
vertical axis (x = 0, z = AXIS_Z) and height y; its distance rho from that axis is a smooth
function of (theta, y): a head-like base plus bumps for the brows, eyes, nose, lips and chin
(surface_radius). A graph cannot fold onto itself. Rows are placed (grid_coordinates) so that
special rows are the eyelid margins (I_UP, I_LO; the eyeball lies between them) and the lips'
meeting line (I_UL, I_M, I_LL: upper inner lip, mouth interior, lower inner lip; 0.15 mm apart
while the mouth is closed). Millimetres, image-space axes (x right, y down, z toward the
viewer); origin on the midline at the height and depth of the eye centres' corneas.
synthfaces.model builds the face model on top of this mesh.

>>> t = template()
>>> t["points"].shape == (NV * NU, 3), grid_faces().shape == (2 * (NV - 1) * (NU - 1), 3)
(True, True)
"""
from __future__ import annotations

import functools

import numpy as np
from scipy.interpolate import PchipInterpolator

# ---------------------------------------------------------------------------------------------
# The grid. Columns are angles around the vertical axis, denser in the middle of the face.
NU = 141  # columns (odd: column 70 is the midline)
THETA_MAX = np.radians(95.0)  # the ears
AXIS_Z = -84.0  # the vertical axis of the cylindrical graph, mm behind the corneas
R0 = 85.0  # X = R0 * theta: "arc millimetres" used to place features around the face
# Special rows. Rows between I_UP and I_LO are the eyeballs (inside the eyes' columns);
# I_UL, I_M, I_LL are the mouth slit: upper inner lip, mouth interior, lower inner lip.
I_UP, I_LO = 36, 42
I_UL, I_M, I_LL = 80, 81, 82
NV = 113  # rows
SLIT_GAP = 0.15  # mm between the slit rows of a closed mouth (kept > 0: no collapsed triangles)

EYE_X, EYE_Y = 29.3, 0.0  # eye centre (arc mm); the right eye is at -EYE_X
EYE_INNER, EYE_OUTER = 16.2, 42.4  # |X| of the inner and outer eye corners
EYE_R = 12.0  # eyeball radius
MOUTH_Y, MOUTH_HALF = 68.0, 24.0  # the lips' meeting line and the mouth's half width


def smoothstep(e0, e1, x):
    """0 below e0, 1 above e1, a C1 ramp in between (e0 > e1 gives a falling ramp)."""
    t = np.clip((np.asarray(x, np.float64) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def bump(X, Y, cx, cy, rx, ry):
    """Smooth compact bump, 1 at (cx, cy), 0 outside the ellipse with radii (rx, ry)."""
    r2 = ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2
    return np.clip(1.0 - r2, 0.0, None) ** 3


def _spline(xs, ys):
    return PchipInterpolator(np.asarray(xs, float), np.asarray(ys, float), extrapolate=True)


# Head outline and base shape, as functions of theta (top and bottom edge) or y (cross-sections).
_Y_BOT = _spline(np.radians([0, 30, 50, 65, 80, 95]), [133, 126, 112, 97, 78, 55])
_Y_TOP = _spline(np.radians([0, 40, 70, 95]), [-95, -93, -80, -48])
_FRONT = _spline([-100, -75, -50, -25, 0, 30, 60, 90, 115, 130], [-24, -9, 1, 5, 3, 1, 2, 1, -3, -12])
_HALF_WIDTH = _spline([-100, -60, -20, 10, 40, 70, 100, 130], [60, 67, 71, 72, 68, 58, 48, 42])
_SQUARE = _spline([-100, -30, 20, 80, 130], [2.2, 2.4, 2.4, 2.2, 2.0])  # superellipse exponent
# The nose: height above the face on the midline, and half width, as functions of y.
_NOSE_H = _spline([-16, -6, 5, 15, 25, 32, 37, 40, 42.5, 45, 48], [0, 2.5, 5.5, 10.5, 16.5, 20.5, 21.5, 20, 13, 3.5, 0])
_NOSE_W = _spline([-16, -6, 5, 15, 25, 33, 39, 44, 48], [13, 9, 7.5, 8.5, 9.5, 11, 13, 10, 9])


def nose_height(X, y):
    """How far the nose stands out of the face (mm): a ridge along the midline."""
    return _NOSE_H(y) * np.clip(1 - (X / _NOSE_W(y)) ** 2, 0, None) ** 2 * (np.abs(y - 17) < 34)


def bottom_edge(theta):
    """Height (mm) of the mesh's lower edge (under the jaw) at angle theta."""
    return _Y_BOT(np.abs(theta))


def eye_lids(X):
    """Upper and lower lid margin heights (mm) over the eye's columns; corners stay 0.5 mm open."""
    a = np.abs(X)
    t = np.clip((a - EYE_INNER) / (EYE_OUTER - EYE_INNER), 0, 1)  # 0 inner corner .. 1 outer
    tilt = -1.5 * t  # outer corner a little higher (canthal tilt)
    shape = np.sin(np.pi * t)
    up = EYE_Y + tilt - 0.25 - 5.3 * shape ** 0.8 * (1 - 0.15 * (t - 0.4))
    lo = EYE_Y + tilt + 0.25 + 4.0 * shape ** 0.9 * (1 + 0.1 * (t - 0.5))
    return up, lo


def eye_weight(X):
    """1 between an eye's corners, falling to 0 over 5 mm beyond them (blends the lid rows in)."""
    a = np.abs(X)
    return smoothstep(EYE_INNER - 5, EYE_INNER, a) * smoothstep(EYE_OUTER + 6, EYE_OUTER, a)


def mouth_open_profile(X):
    """How far the lips part along the mouth for a unit jaw opening: 1 mid-mouth, 0 at the corners."""
    return np.sqrt(np.clip(1 - (X / MOUTH_HALF) ** 2, 0, 1))


def mouth_weight(X):
    a = np.abs(X)
    return smoothstep(MOUTH_HALF + 6, MOUTH_HALF, a)


def grid_coordinates(rows, cols):
    """Template (theta, y) of (possibly fractional) grid positions; rows, cols broadcastable.

    theta: radians around the axis (positive toward +x); y: mm. Used for the vertices
    and, at finer resolution, for the texture maps.
    """
    rows, cols = np.broadcast_arrays(np.asarray(rows, float), np.asarray(cols, float))
    u = cols / (NU - 1) * 2 - 1
    theta = THETA_MAX * (0.55 * u + 0.45 * u ** 3)
    X = R0 * theta
    top, bot = _Y_TOP(np.abs(theta)), _Y_BOT(np.abs(theta))
    # Knot rows and their heights: uniform spacing at the sides, feature rows in the middle.
    knots = np.array([0, I_UP, I_LO, I_UL, I_M, I_LL, NV - 1], float)
    uniform = top[..., None] + (bot - top)[..., None] * knots / (NV - 1)
    feature = np.stack([top, np.full_like(top, -6.0), np.full_like(top, 6.0),
                        np.full_like(top, MOUTH_Y - 1.5), np.full_like(top, MOUTH_Y),
                        np.full_like(top, MOUTH_Y + 1.5), bot], -1)
    wc = smoothstep(75, 55, np.abs(X))[..., None]
    ky = wc * feature + (1 - wc) * uniform
    lid_up, lid_lo = eye_lids(X)
    we = eye_weight(X)
    ky[..., 1] = (1 - we) * ky[..., 1] + we * lid_up
    ky[..., 2] = (1 - we) * ky[..., 2] + we * lid_lo
    wm = mouth_weight(X)
    for k, off in ((3, -SLIT_GAP), (4, 0.0), (5, SLIT_GAP)):
        ky[..., k] = (1 - wm) * ky[..., k] + wm * (MOUTH_Y + off)
    # Piecewise-linear in the row index between knots (monotone, so rows never cross).
    seg = np.clip(np.searchsorted(knots, rows, side="right") - 1, 0, len(knots) - 2)
    f = (rows - knots[seg]) / (knots[seg + 1] - knots[seg])
    y0 = np.take_along_axis(ky, seg[..., None], -1)[..., 0]
    y1 = np.take_along_axis(ky, seg[..., None] + 1, -1)[..., 0]
    return theta, y0 + f * (y1 - y0)


def surface_radius(theta, y, X, eyeball):
    """Distance (mm) of the surface from the axis at (theta, y); eyeball: bool, inside an eye."""
    # Base head: a superellipse cross-section per height.
    d, a, n = _FRONT(y) - AXIS_Z, _HALF_WIDTH(y), _SQUARE(y)
    rho = (np.abs(np.sin(theta) / a) ** n + np.abs(np.cos(theta) / d) ** n) ** (-1 / n)
    # Under the jaw line the surface turns in toward the neck.
    jaw = _Y_BOT(np.abs(theta)) - 13
    rho = rho - 18 * smoothstep(0, 13, y - jaw) ** 1.5
    ax = np.abs(X)
    # Bumps (radial mm): brow ridge, glabella, temples, eye sockets, cheekbones.
    rho = rho + 4 * bump(ax, y, 27, -19, 28, 9) + 2.5 * bump(ax, y, 0, -15, 14, 9)
    rho = rho - 2 * bump(ax, y, 64, -30, 20, 25) - 9 * bump(ax, y, EYE_X, -1, 20, 14)
    rho = rho + 4 * bump(ax, y, 52, 12, 26, 18) - 10 * bump(ax, y, 100, 15, 32, 45)  # cheekbones; in front of the ears
    # Nose: a ridge along the midline, plus the alae (nostril wings).
    rho = rho + nose_height(X, y)
    rho = rho + 7 * bump(ax, y, 13.6, 41, 7, 6) - 2 * bump(ax, y, 20.3, 42, 4, 6)
    # Mouth region: the dental arch, philtrum, corners, lips; chin and the fold above it.
    rho = rho + 9 * bump(ax, y, 0, 64, 40, 32) - 0.8 * bump(ax, y, 0, 52, 3, 7)
    rho = rho + 0.5 * bump(ax, y, 5, 52, 2.5, 7) - 1.5 * bump(ax, y, MOUTH_HALF + 2, MOUTH_Y, 6, 7)
    rho = rho + _lip_relief(X, y)
    rho = rho + 10 * bump(ax, y, 0, 112, 26, 17) - 2.5 * bump(ax, y, 0, 90, 22, 6)
    rho = rho - 15 * smoothstep(74, 128, y) * smoothstep(70, 25, ax)  # the chin sits back (facial convexity)
    # Eyes: lids hug the eyeball (a sphere whose front is at z = 0), the eyeball shows between.
    ball = _eyeball_radius(theta, y)
    r_eye = np.hypot((ax - EYE_X) / 1.5, y - EYE_Y)
    lid = ball + 1.3 - 0.06 * np.clip(r_eye - 5, 0, None) ** 2
    rho = np.where(eyeball & (ball > 0), ball, np.logaddexp(rho / 1.5, lid / 1.5) * 1.5)
    return rho


def _lip_relief(X, y):
    """How far the lips stand out (mm) from the mouth region: upper and lower vermilion."""
    c = np.clip(1 - (X / MOUTH_HALF) ** 2, 0, 1)
    bow = 1.3 * np.exp(-((np.abs(X) - 5) / 3) ** 2) - 0.8 * np.exp(-(X / 2) ** 2)  # Cupid's bow
    h_up = (8 + bow) * c ** 0.45 + 1e-3
    h_lo = 10 * c ** 0.55 + 1e-3
    f_up = np.clip((MOUTH_Y - y) / h_up, 0, 1)
    f_lo = np.clip((y - MOUTH_Y) / h_lo, 0, 1)
    return c ** 0.5 * (2.6 * np.sin(np.pi * f_up) ** 0.7 + 3.0 * np.sin(np.pi * f_lo) ** 0.7)


def _eyeball_radius(theta, y):
    """Distance from the axis, along the horizontal ray at (theta, y), to the nearer eyeball
    (an ellipsoid 1.5x wider than tall, front at z = 0); 0 where the ray misses it."""
    k = 1.5
    cx = np.where(theta < 0, -1, 1) * -AXIS_Z * np.tan(EYE_X / R0)  # under the eye's centre column
    s, c, oz = np.sin(theta), np.cos(theta), AXIS_Z + EYE_R
    a = s * s / k ** 2 + c * c
    b = -s * cx / k ** 2 + c * oz
    cc = cx ** 2 / k ** 2 + (y - EYE_Y) ** 2 + oz ** 2 - EYE_R ** 2
    disc = b * b - a * cc
    return np.where(disc > 0, (-b + np.sqrt(np.abs(disc))) / a, 0.0)


def eyeball_mask(rows, cols):
    """True for grid positions strictly inside an eye opening (between the lids and corners)."""
    theta, _ = grid_coordinates(rows, cols)
    a = np.abs(R0 * theta)
    return (rows > I_UP) & (rows < I_LO) & (a > EYE_INNER + 0.3) & (a < EYE_OUTER - 0.3)


def template():
    """Mean-face geometry: dict of per-vertex arrays (vertex k = row k // NU, column k % NU)."""
    rows, cols = np.meshgrid(np.arange(NV, dtype=float), np.arange(NU, dtype=float), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    theta, y = grid_coordinates(rows, cols)
    X = R0 * theta
    eyeball = eyeball_mask(rows, cols)
    rho = surface_radius(theta, y, X, eyeball)
    s, c = np.sin(theta), np.cos(theta)
    points = np.stack([rho * s, y, AXIS_Z + rho * c], 1)
    e_theta = np.stack([c, 0 * c, -s], 1)  # unit vectors: around the axis, and away from it
    e_rho = np.stack([s, 0 * s, c], 1)
    lid_up, lid_lo = eye_lids(X)
    sx = np.where(cols < (NU - 1) / 2, -1.0, np.where(cols > (NU - 1) / 2, 1.0, 0.0))
    eye_x = -AXIS_Z * np.tan(EYE_X / R0)
    return dict(rows=rows.astype(int), cols=cols.astype(int), theta=theta, y=y, X=X, ax=np.abs(X), sx=sx,
                x=points[:, 0],
                rho=rho, points=points, e_theta=e_theta, e_rho=e_rho, eyeball=eyeball,
                lid_up=lid_up, lid_lo=lid_lo, we=eye_weight(X), wm=mouth_weight(X),
                eye_centre=np.stack([sx * eye_x, 0 * sx + EYE_Y, 0 * sx], 1))


def grid_faces(step: int = 1):
    """(M, 3) int32 triangles of the grid, wound so normals point toward +z (the viewer) on a
    frontal face; the diagonals mirror across the midline so the mesh is left-right symmetric.

    step > 1 gives a coarser mesh over the same vertices (every step-th row and column, plus
    the lid and lip rows), for fast rendering of small images.
    """
    rows = sorted(set(range(0, NV, step)) | {NV - 1, I_UP, I_LO, I_UL, I_M, I_LL})
    cols = list(range(0, NU, step))
    if cols[-1] != NU - 1 or (NU - 1) % (2 * step):
        raise ValueError(f"step must divide {(NU - 1) // 2} so the coarse mesh stays symmetric; got {step}")
    idx = np.asarray(rows)[:, None] * NU + np.asarray(cols)[None, :]
    p00, p01, p10, p11 = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    left = (np.arange(len(cols) - 1) < (len(cols) - 1) // 2)[None, :, None]
    t1 = np.where(left, np.stack([p00, p01, p10], -1), np.stack([p00, p01, p11], -1))
    t2 = np.where(left, np.stack([p01, p11, p10], -1), np.stack([p00, p11, p10], -1))
    return np.concatenate([t1.reshape(-1, 3), t2.reshape(-1, 3)]).astype(np.int32)


# ---------------------------------------------------------------------------------------------
# Appearance: where the lips, brows, eyes... are, as maps over the grid (they move with it).

@functools.lru_cache(maxsize=2)
def feature_maps(scale: int = 4) -> dict:
    """Soft masks in [0, 1] over the grid, ``scale`` texels per grid cell: dict name ->
    (NV * scale, NU * scale) float32. Texel (a, b) covers grid row (a + 0.5) / scale - 0.5 and
    column (b + 0.5) / scale - 0.5, so a pixel's interpolated ``FaceModel.uv`` finds its texel.
    Names: skin_noise, lips, mouth, teeth, sclera, iris, pupil, lash, brows, nostrils, blush,
    beard, y (template height, mm) and ax (|X|, arc mm from the midline), for hairlines."""
    a = (np.arange(NV * scale) + 0.5) / scale - 0.5
    b = (np.arange(NU * scale) + 0.5) / scale - 0.5
    rows, cols = np.meshgrid(a, b, indexing="ij")
    theta, y = grid_coordinates(rows, cols)
    X = R0 * theta
    ax = np.abs(X)
    soft = lambda d, w: smoothstep(w, -w, d)  # noqa: E731  (1 inside where d < 0)
    c = np.clip(1 - (X / MOUTH_HALF) ** 2, 0, 1)
    bow = 1.3 * np.exp(-((ax - 5) / 3) ** 2) - 0.8 * np.exp(-(X / 2) ** 2)
    top, bottom = MOUTH_Y - (8 + bow) * c ** 0.45, MOUTH_Y + 10 * c ** 0.55
    lips = soft(np.maximum(top - y, y - bottom), 0.5) * (c > 0)
    inside = (rows > I_UL) & (rows < I_LL)
    mouth = inside * soft(ax - MOUTH_HALF + 0.5, 0.8)
    teeth = mouth * (((rows - I_UL) < 0.45) | ((I_LL - rows) < 0.25)) * soft(ax - MOUTH_HALF + 6, 2)
    eye = (rows > I_UP) & (rows < I_LO)
    sclera = eye * soft(EYE_INNER + 0.4 - ax, 0.4) * soft(ax - EYE_OUTER + 0.4, 0.4)
    r_iris = np.hypot(ax - EYE_X, y - EYE_Y)
    iris = sclera * soft(r_iris - 5.8, 0.35)
    pupil = sclera * soft(r_iris - 2.3, 0.3)
    in_eye_cols = soft(EYE_INNER - 1 - ax, 0.5) * soft(ax - EYE_OUTER - 1, 0.5)
    lash = in_eye_cols * np.maximum(soft(np.abs(rows - I_UP) - 0.55, 0.25), 0.6 * soft(np.abs(rows - I_LO) - 0.3, 0.2))
    t = np.clip((ax - 12) / 44, 0, 1)
    brow_y = -21 - 4.5 * np.sin(np.pi * t) ** 0.8 + 2 * t
    brows = soft(np.abs(y - brow_y) - (4.2 - 2.0 * t), 0.9) * soft(12 - ax, 1.5) * soft(ax - 56, 2.5)
    nostrils = soft(((ax - 6.2) / 3.4) ** 2 + ((y - 42.8) / 2.0) ** 2 - 1, 0.25)
    blush = bump(ax, y, 42, 32, 24, 18)
    beard = smoothstep(38, 50, y) * (1 - lips) * (1 - mouth) * smoothstep(80, 55, ax) * (1 - 0.6 * bump(ax, y, 0, 80, 14, 10))
    noise = _fractal_noise(rows.shape, np.random.default_rng(7))
    out = dict(skin_noise=noise, lips=lips, mouth=mouth, teeth=teeth, sclera=sclera, iris=iris, pupil=pupil,
               lash=lash, brows=brows, nostrils=nostrils, blush=blush, beard=beard, y=y, ax=ax)
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def _fractal_noise(shape, rng, octaves=4):
    """Smooth noise in about [-1, 1]: a sum of upsampled random grids (skin mottling)."""
    from scipy.ndimage import zoom

    out = np.zeros(shape)
    for k in range(octaves):
        n = 2 ** (k + 3)
        g = rng.normal(size=(n, n))
        out += zoom(g, (shape[0] / n, shape[1] / n), order=1)[: shape[0], : shape[1]] / 2 ** k
    return out / np.abs(out).max()
