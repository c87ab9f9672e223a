"""The face's colours: procedural texture maps over the mesh grid and the per-face look.

A real-face detector (dlib's HOG) keys on the gradient pattern of a face: dark brows, dark
eye openings (lashes, iris, the shadow of the lids), the nose's shading, the line between the
lips and the face's outline. So the maps here draw those strongly: brows whose upper edge runs
through the brow landmarks, a dark lash line along the upper lid, a lid crease, a shaded eyeball
with a ringed iris, lips with a dark line where they meet, nostrils; under them the skin varies
in tone, mottling, fine grain, redness and under-eye darkness, and men may have stubble, a
moustache, a goatee or a beard.

Maps are soft masks over the grid (``TEXTURE_SCALE`` texels per grid cell, as in
mesh.feature_maps), so they move with the mesh: a raised brow carries its hair with it. They are
computed once (``face_maps``); per face, ``draw_look`` draws the colours and styles, and
``face_albedo`` paints a pixel's albedo from its interpolated texture coordinates.

>>> import numpy as np
>>> look = draw_look(np.random.default_rng(0), male=True)
>>> albedo, shine = face_albedo(np.array([[70.0, 20.0], [70.0, 50.0]], np.float32), look)
>>> albedo.shape, albedo.dtype, shine.shape
((2, 3), dtype('float32'), (2,))
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from .mesh import (EYE_INNER, EYE_OUTER, EYE_X, EYE_Y, I_LO, I_UL, I_UP, MOUTH_HALF, MOUTH_Y, NU, NV, bump, eye_lids,
                   feature_maps, smoothstep)

TEXTURE_SCALE = 4  # texels per grid cell of the feature maps
SKIN_TONES = np.array([  # light to dark, linear RGB-ish albedos; samples interpolate between them
    [0.93, 0.78, 0.69], [0.86, 0.67, 0.56], [0.76, 0.56, 0.43], [0.66, 0.49, 0.35],
    [0.52, 0.36, 0.25], [0.38, 0.25, 0.17], [0.26, 0.17, 0.12]])
HAIR_COLOURS = np.array([[0.04, 0.035, 0.03], [0.13, 0.08, 0.05], [0.28, 0.18, 0.11],
                         [0.62, 0.48, 0.30], [0.45, 0.19, 0.08], [0.55, 0.54, 0.52]])
HAIR_WEIGHTS = np.array([0.35, 0.25, 0.18, 0.08, 0.06, 0.08])  # black and brown hair are the most common
IRIS_COLOURS = np.array([[0.25, 0.14, 0.07], [0.12, 0.07, 0.04], [0.30, 0.45, 0.62],
                         [0.30, 0.42, 0.25], [0.42, 0.31, 0.14], [0.45, 0.50, 0.53]])
LIPSTICKS = np.array([[0.55, 0.08, 0.12], [0.7, 0.3, 0.35], [0.3, 0.08, 0.1], [0.6, 0.25, 0.2]])
# The brows' upper edge runs through the template's brow landmarks (model.py, iBUG 17..21:
# annotators mark the brow's upper edge), as (|X| arc mm, y mm), medial to lateral.
BROW_TOP = np.array([[12.0, -21.0], [14.0, -22.0], [23.0, -25.0], [32.0, -25.5], [41.0, -23.0], [50.0, -17.0],
                     [55.0, -13.0]])
BROW_THICKNESS = (9.0, 3.5)  # mm, medial end and tail, at thickness 1
EAR_TOP_Y = -15.0  # mm: height of the top of the ear (synthfaces.scene draws the ears)


def _noise(shape, seed, sigma):
    """Gaussian-filtered white noise scaled to about [-1, 1] (sigma in texels, per axis)."""
    g = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma, mode="wrap")
    return g / (3 * g.std())


# Maps looked up at every face pixel; the others only where "painted" marks a small feature.
BASE_MAPS = ("fine", "blush", "nose_red", "ax", "y", "strands", "painted")
_PAINTED = ("lips", "brow_u", "nostrils", "sclera", "lash_up", "lash_lo", "mouth", "crease", "socket", "moustache",
            "goatee", "beard")  # maps that mark where the small features are (brow_u >= 0 near the brows)


@functools.lru_cache(maxsize=1)
def face_maps():
    """The texture maps: (skin_noise (rows, cols), base (rows, cols, len(BASE_MAPS)), feature
    names, features (rows, cols, K)), float32.

    From mesh.feature_maps: skin_noise, lips, mouth, teeth, sclera, iris, pupil, nostrils, blush,
    beard, y, ax. Added here: brow_v (0 at the brow's upper edge, 1 at its lower edge at unit
    thickness), brow_u (0 medial .. 1 tail; -1 away from the brows), strands (hair-like noise
    along the brows), fine (skin grain), lash_up, lash_lo, crease, socket (under-eye and
    inner-corner darkness), lid_shadow (the upper lid's shadow on the eyeball, and its deeper
    corners), limbus (the iris' dark rim), lip_line (where the lips meet), moustache, goatee,
    nose_red; "painted" marks the texels where any small feature is.
    """
    base = feature_maps(TEXTURE_SCALE)
    s = TEXTURE_SCALE
    rows, cols = np.meshgrid((np.arange(NV * s) + 0.5) / s - 0.5, (np.arange(NU * s) + 0.5) / s - 0.5, indexing="ij")
    y, ax = base["y"].astype(np.float64), base["ax"].astype(np.float64)  # template height, |X| (mm)
    X = np.sign(cols - (NU - 1) / 2) * ax
    soft = lambda d, w: smoothstep(w, -w, d)  # noqa: E731  (1 where d < 0, a ramp of half width w)

    # Brows: a band below the curve through the brow landmarks, thick at the medial end.
    top = np.interp(ax, BROW_TOP[:, 0], BROW_TOP[:, 1])
    u = (ax - BROW_TOP[0, 0]) / (BROW_TOP[-1, 0] - BROW_TOP[0, 0])
    thick = BROW_THICKNESS[0] + (BROW_THICKNESS[1] - BROW_THICKNESS[0]) * np.clip(u, 0, 1)
    near = (u > -0.1) & (u < 1.1) & (y > top - 8) & (y < top + 2.2 * thick)
    brow_v = np.where(near, (y - top) / thick, -9.0)
    brow_u = np.where(near, u, -1.0)
    strands = _noise(rows.shape, 11, (0.6, 4.0))  # streaks along the brow (hair lies sideways)

    # Eyes. Grid rows I_UP and I_LO are the lid margins; rows between them are the eyeball.
    in_eye = soft(EYE_INNER - 0.5 - ax, 0.6) * soft(ax - EYE_OUTER - 0.5, 0.6)
    t = np.clip((ax - EYE_INNER) / (EYE_OUTER - EYE_INNER), 0, 1)  # 0 inner corner .. 1 outer
    wing = soft(EYE_INNER + 1 - ax, 0.8) * soft(ax - EYE_OUTER - 3.5 * np.clip(I_UP - rows, 0, 1), 1.0)
    # Upper lashes: from above the lid margin down over the top of the eyeball (they hang over it).
    lash_up = wing * soft(np.maximum(I_UP - 1.1 - rows, rows - I_UP - 0.8), 0.3) * (0.75 + 0.25 * t)
    lash_lo = in_eye * soft(np.abs(rows - I_LO) - 0.35, 0.2) * (0.3 + 0.5 * t)
    lid_up, _ = eye_lids(X)
    crease = in_eye * (rows < I_UP) * np.exp(-0.5 * ((y - (lid_up - 7.0)) / 1.6) ** 2)
    socket = (bump(ax, y, EYE_X - 8, EYE_Y + 7, 16, 7) + 0.7 * bump(ax, y, EYE_INNER - 2, -2, 8, 10)) * (rows >= I_LO)
    socket += 0.6 * bump(ax, y, EYE_INNER - 1, -1, 6, 8) * (rows <= I_UP)
    eyeball = (rows > I_UP) & (rows < I_LO)
    # The upper lid and lashes shade the top of the eyeball; the corners lie deeper in the socket.
    lid_shadow = eyeball * np.maximum(np.exp(-(rows - I_UP) / 1.8), 0.8 * np.exp(-np.minimum(t, 1 - t) / 0.12))
    r_iris = np.hypot(ax - EYE_X, y - EYE_Y)
    limbus = base["sclera"] * soft(np.abs(r_iris - 5.4) - 0.5, 0.4)

    # Lips: the upper lip's lower edge is darker (it is in its own shadow where the lips meet);
    # the nose tip and facial hair regions.
    lip_line = base["lips"] * soft(I_UL - 1.1 - rows, 0.4) * (rows <= I_UL)
    c = np.clip(1 - (X / MOUTH_HALF) ** 2, 0, 1)
    lip_top = MOUTH_Y - 8 * c ** 0.45
    moustache = soft(ax - MOUTH_HALF - 3, 2.5) * soft(np.maximum(46.5 - y, y - lip_top - 1), 1.5) * (rows < I_UL)
    moustache = np.maximum(moustache, soft(ax - MOUTH_HALF - 3, 2) * soft(np.abs(ax - MOUTH_HALF - 1) - 3, 1.5)
                           * smoothstep(50, 56, y) * smoothstep(90, 84, y))  # down past the mouth corners
    goatee = soft(ax - 20, 3) * smoothstep(MOUTH_Y + 8, MOUTH_Y + 12, y) * (1 - base["lips"])
    nose_red = bump(ax, y, 0, 36, 12, 12)
    fine = _noise(rows.shape, 12, 0.7)

    maps = dict(base, brow_v=brow_v, brow_u=brow_u, strands=strands, fine=fine, lash_up=lash_up, lash_lo=lash_lo,
                crease=crease, socket=socket, lid_shadow=lid_shadow, limbus=limbus, lip_line=lip_line,
                moustache=moustache, goatee=goatee, nose_red=nose_red)
    maps["painted"] = np.max([maps[k] for k in _PAINTED if k != "brow_u"] + [brow_u >= 0], axis=0) > 0
    # (mesh's own "lash" and "brows" maps are superseded by lash_up/lash_lo and brow_v/brow_u here)
    feature_names = [k for k in maps if k not in BASE_MAPS + ("skin_noise", "lash", "brows")]
    return maps["skin_noise"].astype(np.float32), _stack(maps, BASE_MAPS), feature_names, _stack(maps, feature_names)


def _stack(maps, names):
    """The maps ``names`` as one (rows, cols, len(names)) float32 array."""
    return np.ascontiguousarray(np.stack([np.asarray(maps[k], np.float32) for k in names], -1))


def random_mix(table, rng):
    """A random point on the polyline through the rows of ``table``."""
    t = rng.uniform(0, len(table) - 1)
    k = min(int(t), len(table) - 2)
    return table[k] + (t - k) * (table[k + 1] - table[k])


def draw_look(rng, *, male: bool) -> dict:
    """The colours and styles of one face, drawn from ``rng`` in a fixed order (so seeds reproduce).

    Returns a dict of float32 arrays and Python numbers; hair styles and accessories are drawn
    by synthfaces.scene from the same look (``hair``, ``skin``)."""
    skin = random_mix(SKIN_TONES, rng) * rng.uniform(0.95, 1.05, 3)
    hair = HAIR_COLOURS[rng.choice(len(HAIR_COLOURS), p=HAIR_WEIGHTS)] * rng.uniform(0.8, 1.2)
    if rng.random() < 0.15:  # grey hair
        hair = hair + rng.uniform(0.3, 0.9) * (np.array([0.55, 0.54, 0.52]) - hair)
    lip = skin * np.array([0.85, 0.55, 0.55]) * rng.uniform(0.75, 0.95)
    makeup = (not male) and rng.random() < 0.45
    if makeup and rng.random() < 0.5:
        lip = LIPSTICKS[rng.integers(len(LIPSTICKS))] * rng.uniform(0.8, 1.1)
    # Brows: darker than the hair unless the hair is black; thicker on men.
    brow = np.minimum(hair, 0.06 + 0.45 * hair) * rng.uniform(0.7, 1.0)
    beard = stubble = moustache = goatee = 0.0
    if male:
        kind = rng.choice(["none", "stubble", "moustache", "goatee", "beard"], p=[0.45, 0.25, 0.08, 0.08, 0.14])
        stubble = rng.uniform(0.25, 0.6) if kind in ("stubble", "goatee", "moustache") else 0.0
        moustache = rng.uniform(0.7, 1.0) if kind in ("moustache", "goatee", "beard") else 0.0
        goatee = rng.uniform(0.7, 1.0) if kind in ("goatee", "beard") else 0.0
        beard = rng.uniform(0.6, 1.0) if kind == "beard" else 0.0
    look = dict(
        skin=skin, hair=hair, lip=lip, brow=brow, iris=IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))],
        brow_thickness=rng.uniform(0.9, 1.3) if male else rng.uniform(0.6, 1.05),
        brow_density=rng.uniform(0.8, 1.0),
        lashes=rng.uniform(0.85, 1.0) + (0.15 if makeup else 0.0), eyeshadow=rng.uniform(0.1, 0.4) if makeup else 0.0,
        eyeshadow_colour=rng.uniform(0.15, 0.5, 3),
        sclera=np.array([0.80, 0.77, 0.73]) * rng.uniform(0.55, 0.8),
        socket=rng.uniform(0.15, 0.45), blush=rng.uniform(0.0, 0.3), mottle=rng.uniform(0.02, 0.08),
        grain=rng.uniform(0.02, 0.07), noise_shift=rng.integers(0, 10_000, 2),
        beard=beard, stubble=stubble, moustache=moustache, goatee=goatee,
        hairline=rng.uniform(-82, -64), temples=rng.uniform(10, 35) if male else rng.uniform(5, 20),
        peak=rng.uniform(0, 6), side_from=rng.uniform(120, 130),
        side_to=rng.uniform(-5, 35) if male else rng.uniform(-10, 10),
        bald=male and rng.random() < 0.1, male=male,
    )
    # float32 everywhere per pixel (NumPy would promote to float64 on meeting a float64 array)
    return {k: np.asarray(v, np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v
            for k, v in look.items()}


def face_albedo(uv, look):
    """Per-pixel albedo (P, 3) float32 and specular weight (P,) from texture coordinates (P, 2)
    (FaceModel.uv interpolated: grid column, row)."""
    noise_map, base, names, features = face_maps()
    th, tw = noise_map.shape
    col = np.clip(np.rint((uv[:, 0] + 0.5) * TEXTURE_SCALE - 0.5).astype(np.intp), 0, tw - 1)
    row = np.clip(np.rint((uv[:, 1] + 0.5) * TEXTURE_SCALE - 0.5).astype(np.intp), 0, th - 1)
    texel = row * tw + col
    # (P, len(BASE_MAPS)): one gather (of whole rows of a flat table: fast) for the maps every pixel needs
    tex = np.take(base.reshape(th * tw, -1), texel, axis=0)
    m = lambda name: tex[:, BASE_MAPS.index(name), None]  # noqa: E731
    sr, sc = look["noise_shift"]
    noise = np.take(noise_map.reshape(-1), ((row + sr) % th) * tw + (col + sc) % tw)[:, None]
    f32 = lambda *c: np.array(c, np.float32)  # noqa: E731  (float64 constants would promote)

    # Skin: tone, mottling and grain; redder cheeks and nose.
    skin = look["skin"] * (1 + look["mottle"] * noise + look["grain"] * m("fine"))
    skin = skin * (1 - (look["blush"] * m("blush") + 0.15 * m("nose_red")) * f32(0, 0.3, 0.3))
    c = skin.copy()
    hair = look["hair"] * (0.75 + 0.25 * (noise + 1))
    # Hair above a hairline that recedes at the temples (a widow's peak in the middle), and
    # sideburns in front of the ears.
    ax = m("ax")
    line = look["hairline"] + look["temples"] * np.clip((ax - 40) / 45, 0, 1) ** 2
    line = line + look["peak"] * np.exp(-(ax / 12) ** 2)
    # Beside the temples the hair comes down to the top of the ear; in front of the ear to a
    # sideburn's end, or to the jaw for longer hair that covers the ears.
    line += smoothstep(98, 116, ax) * (EAR_TOP_Y - line)
    line += smoothstep(look["side_from"], look["side_from"] + 6, ax) * (look["side_to"] - line)
    hairline = np.clip((line - m("y")) / 3 + noise * 0.8 + 0.3 * m("strands"), 0, 1) * (not look["bald"])
    c += hairline * (hair - c)

    # The small features, painted in order, only where some feature map is non-zero.
    k = np.nonzero(m("painted")[:, 0])[0]
    t, tb, n, cf = np.take(features.reshape(th * tw, -1), texel[k], axis=0), tex[k], noise[k], c[k]
    def mk(name):
        return t[:, names.index(name), None] if name in names else tb[:, BASE_MAPS.index(name), None]

    dark = look["brow"] * 0.7  # facial hair is a little darker than the scalp's
    stubble = look["stubble"] * (mk("beard") + mk("moustache")).clip(0, 1) * np.clip(0.55 + 0.6 * mk("fine"), 0, 1)
    cf += 0.6 * stubble * (dark - cf)
    for name in ("beard", "moustache", "goatee"):
        if look[name]:
            cf += look[name] * mk(name) * np.clip(0.75 + 0.8 * n + 0.4 * mk("strands"), 0, 1) * (dark - cf)
    # Around the eyes: darker sockets and inner corners, the lid crease, eye shadow.
    cf *= 1 - look["socket"] * mk("socket") * f32(0.35, 0.42, 0.38)
    cf *= 1 - 0.45 * mk("crease")
    if look["eyeshadow"]:
        shadow = np.clip(mk("crease") * 1.5 + mk("lash_up"), 0, 1)
        cf += look["eyeshadow"] * shadow * (look["eyeshadow_colour"] * cf - cf)
    # Brows: alpha falls off at the band's edges and at the sparse medial end; hair streaks.
    v, u = mk("brow_v"), mk("brow_u")
    a = smoothstep(-0.25, 0.15, v) * smoothstep(look["brow_thickness"] + 0.25, look["brow_thickness"] - 0.15, v)
    a = a * smoothstep(-0.08, 0.12, u) * smoothstep(1.05, 0.85, u) * (u >= -0.5)
    a = a * look["brow_density"] * np.clip(0.85 + 0.7 * mk("strands") + 0.3 * n, 0, 1)
    cf += a * (look["brow"] - cf)
    # Eyes: sclera (shaded under the upper lid), iris with a dark rim, pupil, lashes.
    sclera = look["sclera"] * (1 - 0.6 * mk("lid_shadow"))
    cf += mk("sclera") * (sclera - cf)
    cf += mk("iris") * (look["iris"] * (0.8 + 0.2 * (n + 1)) * (1 - 0.6 * mk("lid_shadow")) - cf)
    cf *= 1 - 0.6 * mk("limbus")
    cf += mk("pupil") * (f32(0.02, 0.02, 0.02) - cf)
    lash = np.minimum(look["lashes"] * np.maximum(mk("lash_up"), mk("lash_lo")), 1)
    cf += lash * (np.minimum(look["brow"], 0.06) - cf)
    # Mouth: lips, the dark line where they meet, the mouth's inside, teeth; nostrils.
    cf += mk("lips") * (look["lip"] * (1 + 0.5 * look["mottle"] * n) - cf)
    cf *= 1 - 0.4 * mk("lip_line")
    cf += mk("mouth") * (f32(0.15, 0.04, 0.04) - cf)
    cf += mk("teeth") * (f32(0.80, 0.77, 0.68) - cf)
    cf += mk("nostrils") * (skin[k] * 0.2 - cf)
    c[k] = cf
    shine = 1 - 0.9 * np.maximum(hairline[:, 0], 0)
    shine[k] += 1.5 * mk("lips")[:, 0] - 0.9 * np.clip(a[:, 0] + stubble[:, 0], 0, 1)
    return c, shine
