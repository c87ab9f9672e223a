"""Render SynthFaces into VRN crops: pose, z-buffer, shading, skin, clutter, occluders, camera.

A face is posed in a virtual photo by weak perspective, X = s * R @ v + t with
R = geometry.euler_to_matrix(pitch, yaw, roll), and cut out by the paper's crop
(CropFrame.from_landmarks: 68-landmark box -> ``spec.face_size`` px, centred, mean landmark
depth at mid-volume) plus the jitter of a real detector's box. Only the crop is rendered.
Every sample records its CropFrame (virtual photo -> crop) and the affine map from the face
model's frontal frame (mm) to the crop: ``crop = affine[:, :3] @ v + affine[:, 3]``.

Appearance: Lambert + Blinn-Phong under a random light; skin tones over a realistic range
with mottling, lips, brows, eyes, teeth, mouth interior; a head, neck and ears drawn behind the
face (they are not part of the face mesh, as in VRN's targets); background clutter; occluders;
colour jitter, blur, noise and JPEG. Everything is drawn from the ``rng`` passed in, so a seed
gives identical bytes.

>>> import numpy as np
>>> from vrnkit.config import VolumeSpec
>>> from vrnkit.synthfaces.model import FaceModel, EXPRESSIONS
>>> model, rng = FaceModel.default(), np.random.default_rng(0)
>>> yaw, pitch, roll = random_pose(rng)
>>> s = render_face(model, model.sample_identity(rng), EXPRESSIONS["happiness"], yaw=yaw,
...                 pitch=pitch, roll=roll, spec=VolumeSpec.preset("cpu"), rng=rng)
>>> s["image"].shape, s["image"].dtype, s["landmarks"].shape
((64, 64, 3), dtype('uint8'), (68, 3))
"""
from __future__ import annotations

import functools
import io

import numpy as np
from scipy import ndimage

from ..config import VolumeSpec
from .model import FaceModel
from .mesh import NU, NV, feature_maps, grid_faces
from ..geometry import CropFrame, euler_to_matrix
from ..raster import rasterize

TEXTURE_SCALE = 4  # texels per grid cell of the feature maps
PHOTO_SIZE = 480  # side (px) of the virtual photo that the crop is cut from
SKIN_TONES = np.array([  # light to dark, linear RGB-ish albedos; samples interpolate between them
    [0.93, 0.78, 0.69], [0.86, 0.67, 0.56], [0.76, 0.56, 0.43], [0.66, 0.49, 0.35],
    [0.52, 0.36, 0.25], [0.38, 0.25, 0.17], [0.26, 0.17, 0.12]])
HAIR_COLOURS = np.array([[0.04, 0.035, 0.03], [0.13, 0.08, 0.05], [0.28, 0.18, 0.11],
                         [0.62, 0.48, 0.30], [0.45, 0.19, 0.08], [0.55, 0.54, 0.52]])
IRIS_COLOURS = np.array([[0.25, 0.14, 0.07], [0.12, 0.07, 0.04], [0.30, 0.45, 0.62],
                         [0.30, 0.42, 0.25], [0.42, 0.31, 0.14], [0.45, 0.50, 0.53]])
LANDMARK_DEPTH_TOL_MM = 3.0  # a landmark is visible if within this depth of the z-buffer


def random_pose(rng, *, max_yaw=np.pi / 2, max_pitch=np.radians(35), max_roll=np.radians(30)):
    """(yaw, pitch, roll) in radians: yaw uniform in +-max_yaw (300W-LP spans +-90 deg),
    pitch and roll normal (sd 12 and 8 deg) clipped to their maxima. SynthFaces' datasets draw
    their poses here too."""
    yaw = rng.uniform(-max_yaw, max_yaw)
    pitch = np.clip(rng.normal(0, np.radians(12)), -max_pitch, max_pitch)
    roll = np.clip(rng.normal(0, np.radians(8)), -max_roll, max_roll)
    return float(yaw), float(pitch), float(roll)


def pose_to_crop(landmarks_model, *, yaw, pitch, roll, spec: VolumeSpec, rng, jitter=True):
    """Place a face in a virtual photo and cut the paper's crop around it.

    landmarks_model: (68, 3) mm, model frame. Returns (frame, affine): the CropFrame
    (virtual photo -> crop) and the (3, 4) float64 map model mm -> crop pixels.
    """
    R = euler_to_matrix(pitch, yaw, roll)
    s = rng.uniform(1.0, 2.6)  # photo pixels per mm: faces of different sizes in the photo
    t = np.array([rng.uniform(0.35, 0.65) * PHOTO_SIZE, rng.uniform(0.35, 0.65) * PHOTO_SIZE, 0.0])
    lm_photo = s * np.asarray(landmarks_model, np.float64) @ R.T + t
    frame = CropFrame.from_landmarks(lm_photo, size=spec.width, face_size=spec.face_size,
                                     depth_span=spec.depth_span)
    if jitter:  # a detector's box is a few percent off in scale and position
        js = float(np.exp(np.clip(rng.normal(0, 0.04), -0.1, 0.1)))
        dx, dy = np.clip(rng.normal(0, 0.03, 2), -0.08, 0.08) * spec.width
        frame = frame.then(CropFrame(js, (1 - js) * spec.width / 2 + dx, (1 - js) * spec.height / 2 + dy,
                                     (1 - js) * spec.depth_span / 2))
    affine = np.zeros((3, 4))
    affine[:, :3] = frame.scale * s * R
    affine[:, 3] = frame.scale * t + [frame.tx, frame.ty, frame.tz]
    return frame, affine


@functools.lru_cache(maxsize=8)
def _faces_for(width: int) -> np.ndarray:
    """Render mesh for an image width: the full grid at >= 128 px, every 2nd row/column below."""
    return grid_faces(1 if width >= 256 else 2)


def grid_normals(vertices) -> np.ndarray:
    """(N, 3) unit vertex normals of a posed SynthFaces mesh from its grid neighbours."""
    g = np.asarray(vertices, np.float64).reshape(NV, NU, 3)
    du = np.empty_like(g)
    dv = np.empty_like(g)
    du[:, 1:-1], du[:, 0], du[:, -1] = g[:, 2:] - g[:, :-2], g[:, 1] - g[:, 0], g[:, -1] - g[:, -2]
    dv[1:-1], dv[0], dv[-1] = g[2:] - g[:-2], g[1] - g[0], g[-1] - g[-2]
    n = np.cross(du, dv).reshape(-1, 3)
    return n / (np.linalg.norm(n, axis=1, keepdims=True) + 1e-12)


def render_face(model: FaceModel, identity, expression, *, yaw: float, pitch: float, roll: float,
                spec: VolumeSpec | None = None, rng, clutter: bool = True, occluders: bool = True,
                lighting: str = "normal", head: bool = True, jitter: bool = True) -> dict:
    """Render one face into a (spec.height, spec.width) crop. Angles in radians.

    Returns a dict: image (H, W, 3) uint8; landmarks (68, 3) float32 crop coordinates (x, y
    pixels; z in crop pixels, toward the viewer); landmark_visible (68,) bool (not hidden by
    the face itself); vertices (N, 3) float32 posed mesh in crop coordinates; mask (H, W) bool
    pixels covered by the face mesh (before occluders); occluder (H, W) bool; frame
    (CropFrame, virtual photo -> crop); affine (3, 4) float32 model mm -> crop;
    pose (3,) float32 (yaw, pitch, roll) radians.

    Below 256 px the z-buffer uses every second grid row and column (mesh.grid_faces(2),
    the same look at a third of the cost); vertices and landmarks are always the full mesh.
    """
    if lighting not in ("normal", "strong"):
        raise ValueError(f"lighting must be 'normal' or 'strong'; got {lighting!r}")
    spec = spec or VolumeSpec.preset("paper")
    H, W = spec.height, spec.width
    v_model = model.vertices(identity, expression)
    frame, affine = pose_to_crop(v_model[model.landmarks], yaw=yaw, pitch=pitch, roll=roll,
                                 spec=spec, rng=rng, jitter=jitter)
    v = v_model.astype(np.float64) @ affine[:, :3].T + affine[:, 3]
    px_per_mm = float(np.linalg.norm(affine[0, :3]))

    # Z-buffer the triangles that face the camera (the mesh is an open shell).
    faces = _faces_for(W)
    a, b = v[faces[:, 1], :2] - v[faces[:, 0], :2], v[faces[:, 2], :2] - v[faces[:, 0], :2]
    faces = faces[a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0] > 0]
    r = rasterize(v, faces, H, W)
    mask = r.mask

    look = _appearance(rng, lighting)
    image = _background(rng, H, W, clutter)
    if head:
        _draw_head(image, affine, look, rng)
    corners = faces[r.triangle[mask]]  # (P, 3) vertex indices per face pixel
    vnormals = grid_normals(v).astype(np.float32)
    attrs = np.concatenate([vnormals, model.uv], 1)  # interpolate normal and texture coordinates at once
    normal_uv = np.einsum("pk,pkc->pc", r.bary[mask], attrs[corners])
    normal, uv = normal_uv[:, :3], normal_uv[:, 3:]
    albedo, shine = _albedo(uv, look)
    image[mask] = _shade(albedo, normal, shine, look)
    occluder = _occluders(image, v[model.landmarks], look, rng) if occluders else np.zeros((H, W), bool)
    image = _camera(image, rng, W)

    lm = v[model.landmarks]
    return dict(image=image, landmarks=lm.astype(np.float32),
                landmark_visible=_visible(lm, vnormals[model.landmarks], r, LANDMARK_DEPTH_TOL_MM * px_per_mm),
                vertices=v.astype(np.float32), mask=mask, occluder=occluder, frame=frame,
                affine=affine.astype(np.float32), pose=np.array([yaw, pitch, roll], np.float32))


def _visible(points, normals, r, tol) -> np.ndarray:
    """(K,) bool: not hidden by the face itself. A point is visible when its surface faces the
    camera and some pixel of the 3 x 3 around it is empty (the point is on the outline) or
    shows a surface no more than ``tol`` in front of it."""
    H, W = r.depth.shape
    x, y = np.floor(points[:, 0]).astype(int), np.floor(points[:, 1]).astype(int)
    seen = np.zeros(len(points), bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            xx, yy = np.clip(x + dx, 0, W - 1), np.clip(y + dy, 0, H - 1)
            seen |= points[:, 2] >= r.depth[yy, xx] - tol  # -inf where empty: always true
    inside = (x >= 0) & (x < W) & (y >= 0) & (y < H)
    return seen & inside & (normals[:, 2] > -0.05)


# ---------------------------------------------------------------------------------------------
# Appearance

def _mix(table, rng):
    """A random point on the polyline through the rows of ``table``."""
    t = rng.uniform(0, len(table) - 1)
    k = min(int(t), len(table) - 2)
    return table[k] + (t - k) * (table[k + 1] - table[k])


def _appearance(rng, lighting):
    """All per-sample colours and lights, drawn in a fixed order (so seeds reproduce)."""
    skin = _mix(SKIN_TONES, rng) * rng.uniform(0.95, 1.05, 3)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.8, 1.2)
    lip = skin * np.array([0.92, 0.62, 0.62]) * rng.uniform(0.8, 1.0)
    if rng.random() < 0.12:  # lipstick
        lip = np.array([[0.55, 0.08, 0.12], [0.7, 0.3, 0.35], [0.3, 0.08, 0.1]])[rng.integers(3)]
    strong = lighting == "strong"
    d = rng.normal(size=3)
    d[2] = abs(d[2]) + (0.2 if strong else 0.9)
    d[1] -= 0.4  # light from above more often
    look = dict(
        skin=skin, hair=hair, lip=lip, iris=IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))],
        brow_density=rng.uniform(0.7, 1.0), beard=rng.uniform(0.2, 0.7) if rng.random() < 0.2 else 0.0,
        blush=rng.uniform(0.0, 0.25), mottle=rng.uniform(0.02, 0.08), noise_shift=rng.integers(0, 10_000, 2),
        hairline=rng.uniform(-82, -62), temples=rng.uniform(20, 50), sideburns=rng.random() < 0.7,
        bald=rng.random() < 0.08, clothes=rng.uniform(0, 1, 3) ** 1.5,
        light=d / np.linalg.norm(d), light_colour=rng.uniform(0.93, 1.0, 3) / 0.965,
        ambient=rng.uniform(0.06, 0.22) if strong else rng.uniform(0.25, 0.5),
        diffuse=rng.uniform(0.8, 1.2) if strong else rng.uniform(0.5, 0.85),
        specular=rng.uniform(0.05, 0.4) if strong else rng.uniform(0.02, 0.2), shininess=rng.uniform(8, 40),
    )
    # float32 everywhere per pixel (NumPy would promote to float64 on meeting a float64 array)
    return {k: np.asarray(v, np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v
            for k, v in look.items()}


@functools.lru_cache(maxsize=1)
def _texture():
    """The feature maps stacked into one (rows, cols, K) float32 array, and their names."""
    maps = feature_maps(TEXTURE_SCALE)
    return list(maps), np.ascontiguousarray(np.stack(list(maps.values()), -1))


def _albedo(uv, look):
    """Per-pixel albedo (P, 3) and specular weight (P,) from texture coordinates (P, 2)."""
    names, stack = _texture()
    th, tw = stack.shape[:2]
    col = np.clip(np.rint((uv[:, 0] + 0.5) * TEXTURE_SCALE - 0.5).astype(int), 0, tw - 1)
    row = np.clip(np.rint((uv[:, 1] + 0.5) * TEXTURE_SCALE - 0.5).astype(int), 0, th - 1)
    tex = stack[row, col]  # (P, K): one gather for all maps
    m = lambda name: tex[:, names.index(name), None]  # noqa: E731
    sr, sc = look["noise_shift"]
    noise = stack[(row + sr) % th, (col + sc) % tw, names.index("skin_noise"), None]
    f32 = lambda *c: np.array(c, np.float32)  # noqa: E731  (float64 constants would promote)
    skin = look["skin"] * (1 + look["mottle"] * noise) * (1 - look["blush"] * m("blush") * f32(0, 0.35, 0.3))
    c = skin.copy()
    hair = look["hair"] * (0.75 + 0.25 * (noise + 1))
    if look["beard"]:
        c += look["beard"] * m("beard") * np.clip(0.6 + noise, 0, 1) * (hair - c)
    # Hair above a hairline that recedes at the temples, and sideburns in front of the ears.
    ax = m("ax")
    line = look["hairline"] + look["temples"] * np.clip((ax - 40) / 45, 0, 1) ** 2
    line = np.where(look["sideburns"] & (ax > 108), np.float32(30), line)
    hairline = np.clip((line - m("y")) / 4 + noise * 0.8, 0, 1) * (not look["bald"])
    c += hairline * (hair - c)
    # The small features, painted in order, only where some feature map is non-zero.
    k = np.nonzero(tex[:, [names.index(n) for n in _FEATURES]].max(1) > 0)[0]
    t, n, s, cf = tex[k], noise[k], skin[k], c[k]
    brow = 0.5 * look["hair"] + f32(0.06, 0.04, 0.025)  # brows: darker than grey or blond hair
    paint = {"lips": look["lip"] * (1 + 0.5 * look["mottle"] * n),
             "brows": brow, "nostrils": s * 0.25, "sclera": f32(0.82, 0.80, 0.78),
             "iris": look["iris"] * (0.8 + 0.2 * (n + 1)), "pupil": f32(0.02, 0.02, 0.02),
             "lash": look["hair"] * 0.4, "mouth": f32(0.18, 0.05, 0.05), "teeth": f32(0.85, 0.82, 0.72)}
    for name in _FEATURES:
        a = t[:, names.index(name), None]
        if name == "brows":
            a = a * look["brow_density"] * np.clip(0.7 + n, 0, 1)
        cf += a * (paint[name] - cf)
    c[k] = cf
    shine = 1 + 1.5 * (m("lips") + m("sclera"))[:, 0] - 0.9 * np.maximum(hairline[:, 0], m("brows")[:, 0])
    return c, shine


_FEATURES = ("lips", "brows", "nostrils", "sclera", "iris", "pupil", "lash", "mouth", "teeth")


def _shade(albedo, normal, shine, look):
    """Lambert + Blinn-Phong (orthographic view along +z) -> (P, 3) float in [0, 1]."""
    n = normal / (np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12)
    L = look["light"]
    h = L + np.array([0.0, 0.0, 1.0])
    h /= np.linalg.norm(h)
    lambert = np.clip(n @ L, 0, None)[:, None]
    spec = (np.clip(n @ h, 0, None) ** look["shininess"] * shine * look["specular"])[:, None]
    out = (albedo * (look["ambient"] + look["diffuse"] * lambert) + spec) * look["light_colour"]
    return np.clip(out, 0, 1)


# ---------------------------------------------------------------------------------------------
# Around the face: background, head, neck, ears

@functools.lru_cache(maxsize=1)
def _photos() -> tuple:
    """scikit-image's sample photos as float32 RGB, shrunk to <= 320 px (loaded once)."""
    from skimage import data

    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "cat", "camera", "brick", "grass", "gravel",
                 "immunohistochemistry", "hubble_deep_field", "coins", "moon", "text", "page"):
        a = getattr(data, name)()
        a = np.repeat(a[..., None], 3, 2) if a.ndim == 2 else a[..., :3]
        step = max(1, int(np.ceil(max(a.shape[:2]) / 320)))
        out.append(np.ascontiguousarray(a[::step, ::step], np.float32) / 255)
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _streaks() -> np.ndarray:
    """(512, 512) float32 hair-like streak texture around 1."""
    g = np.random.default_rng(3).normal(size=(512, 512))
    g = ndimage.gaussian_filter(g, (6, 0.7), mode="wrap")
    return (1 + 0.25 * g / g.std()).astype(np.float32)


def _smooth_noise(rng, H, W, n=4):
    """(H, W) low-frequency noise in about [-1, 1]."""
    g = rng.normal(size=(n, n))
    return ndimage.zoom(g, (H / n, W / n), order=1, mode="nearest")[:H, :W] / 2


def _background(rng, H, W, clutter):
    """(H, W, 3) float: a crop of a sample photo or procedural clutter (or a plain gradient)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32) / max(H, W)
    a, b = rng.uniform(0, 1, 3).astype(np.float32), rng.uniform(0, 1, 3).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)), 0, 1)[..., None]
    img = a + t * (b - a)
    if not clutter:
        return img + 0.03 * _smooth_noise(rng, H, W)[..., None]
    if rng.random() < 0.55:  # a crop of a real photo
        photos = _photos()
        p = photos[rng.integers(len(photos))]
        c = rng.uniform(0.2, 1.0) * min(p.shape[:2])
        y0, x0 = rng.uniform(0, p.shape[0] - c), rng.uniform(0, p.shape[1] - c)
        rows = (y0 + (np.arange(H) + 0.5) * c / H).astype(int)
        cols = (x0 + (np.arange(W) + 0.5) * c / W).astype(int)
        img = p[rows][:, cols] * rng.uniform(0.7, 1.2, 3)
        if rng.random() < 0.5:
            img = img[:, ::-1]
    else:  # procedural clutter: tinted noise, stripes, boxes and discs
        img = img + 0.25 * _smooth_noise(rng, H, W, 6)[..., None] * rng.uniform(-1, 1, 3)
        if rng.random() < 0.3:
            f = rng.uniform(4, 30)
            img = img * (0.8 + 0.2 * np.sign(np.sin(f * (xx * np.cos(ang) + yy * np.sin(ang)))))[..., None]
        for _ in range(rng.integers(0, 7)):
            x0, y0 = rng.uniform(-0.2, 1, 2)
            w, h = rng.uniform(0.05, 0.6, 2)
            box = (xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h)
            if rng.random() < 0.4:
                box = (xx - x0) ** 2 + (yy - y0) ** 2 < (w / 2) ** 2
            img[box] = img[box] * rng.uniform(0, 0.5) + rng.uniform(0, 1, 3)
    return np.clip(img, 0, 1).astype(np.float32)


def _ellipsoid(affine, centre, radii, H, W):
    """Orthographic view of an ellipsoid (model mm) posed by ``affine``. Returns the pixel
    rows and columns it covers, its front depth and unit normal there ((K,), (K,), (K,), (K, 3))."""
    M = affine[:, :3] @ np.diag(radii)
    c = affine[:, :3] @ centre + affine[:, 3]
    half = np.sqrt(((M @ M.T)[[0, 1], [0, 1]]))  # half extents of the outline in x and y
    x0, y0 = np.maximum(np.floor(c[:2] - half).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(c[:2] + half).astype(int), [W, H])
    yy, xx = np.mgrid[y0:max(y1, y0), x0:max(x1, x0)]
    dx, dy = (xx + 0.5 - c[0]).ravel(), (yy + 0.5 - c[1]).ravel()
    Q = np.linalg.inv(M @ M.T)  # inside: (p - c)^T Q (p - c) <= 1
    # Quadratic in dz = z - c_z:  Q22 dz^2 + 2 (Q20 dx + Q21 dy) dz + (d^T Q_xy d - 1) = 0
    b = Q[2, 0] * dx + Q[2, 1] * dy
    cc = Q[0, 0] * dx * dx + 2 * Q[0, 1] * dx * dy + Q[1, 1] * dy * dy - 1
    disc = b * b - Q[2, 2] * cc
    k = disc > 0
    dx, dy, b, disc = dx[k], dy[k], b[k], disc[k]
    dz = (-b + np.sqrt(disc)) / Q[2, 2]
    n = np.stack([dx, dy, dz], 1) @ Q
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    return yy.ravel()[k], xx.ravel()[k], c[2] + dz, n


def _lambert(n, look):
    return look["ambient"] + look["diffuse"] * np.clip(n @ look["light"], 0, None)[..., None]


def _draw_head(image, affine, look, rng):
    """Draw neck, head (hair) and ears behind the face, in place. They belong to no target:
    VRN's volumes hold the face only, as in 300W-LP."""
    from skimage.draw import polygon

    H, W = image.shape[:2]
    px = lambda p: p @ affine[:, :3].T + affine[:, 3]  # noqa: E731
    R = affine[:, :3] / np.linalg.norm(affine[0, :3])
    skin = look["skin"]
    # Shoulders in clothes, then the neck: ellipsoids under the head, in shadow.
    tr, tc, _, n = _ellipsoid(affine, np.array([0.0, 330.0, -70.0]), np.array([210.0, 120.0, 110.0]), H, W)
    image[tr, tc] = look["clothes"] * _lambert(n, look) * look["light_colour"]
    nr, nc, _, n = _ellipsoid(affine, np.array([0.0, 150.0, -62.0]), np.array([43.0, 125.0, 43.0]), H, W)
    image[nr, nc] = skin * 0.8 * _lambert(n, look) * look["light_colour"]
    # Head: an ellipsoid of hair (or skin), with streaks.
    hr, hc, hz, n = _ellipsoid(affine, np.array([0.0, -28.0, -88.0]), np.array([79.0, 104.0, 102.0]), H, W)
    # Hair above a line from the ears round the back of the head; skin below it (jaw, nape).
    p = np.linalg.solve(affine[:, :3], np.stack([hc + 0.5, hr + 0.5, hz]) - affine[:, 3:])  # model mm
    hairy = p[1] < 22 + 0.5 * np.clip(-88 - p[2], 0, None) - 8 * np.abs(np.sin(p[0] / 9))
    o = rng.integers(0, 512 - max(H, W) + 1, 2)
    streak = _streaks()[hr + o[0], hc + o[1], None]
    col = np.where(hairy[:, None] & (not look["bald"]), look["hair"] * streak, skin * 0.95)
    image[hr, hc] = col * _lambert(n, look) * look["light_colour"]
    zhead = np.full((H, W), -np.inf)
    zhead[hr, hc] = hz
    # Ears: flat ellipses turned 25 deg forward, drawn where they are in front of the head.
    for side in (-1, 1):
        nrm = np.array([side * np.cos(np.radians(25)), 0, np.sin(np.radians(25))])
        back = np.array([-nrm[2], 0, nrm[0]]) * side
        t = np.linspace(0, 2 * np.pi, 20, endpoint=False)[:, None]
        centre = np.array([side * 74.0, 14.0, -97.0])
        for scale, tone in ((1.0, 0.95), (0.55, 0.65)):
            ring = centre + scale * (31 * np.cos(t) * [0, 1, 0] + 17 * np.sin(t) * back) + (1 - scale) * 8 * back
            q = px(ring)
            rr, cc = polygon(q[:, 1] - 0.5, q[:, 0] - 0.5, (H, W))
            zc = px(centre)[2]
            n_post = R @ nrm
            n_post = n_post * np.sign(n_post[2] + 1e-9)  # the side we see
            front = zc > zhead[rr, cc]
            rr, cc = rr[front], cc[front]
            image[rr, cc] = skin * np.array([1.0, 0.93, 0.9]) * tone * _lambert(n_post, look) * look["light_colour"]


# ---------------------------------------------------------------------------------------------
# In front of the face: occluders; then the camera

def _occluders(image, landmarks, look, rng, p=0.35):
    """With probability p draw 1-2 occluders (hand, bar, blob, sunglasses) over the face, in
    place. Returns the (H, W) bool mask of occluded pixels."""
    from skimage.draw import ellipse, polygon

    H, W = image.shape[:2]
    occ = np.zeros((H, W), bool)
    if rng.random() >= p:
        return occ
    lo, hi = landmarks[:, :2].min(0), landmarks[:, :2].max(0)
    size = float(np.sqrt(np.prod(hi - lo)))
    for _ in range(rng.integers(1, 3)):
        kind = rng.choice(["hand", "bar", "blob", "glasses"], p=[0.35, 0.3, 0.25, 0.1])
        centre = landmarks[rng.integers(68), :2] + rng.normal(0, 0.15 * size, 2)
        ang = rng.uniform(0, np.pi)
        colour = rng.uniform(0, 1, 3)
        m = np.zeros((H, W), bool)
        if kind == "hand":  # a palm and four fingers, in some other skin tone
            colour = _mix(SKIN_TONES, rng)
            r = size * rng.uniform(0.18, 0.28)
            m[ellipse(centre[1], centre[0], r, r * 0.8, (H, W), rotation=ang)] = True
            for k in range(4):
                a = ang + (k - 1.5) * 0.28
                tip = centre + np.array([np.cos(a), np.sin(a)]) * r * 2.1
                mid = (centre + tip) / 2
                m[ellipse(mid[1], mid[0], r * 0.2, r * 1.15, (H, W), rotation=np.pi / 2 - a)] = True
        elif kind == "bar":  # a pole, microphone, arm...
            d = np.array([np.cos(ang), np.sin(ang)])
            w = size * rng.uniform(0.06, 0.2)
            ends = [centre - d * 2 * size, centre + d * rng.uniform(0, 2) * size]
            nrm = np.array([-d[1], d[0]]) * w / 2
            q = np.array([ends[0] + nrm, ends[1] + nrm, ends[1] - nrm, ends[0] - nrm])
            m[polygon(q[:, 1], q[:, 0], (H, W))] = True
        elif kind == "blob":
            r = size * rng.uniform(0.12, 0.35, 2)
            m[ellipse(centre[1], centre[0], r[0], r[1], (H, W), rotation=ang)] = True
        else:  # sunglasses over the eyes
            colour = rng.uniform(0, 0.15, 3)
            eyes = [landmarks[36:42, :2].mean(0), landmarks[42:48, :2].mean(0)]
            for e in eyes:
                m[ellipse(e[1], e[0], size * 0.11, size * 0.16, (H, W))] = True
            q = np.array([eyes[0] + [0, -1], eyes[1] + [0, -1], eyes[1] + [0, 1], eyes[0] + [0, 1]])
            m[polygon(q[:, 1], q[:, 0], (H, W))] = True
        yy, xx = np.nonzero(m)
        g = 0.75 + 0.4 * ((xx - centre[0]) * look["light"][0] + (yy - centre[1]) * look["light"][1]) / (size + 1)
        image[yy, xx] = np.clip(colour * g[:, None], 0, 1)
        occ |= m
    return occ


def _camera(image, rng, width):
    """Colour jitter, blur, sensor noise, 8-bit quantisation and JPEG -> (H, W, 3) uint8."""
    img = image * rng.uniform(0.93, 1.07, 3).astype(np.float32) + np.float32(rng.normal(0, 0.03))
    mean = img.mean()
    img = np.clip((img - mean) * np.float32(rng.uniform(0.8, 1.2)) + mean, 0, 1) ** np.float32(rng.uniform(0.8, 1.25))
    if rng.random() < 0.35:
        img = ndimage.gaussian_filter(img, (*(rng.uniform(0.3, 1.3) * width / 192,) * 2, 0))
    img = img + np.float32(rng.uniform(0, 0.03)) * rng.standard_normal(img.shape, dtype=np.float32)
    out = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(30, 95)))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out
