"""Render SynthFaces into VRN crops: pose, z-buffer, appearance, lights and shadows, camera.

A face is posed in a virtual photo by weak perspective, X = s * R @ v + t with
R = geometry.euler_to_matrix(pitch, yaw, roll), and cut out by the paper's crop
(CropFrame.from_landmarks: 68-landmark box -> ``spec.face_size`` px, centred, mean landmark
depth at mid-volume) plus the jitter of a real detector's box. Only the crop is rendered.
Every sample records its CropFrame (virtual photo -> crop) and the affine map from the face
model's frame (mm) to the crop: ``crop = affine[:, :3] @ v + affine[:, 3]``.

Appearance (synthfaces.texture): skin tones, mottling and grain, brows, eyes (sclera, iris,
lashes, lid crease), lips, facial hair, make-up. Around the face (synthfaces.scene): a head
with one of several hair styles, ears, neck and shoulders, glasses, sunglasses and hats,
background clutter, occluders (hands, cups, phones, microphones, poles). Everything is written
into one buffer of surfaces (albedo, normal, depth) and lit together: a key light with soft
shadows (a shadow map of the face mesh: the nose's shadow, the eye sockets, the jaw's shadow on
the neck), a fill light, sky and ground ambient weighted by ambient occlusion precomputed on the
mean face, specular highlights; then auto exposure and the camera (colour, blur, noise, JPEG).
Everything is drawn from the ``rng`` passed in, so a seed gives identical bytes.

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

import numpy as np
from scipy import ndimage

from ..config import VolumeSpec
from .model import FaceModel
from .mesh import NU, NV, grid_faces
from . import scene
from .texture import draw_look, face_albedo
from ..geometry import CropFrame, euler_to_matrix
from ..raster import rasterize

PHOTO_SIZE = 480  # side (px) of the virtual photo that the crop is cut from
LANDMARK_DEPTH_TOL_MM = 3.0  # a landmark is visible if within this depth of the z-buffer
SHADOW_TEXELS = 96  # shadow map texels across a crop's width (2 px per texel at 192 px)
SHADOW_GRID_STEP = 5  # the shadow map z-buffers every 5th grid row and column (soft shadows need no more)
SIDE_LIGHT_P = 0.2  # share of "normal" photos whose key light comes from the side rather than near the camera
AO_DIRECTIONS = 32  # directions sampled for the ambient occlusion of the mean face
AO_POWER = 2.0  # the face's sockets are shallow: squaring the occlusion shows its relief (a "cavity" look)


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
    """Render mesh for an image width: the full grid at >= 256 px, every 2nd row/column below,
    every 5th below 96 px (its triangles are then still about a pixel across)."""
    return grid_faces(1 if width >= 256 else 2 if width >= 96 else 5)


def grid_normals(vertices) -> np.ndarray:
    """(N, 3) unit vertex normals of a posed SynthFaces mesh from its grid neighbours."""
    g = np.asarray(vertices, np.float32).reshape(NV, NU, 3)  # float32: plenty for shading, and faster
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

    ``head``: draw the head around the face (hair, ears, neck, shoulders) and the person's
    accessories (glasses, sunglasses, hats); ``occluders``: with probability 0.25 put a hand or an
    object (cup, phone, microphone, pole) in front of the face; ``lighting``: "normal" or
    "strong" (harsh side light).

    Returns a dict: image (H, W, 3) uint8; landmarks (68, 3) float32 crop coordinates (x, y
    pixels; z in crop pixels, toward the viewer); landmark_visible (68,) bool (not hidden by
    the face itself); vertices (N, 3) float32 posed mesh in crop coordinates; mask (H, W) bool
    pixels covered by the face mesh (before occluders); occluder (H, W) bool: pixels covered by
    occluders, and face pixels covered by glasses frames, sunglasses or a hat; frame (CropFrame,
    virtual photo -> crop); affine (3, 4) float32 model mm -> crop; pose (3,) float32 (yaw,
    pitch, roll) radians; model_vertices (N, 3) float32 the unposed mesh (mm, model frame).

    Below 256 px the z-buffer uses every second grid row and column (mesh.grid_faces(2),
    the same look at a third of the cost), below 96 px every fifth; vertices and landmarks are
    always the full mesh.
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

    # The person's look, the lights and the background, drawn in a fixed order.
    male = identity is not None and model.sex_of(identity) == "male"
    look = draw_look(rng, male=male)
    look.update(scene.draw_style(rng, look))
    lights = draw_lights(rng, lighting)
    bg = scene.background(rng, H, W, clutter)
    surf = scene.Surfaces(H, W)
    if head:
        scene.draw_head(surf, affine, look, rng)
    vnormals = grid_normals(v)  # (float32)
    _draw_face(surf, r, faces, vnormals, model, look)
    if head:
        scene.draw_ears(surf, affine, look)

    occluder = np.zeros((H, W), bool)
    lens = None
    if head and look["glasses"]:
        frame_px, lens = scene.draw_glasses(surf, affine, look)
        occluder |= (frame_px | (lens & (look["lens_tint"] > 0.5))) & mask  # sunglasses hide the eyes
    if head and look["hat"]:
        occluder |= scene.draw_hat(surf, affine, look) & mask
    if occluders:
        occluder |= scene.draw_occluders(surf, v[model.landmarks], rng)
    used, coarse = _shadow_mesh()
    lit = _shadow(surf.depth, v[used], coarse, lights["key"], lights["softness"] * W / 192)
    image = _shade(surf, bg, lit, lights)
    # Auto exposure, as a camera meters on the face: dark skin or dim light is brightened.
    face_level = float(image[mask].mean()) if mask.any() else lights["exposure"]
    image *= np.float32(np.clip(lights["exposure"] / max(face_level, 1e-3), 0.8, 1.7))
    if lens is not None:  # tinted (or sunglasses' dark) lenses with a faint reflection of the sky
        tint = np.float32(look["lens_tint"])
        image[lens] = image[lens] * (1 - tint) * np.float32(0.93) + np.float32(0.05)
    image = scene.camera(image, rng, W)

    lm = v[model.landmarks]
    return dict(image=image, landmarks=lm.astype(np.float32),
                landmark_visible=_visible(lm, vnormals[model.landmarks], r, LANDMARK_DEPTH_TOL_MM * px_per_mm),
                vertices=v.astype(np.float32), model_vertices=v_model, mask=mask, occluder=occluder, frame=frame,
                affine=affine.astype(np.float32), pose=np.array([yaw, pitch, roll], np.float32))


def _draw_face(surf, r, faces, vnormals, model, look):
    """The face mesh into ``surf``: at each pixel its normal, texture coordinates and ambient
    occlusion interpolated from the visible triangle's corners, and the albedo they give."""
    H, W = r.mask.shape
    rows, cols = np.nonzero(r.mask)
    flat = rows * W + cols
    corners = faces[np.take(r.triangle, flat)]  # (P, 3) vertex indices per face pixel
    attrs = np.concatenate([vnormals, model.uv, _vertex_ao(model)[:, None]], 1)  # all at once
    bary = np.take(r.bary.reshape(-1, 3), flat, axis=0)
    pixel = sum(bary[:, k, None] * np.take(attrs, corners[:, k], axis=0) for k in range(3))
    normal = pixel[:, :3] / (np.linalg.norm(pixel[:, :3], axis=1, keepdims=True) + 1e-12)
    albedo, shine = face_albedo(pixel[:, 3:5], look)
    surf.put(rows, cols, albedo, normal, r.depth[rows, cols], shine, pixel[:, 5])


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
# Lights, shadows and shading

def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def draw_lights(rng, lighting) -> dict:
    """A key light (direction toward the light, crop axes: x right, y down, z to the viewer),
    a fill light from the other side, ambient light from sky and ground, highlights and the
    softness of the key's shadows (px at 192 px). "strong": a harsh light from the side."""
    strong = lighting == "strong"
    d = rng.normal(size=3)
    if strong or rng.random() < SIDE_LIGHT_P:  # from anywhere in front, above more often
        d[2] = abs(d[2]) + (0.2 if strong else 1.0)
        d[1] -= 0.5
    else:  # near the camera and a little above it, as most photos are lit (sun behind the photographer, flash)
        d = np.array([0.15 * d[0], 0.15 * d[1] - 0.4, 1.0])
    key = _unit(d)
    fill = _unit([-key[0] + rng.normal(0, 0.3), rng.normal(0, 0.3), abs(key[2]) + 0.5])
    warm = rng.uniform(-1, 1)  # warm (tungsten) to cool (shade) light
    colour = np.array([1 + 0.06 * warm, 1.0, 1 - 0.08 * warm]) * rng.uniform(0.97, 1.03, 3)
    out = dict(
        key=key, fill=fill, colour=colour,
        key_power=rng.uniform(0.8, 1.2) if strong else rng.uniform(0.55, 0.85),
        fill_power=rng.uniform(0.0, 0.1) if strong else rng.uniform(0.08, 0.3),
        ambient=rng.uniform(0.06, 0.2) if strong else rng.uniform(0.2, 0.42),
        sky=rng.uniform(-0.3, 0.3),  # ambient brighter from above (< 0: from below, off clothes and ground)
        specular=rng.uniform(0.05, 0.35) if strong else rng.uniform(0.02, 0.2), shininess=rng.uniform(8, 40),
        softness=rng.uniform(0.6, 2.5), exposure=rng.uniform(0.3, 0.55),
    )
    return {k: np.asarray(v, np.float32) if isinstance(v, np.ndarray) else v for k, v in out.items()}


def _light_basis(direction):
    """(3, 3) rows: two axes across the light's beam and the direction toward the light."""
    d = _unit(direction)
    a = np.array([0.0, 1.0, 0.0]) if abs(d[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = _unit(np.cross(a, d))
    return np.stack([e1, np.cross(d, e1), d])


@functools.lru_cache(maxsize=1)
def _shadow_mesh():
    """The coarse mesh that casts shadows: the vertices it uses, and its triangles numbered within them."""
    faces = grid_faces(SHADOW_GRID_STEP)
    used, inverse = np.unique(faces, return_inverse=True)
    return used, inverse.reshape(faces.shape).astype(np.int32)


def _light_view(vertices, faces, direction, cell):
    """The mesh z-buffered as seen from ``direction`` (orthographic, ``cell`` units per texel):
    (B the view's axes (3, 3), q the vertices in them (N, 3), lo the map's corner, size its
    (width, height) in texels, zmap (height, width) the nearest depth toward the light)."""
    B = _light_basis(direction)
    q = vertices @ B.T
    lo = q[:, :2].min(0) - cell
    size = np.ceil((q[:, :2].max(0) - lo) / cell).astype(int) + 2
    zmap = rasterize(np.c_[(q[:, :2] - lo) / cell, q[:, 2]], faces, size[1], size[0], bary=False).depth
    return B, q, lo, size, zmap


def _shadow(depth, vertices, faces, light, softness) -> np.ndarray:
    """(H, W) float32 in [0, 1]: how much of the key light reaches each surface pixel (1 where
    nothing is drawn). A shadow map: the face mesh z-buffered as seen from the light; a point is
    lit unless the map holds something nearer to the light. Blurred by ``softness`` px for
    soft shadow edges (a light of some size)."""
    H, W = depth.shape
    cell = max(W / SHADOW_TEXELS, 1.0)  # crop px per shadow-map texel (no finer than the pixels)
    B, _, lo, size, zmap = _light_view(vertices, faces, light, cell)
    # Test the surfaces once per texel (every step-th pixel), then spread each answer over its
    # step x step block: the map holds no finer detail.
    step = max(int(round(cell)), 1)
    rows, cols = np.nonzero(np.isfinite(depth[::step, ::step]))
    rows, cols = rows * step, cols * step
    p = np.stack([cols + 0.5, rows + 0.5, depth[rows, cols]], 1) @ B.T
    u = np.floor((p[:, :2] - lo) / cell).astype(np.intp)
    inside = (u[:, 0] >= 0) & (u[:, 0] < size[0]) & (u[:, 1] >= 0) & (u[:, 1] < size[1])
    blocked = np.zeros(len(p), bool)
    # 2.5 texels of depth bias: a surface must not shadow itself where it slopes within a texel
    blocked[inside] = p[inside, 2] < zmap[u[inside, 1], u[inside, 0]] - 2.5 * cell
    lit = np.ones(((H + step - 1) // step, (W + step - 1) // step), np.float32)
    lit[rows[blocked] // step, cols[blocked] // step] = 0
    lit = np.repeat(np.repeat(lit, step, 0), step, 1)[:H, :W]
    return ndimage.gaussian_filter(lit, softness, truncate=2.5) if softness > 0.3 else lit


def _shade(surf, background, lit, lights) -> np.ndarray:
    """Light every surface pixel: (key * shadow + fill) Lambert, sky/ground ambient times
    ambient occlusion, Blinn-Phong highlights. Returns (H, W, 3) float32, the background where
    no surface is. (Computed over the whole frame: cheaper than picking the surface pixels out.)"""
    n, ao, shadow = surf.normal, surf.ao[..., None], lit[..., None]
    key, fill = lights["key"], lights["fill"]
    diffuse_key = np.clip(n @ key, 0, None)[..., None] * shadow * np.sqrt(ao)
    diffuse_fill = np.clip(n @ fill, 0, None)[..., None] * ao
    sky = 1 - lights["sky"] * n[..., 1:2]  # normals pointing up (-y) see the sky (or, sky < 0, the bright ground)
    light = lights["ambient"] * sky * ao + lights["key_power"] * diffuse_key + lights["fill_power"] * diffuse_fill
    half = _unit(key + np.array([0.0, 0.0, 1.0])).astype(np.float32)
    highlight = np.clip(n @ half, 0, None) ** lights["shininess"] * surf.shine * lights["specular"]
    out = surf.albedo * light + (highlight[..., None] * shadow)
    H, W = out.shape[:2]  # times the light's colour per channel, along rows (H, W * 3): faster than over a last axis of 3
    out = np.clip((out.reshape(H, W * 3) * np.tile(lights["colour"], W)).reshape(H, W, 3), 0, 1)
    return np.where(np.isfinite(surf.depth)[..., None], out, background)


@functools.lru_cache(maxsize=2)
def _vertex_ao(model: FaceModel) -> np.ndarray:
    """(N,) float32 ambient occlusion of the mean face, 1 = open sky: the cosine-weighted share
    of directions in which a vertex sees past the rest of the face (z-buffers from
    ``AO_DIRECTIONS`` directions over the front of the face). Eye sockets, the sides of the nose,
    under the nose and lips and the mouth's corners come out dark. Computed once per model."""
    v = model.mean.astype(np.float64)
    n = grid_normals(v)
    faces = grid_faces(2)
    half = AO_DIRECTIONS // 2
    k = np.arange(half) + 0.5  # a Fibonacci spiral over the front half of the sphere...
    z = 1 - k / half
    phi = np.pi * (3 - np.sqrt(5)) * k
    dirs = np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], 1)
    dirs = np.concatenate([dirs, dirs * [-1, 1, 1]])  # ...and its mirror image: a symmetric face stays symmetric
    seen, weight = np.zeros(len(v)), np.zeros(len(v))
    for d in dirs:
        _, q, lo, _, zmap = _light_view(v, faces, d, 1.0)  # 1 mm texels
        u = np.floor(q[:, :2] - lo).astype(np.intp)
        w = np.clip(n @ d, 0, None)
        seen += w * (q[:, 2] >= zmap[u[:, 1], u[:, 0]] - 2.0)
        weight += w
    ao = np.clip(seen / np.maximum(weight, 1e-6) / np.percentile(seen / np.maximum(weight, 1e-6), 90), 0, 1)
    return (ao ** AO_POWER).astype(np.float32)  # the open cheek and forehead: 1
