"""Everything in a SynthFaces photo that is not the face mesh: background, the head around the
face (hair styles, ears, neck, shoulders), accessories (glasses, sunglasses, hats), occluders
(hands, cups, phones, microphones, poles) and the camera (blur, sharpening, noise, JPEG).

Surfaces are not painted as colours but written into a :class:`Surfaces` buffer (albedo,
normal, depth per pixel), back to front; synthfaces.render then lights all of them at once, so
the neck lies in the jaw's shadow and a hand is lit like the face it covers. Geometry is given
in the face model's frame (mm, x right, y down, z toward the viewer; origin between the eyes at
the corneas' depth) and posed by the sample's affine map (model mm -> crop pixels). None of it
belongs to the 3D target: VRN's volumes hold the face only, as in 300W-LP.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> background(rng, 32, 32, clutter=True).shape
(32, 32, 3)
"""
from __future__ import annotations

import functools
import io

import numpy as np
from scipy import ndimage

from ..raster import rasterize
from .texture import SKIN_TONES, random_mix

HEAD_CENTRE = np.array([0.0, -28.0, -88.0])  # mm: the skull as an ellipsoid (hair is added on top)
HEAD_RADII = np.array([76.0, 100.0, 99.0])
HAIR_STYLES = ("short", "medium", "long", "curly", "bun")
HAIR_STYLE_P = {True: (0.72, 0.12, 0.05, 0.11, 0.0), False: (0.12, 0.3, 0.4, 0.1, 0.08)}  # men, women
GLASSES_P, HAT_P = 0.2, 0.05  # people wearing glasses, a hat
BACKGROUND_BLUR_P = 0.7  # share of cluttered backgrounds out of focus
SHARPEN_P = 0.7  # share of photos sharpened by the camera
SUNGLASSES_SHARE = 0.2  # of the glasses: dark lenses
# Where occluders sit: landmark groups (mouth and lower jaw, sides of the face, eyes and nose)
OCCLUDER_ANCHORS = (list(range(4, 13)) + list(range(48, 68)), [0, 1, 2, 3, 13, 14, 15, 16], list(range(27, 48)))
OCCLUDER_ANCHOR_P = (0.45, 0.45, 0.1)


class Surfaces:
    """Per-pixel surface attributes, written back to front (a later write covers an earlier one).

    albedo (H, W, 3), normal (H, W, 3) unit, depth (H, W) crop z (larger = nearer; -inf where
    nothing is drawn), shine (H, W) specular weight, ao (H, W) ambient visibility (1 = open);
    all float32, views into one (H, W, 9) array so that a write is a single scatter.
    """

    def __init__(self, H, W):
        """Nothing drawn yet."""
        self.data = np.zeros((H, W, 9), np.float32)
        self.data[..., 6] = -np.inf
        self.data[..., 8] = 1
        self.albedo, self.normal = self.data[..., 0:3], self.data[..., 3:6]
        self.depth, self.shine, self.ao = self.data[..., 6], self.data[..., 7], self.data[..., 8]

    def put(self, rows, cols, albedo, normal, depth, shine=0.0, ao=1.0):
        """Write surface pixels (rows, cols); each attribute per pixel or one for all."""
        block = np.empty((len(rows), 9), np.float32)
        block[:, 0:3], block[:, 3:6], block[:, 6], block[:, 7], block[:, 8] = albedo, normal, depth, shine, ao
        self.data[rows, cols] = block


def draw_style(rng, look) -> dict:
    """Hair style, head and accessory choices for one person (drawn in a fixed order), to be
    merged into the look from texture.draw_look."""
    male = look["male"]
    style = HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=HAIR_STYLE_P[male])]
    style = "short" if look["bald"] else style  # (a bald head: no hair to style)
    sides = {}
    if style in ("medium", "long", "curly"):  # the hair comes down the sides of the face over the ears
        sides = dict(side_from=rng.uniform(108, 118), side_to=rng.uniform(50, 90))  # (see texture.face_albedo)
    volume = dict(short=(2, 9), medium=(5, 12), long=(5, 12), curly=(20, 38), bun=(2, 6))[style]
    glasses = rng.random() < GLASSES_P
    hat = rng.random() < HAT_P
    return dict(
        **sides, style=style, volume=rng.uniform(*volume), hair_low=rng.uniform(-10, 25),
        neck=rng.uniform(44, 52) * (1.1 if male else 1.0), clothes=rng.uniform(0, 1, 3) ** 1.5,
        glasses=glasses, frame=rng.uniform(1.2, 4.5), frame_colour=rng.choice(4), lens=rng.uniform(15, 21),
        lens_square=rng.uniform(2.2, 5.0),
        lens_tint=rng.uniform(0.8, 0.95) if rng.random() < SUNGLASSES_SHARE else rng.uniform(0.0, 0.25),
        hat=hat and not glasses, hat_kind=rng.choice(["beanie", "cap"]), hat_colour=rng.uniform(0, 1, 3) ** 1.3,
        hat_line=rng.uniform(-62, -48),
    )


# ---------------------------------------------------------------------------------------------
# Background

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


def _smooth_noise(rng, H, W, n=4):
    """(H, W) float32 low-frequency noise in about [-1, 1]: an n x n random grid stretched
    over the image by linear interpolation (as two small matrix products)."""
    g = rng.normal(size=(n, n)).astype(np.float32)
    return _stretch(n, H) @ g @ _stretch(n, W).T / 2


@functools.lru_cache(maxsize=8)
def _stretch(n, size):
    """(size, n) float32 matrix that linearly interpolates n samples onto size pixels."""
    pos = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
    lo = np.minimum(pos.astype(int), n - 2)
    out = np.zeros((size, n), np.float32)
    out[np.arange(size), lo] = 1 - (pos - lo)
    out[np.arange(size), lo + 1] = pos - lo
    return out


def _mix(a, b, t) -> np.ndarray:
    """(H, W, 3) float32 a + t * (b - a) for colours a, b and weights t (H, W), channel by channel
    (twice as fast as broadcasting over a last axis of 3)."""
    a, d = np.broadcast_to(np.float32(a), 3), np.asarray(b, np.float32) - np.float32(a)
    return np.stack([a[i] + t * d[i] for i in range(3)], -1)


def background(rng, H, W, clutter):
    """(H, W, 3) float32: a crop of a sample photo or procedural clutter, mostly out of focus (or a
    plain gradient)."""
    yy, xx = np.ogrid[0:H, 0:W]
    yy, xx = yy.astype(np.float32) / max(H, W), xx.astype(np.float32) / max(H, W)
    a, b = rng.uniform(0, 1, 3).astype(np.float32), rng.uniform(0, 1, 3).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    cos, sin = np.float32(np.cos(ang)), np.float32(np.sin(ang))
    gradient = lambda: _mix(a, b, np.clip(0.5 + cos * (xx - 0.5) + sin * (yy - 0.5), 0, 1))  # noqa: E731
    if not clutter:
        return (gradient() + 0.03 * _smooth_noise(rng, H, W)[..., None]).astype(np.float32)
    resample = 0.0
    if rng.random() < 0.55:  # a crop of a real photo
        photos = _photos()
        p = photos[rng.integers(len(photos))]
        c = rng.uniform(0.2, 1.0) * min(p.shape[:2])
        y0, x0 = rng.uniform(0, p.shape[0] - c), rng.uniform(0, p.shape[1] - c)
        rows = (y0 + (np.arange(H) + 0.5) * c / H).astype(int)
        cols = (x0 + (np.arange(W) + 0.5) * c / W).astype(int)
        img = p[rows[:, None], cols] * rng.uniform(0.7, 1.2, 3).astype(np.float32)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        resample = 1.4 * H / c  # (px) a blur this wide hides the blocks of a photo enlarged by picking pixels
    else:  # procedural clutter: tinted noise, stripes, boxes and discs
        img = gradient() + _mix(0, rng.uniform(-1, 1, 3), 0.25 * _smooth_noise(rng, H, W, 6))
        if rng.random() < 0.3:
            f = rng.uniform(4, 30)
            img = img * (0.8 + 0.2 * np.sign(np.sin(f * (xx * np.cos(ang) + yy * np.sin(ang)))))[..., None]
        S = max(H, W)
        for _ in range(rng.integers(0, 7)):
            x0, y0 = rng.uniform(-0.2, 1, 2)
            w, h = rng.uniform(0.05, 0.6, 2)
            if rng.random() < 0.4:  # a disc, drawn within its bounding square
                r0, r1 = max(int((y0 - w / 2) * S), 0), max(int(np.ceil((y0 + w / 2) * S)), 0)
                c0, c1 = max(int((x0 - w / 2) * S), 0), max(int(np.ceil((x0 + w / 2) * S)), 0)
                box = (xx[:, c0:c1] - x0) ** 2 + (yy[r0:r1] - y0) ** 2 < (w / 2) ** 2
            else:  # a box: the pixels with (xx, yy) >= (x0, y0) and < (x0 + w, y0 + h), as a slice
                r0, r1 = max(int(np.ceil(y0 * S)), 0), max(int(np.ceil((y0 + h) * S)), 0)
                c0, c1 = max(int(np.ceil(x0 * S)), 0), max(int(np.ceil((x0 + w) * S)), 0)
                box = np.ones((len(yy[r0:r1]), len(xx[0, c0:c1])), bool)
            patch = img[r0:r1, c0:c1]
            patch[box] = patch[box] * rng.uniform(0, 0.5) + rng.uniform(0, 1, 3)
    # Depth of field: the camera focused on the face, the background behind it soft. A box blur
    # (a lens' blur is a disc, not a Gaussian; and a box costs half as much) of width k px.
    k = rng.uniform(2, 12) * W / 192 if rng.random() < BACKGROUND_BLUR_P else 0.0
    k = int(round(np.hypot(k, resample)))
    if k >= 2:
        img = ndimage.uniform_filter1d(ndimage.uniform_filter1d(img, k, axis=0), k, axis=1)
    return np.clip(img, 0, 1).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The head around the face: shoulders, neck, hair, ears

def _ellipsoid(affine, centre, radii, H, W):
    """Orthographic view of an ellipsoid (model mm) posed by ``affine``. Returns the pixel
    rows and columns it covers, its front depth and unit normal there ((K,), (K,), (K,), (K, 3))."""
    M = affine[:, :3] @ np.diag(radii)
    c = affine[:, :3] @ centre + affine[:, 3]
    half = np.sqrt(((M @ M.T)[[0, 1], [0, 1]]))  # half extents of the outline in x and y
    x0, y0 = np.maximum(np.floor(c[:2] - half).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(c[:2] + half).astype(int), [W, H])
    Q = np.linalg.inv(M @ M.T).astype(np.float32)  # inside: (p - c)^T Q (p - c) <= 1
    dy, dx = np.ogrid[y0:max(y1, y0), x0:max(x1, x0)]
    dx, dy = (dx + np.float32(0.5 - c[0])).astype(np.float32), (dy + np.float32(0.5 - c[1])).astype(np.float32)
    # Quadratic in dz = z - c_z:  Q22 dz^2 + 2 (Q20 dx + Q21 dy) dz + (d^T Q_xy d - 1) = 0
    b = Q[2, 0] * dx + Q[2, 1] * dy
    cc = Q[0, 0] * dx * dx + 2 * Q[0, 1] * dx * dy + Q[1, 1] * dy * dy - 1
    disc = b * b - Q[2, 2] * cc
    rows, cols = np.nonzero(disc > 0)
    b, disc = b[rows, cols], disc[rows, cols]
    dx, dy = dx[0, cols], dy[rows, 0]
    dz = (np.sqrt(disc) - b) / Q[2, 2]
    n = np.stack([dx, dy, dz], 1) @ Q
    n *= 1 / np.sqrt(n[:, 0] ** 2 + n[:, 1] ** 2 + n[:, 2] ** 2 + 1e-12)[:, None]
    return rows + y0, cols + x0, c[2] + dz, n


def _to_model(affine, rows, cols, depth):
    """Crop pixel centres with depths -> (3, K) model mm (the affine is a scaled rotation)."""
    inverse = np.linalg.inv(affine[:, :3])
    return inverse @ (np.stack([cols + 0.5, rows + 0.5, depth]) - affine[:, 3:])


@functools.lru_cache(maxsize=2)
def _streaks(curly: bool = False) -> np.ndarray:
    """(512, 512) float32 hair texture around 1: streaks along the hair, or tufts for curls."""
    g = np.random.default_rng(3).normal(size=(512, 512))
    g = ndimage.gaussian_filter(g, 1.2 if curly else (6, 0.7), mode="wrap")
    return (1 + (0.4 if curly else 0.25) * g / g.std()).astype(np.float32)


def draw_head(surf: Surfaces, affine, look, rng):
    """Shoulders, neck, hair (in the look's style) and ears, into ``surf`` behind the face."""
    H, W = surf.depth.shape
    skin, hair = look["skin"], look["hair"]
    up = np.float32([0, -1, 0])
    # Shoulders in clothes, then long hair falling behind them, then the neck.
    r, c, z, n = _ellipsoid(affine, np.array([0.0, 305.0, -75.0]), np.array([205.0, 118.0, 110.0]), H, W)
    surf.put(r, c, look["clothes"] * (0.9 + 0.1 * np.abs(n @ up))[:, None], n, z, 0.1, 0.9)
    o = rng.integers(0, 512 - max(H, W) + 1, 2)
    streak = _streaks(look["style"] == "curly")[o[0]:o[0] + H, o[1]:o[1] + W]
    vol = look["volume"]
    if look["style"] == "long":
        r, c, z, n = _ellipsoid(affine, np.array([0.0, 75.0 + look["hair_low"], -105.0]),
                                np.array([HEAD_RADII[0] + vol + 12, 150.0, 60.0]), H, W)
        surf.put(r, c, hair * streak[r, c, None], n, z, 0.6, 0.55)
    # The neck: its front (the throat) about 35 mm behind the chin, so the jaw shades it. A tall
    # ellipsoid whose top is inside the skull, so it is nearly its full width under the jaw and
    # the ears (a short one tapered there: a head on a stalk); cut off where it enters the clothes.
    r, c, z, n = _ellipsoid(affine, np.array([0.0, 170.0, -84.0]), np.array([look["neck"], 180.0, 50.0]), H, W)
    keep = _to_model(affine, r, c, z)[1] < 235
    surf.put(r[keep], c[keep], skin * 0.92, n[keep], z[keep], 0.5, 0.6)
    if look["style"] == "bun":
        r, c, z, n = _ellipsoid(affine, np.array([0.0, -95.0, -150.0]), np.array([34.0, 30.0, 34.0]), H, W)
        surf.put(r, c, hair * streak[r, c, None], n, z, 0.6, 0.8)
    # Head: an ellipsoid of hair (or skin), bigger for more voluminous styles.
    r, c, z, n = _ellipsoid(affine, HEAD_CENTRE + [0, -vol / 3, -vol / 4], HEAD_RADII + [vol, vol, vol], H, W)
    p = _to_model(affine, r, c, z)
    # Hair above a line from the ears round the back of the head (lower for longer styles);
    # skin below it (jaw, nape).
    low = dict(short=22.0, medium=55.0, long=70.0, curly=40.0, bun=22.0)[look["style"]]
    hairy = p[1] < low + 0.5 * np.clip(-88 - p[2], 0, None) - 8 * np.abs(np.sin(p[0] / 9))
    hairy &= not look["bald"]
    col = np.where(hairy[:, None], hair * streak[r, c, None], skin)
    surf.put(r, c, col, n, z, np.where(hairy, 0.6, 0.5), np.where(hairy, 0.75, 0.9))


def draw_ears(surf, affine, look):
    """Ears, where short hair leaves them free: flat ellipses turned 25 deg forward, standing out
    of the skull (through short hair), drawn after the face mesh where they are in front of what
    is there. (The mesh's sides reach the ears: drawn before it, it hid part of a turned head's near ear.)"""
    if look["style"] in ("short", "bun") or look["bald"]:
        _draw_ears(surf, affine, look["skin"], 0 if look["bald"] else look["volume"])


def _draw_ears(surf, affine, skin, out):
    """Ears standing ``out`` mm out of the skull; each pixel's depth is the ear's plane there."""
    from skimage.draw import polygon

    H, W = surf.depth.shape
    px = lambda p: p @ affine[:, :3].T + affine[:, 3]  # noqa: E731
    R = affine[:, :3] / np.linalg.norm(affine[0, :3])
    for side in (-1, 1):
        nrm = np.array([side * np.cos(np.radians(25)), 0, np.sin(np.radians(25))])
        back = np.array([-nrm[2], 0, nrm[0]]) * side
        t = np.linspace(0, 2 * np.pi, 20, endpoint=False)[:, None]
        centre = np.array([side * (74.0 + out), 14.0, -97.0])
        c = px(centre)
        n_post = R @ nrm
        n_post = (n_post * np.sign(n_post[2] + 1e-9)).astype(np.float32)  # the side we see
        nz = max(float(n_post[2]), 0.05)  # (seen edge on, the ear is a sliver: its slope may be cut)
        for scale, tone in ((1.0, 0.95), (0.55, 0.6)):
            ring = centre + scale * (31 * np.cos(t) * [0, 1, 0] + 17 * np.sin(t) * back) + (1 - scale) * 8 * back
            q = px(ring)
            rr, cc = polygon(q[:, 1] - 0.5, q[:, 0] - 0.5, (H, W))
            z = (c[2] - (n_post[0] * (cc + 0.5 - c[0]) + n_post[1] * (rr + 0.5 - c[1])) / nz).astype(np.float32)
            front = z >= surf.depth[rr, cc]  # (>=, in float32 as stored: the hollow is drawn over its own rim)
            surf.put(rr[front], cc[front], skin * np.float32([1.0, 0.9, 0.87]) * tone, n_post, z[front], 0.3, 0.7)


# ---------------------------------------------------------------------------------------------
# Accessories (part of the person: glasses, hats) and occluders (in front of the face)

def _ring(cx, cy, a, b, power, n=28):
    """(n, 2) points of a superellipse |x/a|^p + |y/b|^p = 1 around (cx, cy): a lens outline."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    return np.stack([cx + a * np.sign(c) * np.abs(c) ** (2 / power), cy + b * np.sign(s) * np.abs(s) ** (2 / power)], 1)


def _glasses_mesh(look):
    """Glasses in model mm: (vertices (N, 3), frame triangles, lens triangles)."""
    verts, frame, lens = [], [], []
    count = 0  # vertices so far
    zf = 15.0  # mm in front of the corneas
    w = float(look["frame"])
    curve = lambda x: zf - 0.004 * np.asarray(x) ** 2  # noqa: E731  (the frame curves back around the face)
    for side in (-1, 1):
        cx, cy = side * 31.0, 2.0
        outer = _ring(cx, cy, 24.0 + w, look["lens"] + w, look["lens_square"])
        inner = _ring(cx, cy, 24.0, look["lens"], look["lens_square"])
        n = len(outer)
        z = curve(outer[:, 0])[:, None]
        verts += [np.c_[outer, z], np.c_[inner, z], [[cx, cy, curve(cx)]]]  # outline, inner outline, centre
        i = np.arange(n)
        o, q, j = count + i, count + n + i, count + (i + 1) % n  # outer, inner, next outer
        frame.append(np.stack([o, j, q, j, j + n, q], 1).reshape(-1, 3))  # two triangles per segment
        lens.append(np.stack([np.full(n, count + 2 * n), q, (i + 1) % n + count + n], 1))
        count += 2 * n + 1
        # Temple arm from the lens' outer edge back to the ear.
        x0 = side * (31.0 + 24.0 + w)
        verts.append([[x0, -3, curve(x0)], [x0, -3 + w + 1, curve(x0)], [side * 76.0, -1, -85.0], [side * 76.0, w + 2, -85.0]])
        frame.append(count + np.array([[0, 1, 2], [1, 3, 2]]))
        count += 4
    # Bridge over the nose.
    verts.append([[-8.0, -1, 22.0], [8.0, -1, 22.0], [-8.0, 1 + w, 22.0], [8.0, 1 + w, 22.0]])
    frame.append(count + np.array([[0, 1, 2], [1, 3, 2]]))
    return np.concatenate(verts).astype(np.float64), np.concatenate(frame), np.concatenate(lens)


FRAME_COLOURS = np.array([[0.03, 0.03, 0.03], [0.25, 0.13, 0.06], [0.6, 0.6, 0.62], [0.7, 0.55, 0.25]])


def draw_glasses(surf, affine, look):
    """Glasses over the face: the frame into ``surf`` where nearer than what is there; returns the
    (H, W) bool mask of the frame and the lens mask (composited after shading)."""
    H, W = surf.depth.shape
    v, frame, lens = _glasses_mesh(look)
    p = v @ affine[:, :3].T + affine[:, 3]
    r = rasterize(p, np.concatenate([frame, lens]), H, W, bary=False)
    seen = r.mask & (r.depth > surf.depth)
    is_frame = seen & (r.triangle < len(frame))
    n = (affine[:, :3] @ [0, 0, 1.0]) / np.linalg.norm(affine[0, :3])
    rr, cc = np.nonzero(is_frame)
    surf.put(rr, cc, FRAME_COLOURS[look["frame_colour"]].astype(np.float32), n.astype(np.float32),
             r.depth[rr, cc], 1.5, 1.0)
    return is_frame, seen & ~is_frame


def draw_hat(surf, affine, look):
    """A beanie or a cap over the head down to ``hat_line`` (model y, mm); returns its (H, W) mask."""
    H, W = surf.depth.shape
    mask = np.zeros((H, W), bool)
    r, c, z, n = _ellipsoid(affine, HEAD_CENTRE + [0, -4, 0], HEAD_RADII + [9, 8, 9], H, W)
    p = _to_model(affine, r, c, z)
    on = p[1] < look["hat_line"] - 0.12 * np.clip(-p[2] - 40, 0, None)
    col = look["hat_colour"] * (0.9 + 0.1 * np.cos(p[0][on] / 1.5))[:, None]  # knit ribs
    surf.put(r[on], c[on], col.astype(np.float32), n[on], z[on], 0.2, 0.9)
    mask[r[on], c[on]] = True
    if look["hat_kind"] == "cap":  # a brim: a half disc sticking out over the brows
        t = np.linspace(0, np.pi, 13)
        y0 = look["hat_line"] + 2
        rim = np.stack([np.cos(t) * 75, y0 + 4 + 0.25 * np.sin(t) * 55, 8 + np.sin(t) * 55], 1)  # tilted down 14 deg
        v = np.concatenate([[[0.0, y0, -20.0]], rim])
        tri = np.array([[0, i, i + 1] for i in range(1, len(v) - 1)])
        q = v @ affine[:, :3].T + affine[:, 3]
        rb = rasterize(q, tri, H, W, bary=False)
        rr, cc = np.nonzero(rb.mask)
        nb = (affine[:, :3] @ [0, -1.0, 0.15]) / np.linalg.norm(affine[0, :3]) / np.hypot(1, 0.15)
        nb = nb * np.sign(nb[2] + 1e-9)
        surf.put(rr, cc, look["hat_colour"].astype(np.float32) * 0.9, nb.astype(np.float32), rb.depth[rr, cc], 0.2, 0.8)
        mask |= rb.mask
    return mask


OCCLUDER_KINDS = ("hand", "cup", "phone", "microphone", "bar")
OCCLUDER_P = (0.5, 0.15, 0.17, 0.12, 0.06)


def draw_occluders(surf, landmarks, rng, p=0.25):
    """With probability p draw an occluder (OCCLUDER_KINDS; sometimes two) in front of the face
    into ``surf``, each lit like a surface. Returns the (H, W) bool mask of what they cover."""
    H, W = surf.depth.shape
    occ = np.zeros((H, W), bool)
    if rng.random() >= p:
        return occ
    lo, hi = landmarks[:, :2].min(0), landmarks[:, :2].max(0)
    size = float(np.sqrt(np.prod(hi - lo)))  # the face's size in px (about 140 mm)
    front = np.float32(landmarks[:, 2].max() + size)  # nearer than the face
    for _ in range(1 + (rng.random() < 0.2)):
        kind = OCCLUDER_KINDS[rng.choice(len(OCCLUDER_KINDS), p=OCCLUDER_P)]
        # Mostly over the lower face and the sides (a hand at the chin, a cup), seldom the eyes.
        group = OCCLUDER_ANCHORS[rng.choice(len(OCCLUDER_ANCHORS), p=OCCLUDER_ANCHOR_P)]
        centre = landmarks[rng.choice(group), :2] + rng.normal(0, 0.1 * size, 2)
        ang = rng.uniform(0, np.pi)
        along = np.array([np.cos(ang), np.sin(ang)])
        colour = (rng.uniform(0, 1, 3) ** 1.5).astype(np.float32)
        draw = lambda *a, **k: _rod(surf, occ, front, *a, **k)  # noqa: E731
        if kind == "hand":
            _hand(surf, occ, front, centre, along, size * rng.uniform(0.13, 0.2), random_mix(SKIN_TONES, rng), rng)
        elif kind == "cup":  # held upright in front of the mouth or chin: a cylinder ~ 0.55 x 0.7 of the face
            up = np.array([rng.normal(0, 0.15), -1.0])
            draw(centre, up / np.linalg.norm(up), size * 0.32, size * 0.22, colour + 0.3 * (1 - colour), 0.5)
        elif kind == "phone":  # at the ear or in front of the face: a thin dark slab
            draw(centre, along, size * 0.36, size * 0.17, np.float32([0.04, 0.04, 0.05]) + 0.2 * colour, 2.0, flat=True)
        elif kind == "microphone":  # a handle up to a round mesh head near the mouth
            head = landmarks[rng.choice([48, 54, 57, 8]), :2] + rng.normal(0, 0.05 * size, 2)
            down = np.array([rng.normal(0, 0.4), 1.0])
            down /= np.linalg.norm(down)
            draw(head + down * size * 0.5, down, size * 0.45, size * 0.07, np.float32([0.08, 0.08, 0.08]), 1.0)
            draw(head, down, size * 0.1, size * 0.1, np.float32([0.25, 0.25, 0.27]), 0.5)
        else:  # a pole or a railing across part of the face
            draw(centre + along * size * 0.4, along, size * 1.2, size * rng.uniform(0.05, 0.12), colour, 1.0)
    return occ


def _rod(surf, occ, depth, centre, along, half_length, half_width, colour, shine, *, flat=False):
    """A rounded rectangle (a cylinder seen from the side, or with ``flat`` a slab) around
    ``centre`` (x, y px) along the unit vector ``along``, into ``surf`` and ``occ``."""
    H, W = occ.shape
    across = np.array([-along[1], along[0]])
    r = min(half_length, half_width)
    lo = np.maximum(np.floor(centre - half_length - half_width), 0).astype(int)
    hi = np.minimum(np.ceil(centre + half_length + half_width), [W, H]).astype(int)
    yy, xx = np.mgrid[lo[1]:max(hi[1], lo[1]), lo[0]:max(hi[0], lo[0])]
    dx, dy = xx + 0.5 - centre[0], yy + 0.5 - centre[1]
    u, v = dx * along[0] + dy * along[1], dx * across[0] + dy * across[1]
    # Inside a rectangle with rounded corners of radius r.
    cu, cv = np.clip(np.abs(u) - (half_length - r), 0, None), np.clip(np.abs(v) - (half_width - r), 0, None)
    inside = cu * cu + cv * cv <= r * r
    rows, cols = yy[inside], xx[inside]
    t = np.clip(v[inside] / half_width, -1, 1)  # -1..1 across
    if flat:  # a slab: faces the camera, rounded only at its rim
        t = np.where(np.abs(t) > 0.85, t, 0.0)
    n = np.stack([across[0] * t, across[1] * t, np.sqrt(np.clip(1 - t * t, 0.05, 1))], 1).astype(np.float32)
    surf.put(rows, cols, colour, n, depth, shine, 1.0)
    occ[rows, cols] = True


def _hand(surf, occ, depth, centre, along, r, colour, rng):
    """A hand: a palm, four fingers side by side and a thumb, each part a rounded rod, so the
    fingers separate in the shading."""
    across = np.array([-along[1], along[0]])
    colour = colour.astype(np.float32)
    _rod(surf, occ, depth, centre, along, r, r * 0.85, colour, 0.4)
    for k, length in enumerate((1.2, 1.4, 1.35, 1.05)):
        base = centre + along * r * 0.7 + across * (k - 1.5) * 0.43 * r
        _rod(surf, occ, depth, base + along * length * r / 2, along, length * r / 2 + 0.1 * r, 0.2 * r, colour, 0.4)
    side = rng.choice([-1, 1])
    thumb = along * np.cos(0.9) + side * across * np.sin(0.9)
    _rod(surf, occ, depth, centre + side * across * 0.75 * r + thumb * 0.5 * r, thumb, 0.6 * r, 0.23 * r, colour, 0.4)


# ---------------------------------------------------------------------------------------------
# The camera

@functools.lru_cache(maxsize=1)
def _noise_field() -> np.ndarray:
    """(512, 512, 3) float32 standard normal noise, made once: cut at a random place per image
    (cheaper than drawing fresh noise for every pixel)."""
    return np.random.default_rng(4).standard_normal((512, 512, 3), dtype=np.float32)


def _sensor_noise(rng, H, W) -> np.ndarray:
    """(H, W, 3) float32 standard normal noise for one image."""
    if max(H, W) > 256:
        return rng.standard_normal((H, W, 3), dtype=np.float32)
    y, x = rng.integers(0, 512 - H + 1), rng.integers(0, 512 - W + 1)
    return _noise_field()[y:y + H, x:x + W]


def camera(image, rng, width):
    """Colour balance, contrast, vignetting, blur, sharpening, sensor noise, 8-bit quantisation and JPEG ->
    (H, W, 3) uint8. Blur and noise scale with the crop's width (192 px: the paper's)."""
    H, W = image.shape[:2]
    gain = np.tile(rng.uniform(0.9, 1.1, 3).astype(np.float32), W)  # per channel, along a row (H, W * 3): fast
    img = (image.reshape(H, W * 3) * gain + np.float32(rng.normal(0, 0.03))).reshape(H, W, 3)
    mean = img.mean()
    img = np.clip((img - mean) * np.float32(rng.uniform(0.8, 1.2)) + mean, 0, 1) ** np.float32(rng.uniform(0.8, 1.25))
    if rng.random() < 0.3:  # vignetting: the corners darker
        yy, xx = np.ogrid[0:H, 0:W]
        r2 = ((xx + 0.5) / W - 0.5) ** 2 + ((yy + 0.5) / H - 0.5) ** 2
        img = img * (1 - np.float32(rng.uniform(0.2, 0.6)) * r2.astype(np.float32))[..., None]
    blur = rng.random()
    if blur < 0.25:  # out of focus
        img = ndimage.gaussian_filter(img, (*(rng.uniform(0.3, 1.1) * width / 192,) * 2, 0))
    elif blur < 0.32:  # a little motion
        img = ndimage.uniform_filter1d(img, max(2, int(rng.uniform(2, 4) * width / 192)), axis=int(rng.integers(2)))
    if rng.random() < SHARPEN_P:  # in-camera sharpening (most cameras' JPEG processing): an unsharp mask of radius 1 px
        amount = np.float32(rng.uniform(0.3, 1.0))  # (img is this function's own array: changed in place)
        img[1:-1, 1:-1] += amount * (img[1:-1, 1:-1] - np.float32(0.25) * (img[:-2, 1:-1] + img[2:, 1:-1]
                                                                          + img[1:-1, :-2] + img[1:-1, 2:]))
    img = img + np.float32(rng.uniform(0, 0.025)) * _sensor_noise(rng, H, W)
    out = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(30, 95)))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out
