"""Frames, rotations and the 68-landmark tables.

Conventions (README, "Conventions"): image space has x right, y down, in pixels, and z toward the viewer
(larger z = closer to the camera). Pixel (i, j) covers [i, i+1) x [j, j+1), so its centre is
(i + 0.5, j + 0.5). A :class:`CropFrame` maps original photo coordinates to the crop that the
network sees (a similarity: one scale for x, y and z, a translation, and a z offset that puts
the face's reference depth in the middle of the volume).

>>> import numpy as np
>>> frame = CropFrame(scale=0.5, tx=-10.0, ty=-20.0, tz=30.0)
>>> p = np.array([[100.0, 80.0, 4.0]])
>>> frame.photo_to_crop(p)
array([[40., 20., 32.]])
>>> np.allclose(frame.crop_to_photo(frame.photo_to_crop(p)), p)
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

# ---------------------------------------------------------------------------------------------
# 68-point iBUG landmark scheme, 0-based.

LANDMARK_GROUPS = {
    "jaw": range(0, 17),
    "right_brow": range(17, 22),  # the subject's right = image left in a frontal photo
    "left_brow": range(22, 27),
    "nose_bridge": range(27, 31),
    "nose_base": range(31, 36),
    "right_eye": range(36, 42),
    "left_eye": range(42, 48),
    "outer_lips": range(48, 60),
    "inner_lips": range(60, 68),
}


def _landmark_names() -> tuple[str, ...]:
    names = []
    for group, idx in LANDMARK_GROUPS.items():
        names += [f"{group}_{k}" for k in range(len(idx))]
    return tuple(names)


LANDMARK_NAMES = _landmark_names()

# Outer eye corners (iBUG 37 and 46, 1-based): the NME normaliser.
OUTER_EYE_CORNERS = (36, 45)


def _flip_permutation() -> np.ndarray:
    """Index map so that flipped_landmarks = landmarks[FLIP_PERMUTATION] after mirroring x."""
    perm = np.arange(68)

    def swap(a, b):
        perm[a], perm[b] = b, a

    for i in range(8):  # jaw 0..16, 8 is the chin
        swap(i, 16 - i)
    for i in range(5):  # brows 17..21 <-> 26..22
        swap(17 + i, 26 - i)
    for i in range(2):  # nose base 31..35, 33 is the tip
        swap(31 + i, 35 - i)
    for a, b in [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]:  # eyes
        swap(a, b)
    for i in range(3):  # outer lips 48..54 (51 centre), 55..59 (57 centre)
        swap(48 + i, 54 - i)
    for a, b in [(55, 59), (56, 58)]:
        swap(a, b)
    for a, b in [(60, 64), (61, 63), (65, 67)]:  # inner lips, 62 and 66 are centres
        swap(a, b)
    return perm


FLIP_PERMUTATION = _flip_permutation()


@runtime_checkable
class FaceTopology(Protocol):
    """What vrnkit needs of a face model, whichever it is: SynthFaces' FaceModel and the 3DDFA
    MorphableModel both have these attributes, with the same names, shapes and meanings.
    A mesh of either is then handled the same way: ``v[model.landmarks]`` are its 68 landmarks,
    ``v[model.face_region]`` the vertices the NME is measured on."""

    faces: np.ndarray  # (M, 3) int32 triangles, 0-based
    mean: np.ndarray  # (N, 3) the mean face
    landmarks: np.ndarray  # (68,) int vertex index of each iBUG landmark
    face_region: np.ndarray  # (K,) int vertex indices of the NME region (the face without ears, neck, back)


# ---------------------------------------------------------------------------------------------
# Rotations

def euler_to_matrix(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Rotation R = Rx(pitch) @ Ry(yaw) @ Rz(roll), angles in radians, as a (3, 3) array.

    Applied to column vectors in image space (x right, y down, z toward viewer). With these
    axes a positive yaw turns the face's nose toward +x (image right), a positive pitch turns
    it toward +y (down in the image) and a positive roll turns +x toward +y (clockwise on screen).
    This is the product order of 3DDFA / 300W-LP's Pose_Para; their angle signs are handled
    by the dataset readers.
    """
    cx, sx = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    cz, sz = np.cos(roll), np.sin(roll)
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def as_points(points, *, name: str = "points", dims=(2, 3)) -> np.ndarray:
    """Check that ``points`` is a finite (N, k) array with k in ``dims`` and return it as float64."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in dims:
        raise ValueError(f"{name} must have shape (N, {' or '.join(map(str, dims))}); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; expected finite coordinates")
    return arr


# ---------------------------------------------------------------------------------------------
# The crop frame

@dataclass(frozen=True)
class CropFrame:
    """Similarity transform from photo coordinates to crop coordinates.

    crop = scale * photo + (tx, ty, tz). The same scale applies to z, so depth keeps the
    proportions of x and y; tz puts the face's reference depth at the middle of the volume.
    """

    scale: float
    tx: float
    ty: float
    tz: float = 0.0

    def __post_init__(self):
        vals = (self.scale, self.tx, self.ty, self.tz)
        if not all(np.isfinite(v) for v in vals):
            raise ValueError(f"CropFrame needs finite numbers; got scale={self.scale}, t=({self.tx}, {self.ty}, {self.tz})")
        if not self.scale > 0:
            raise ValueError(f"CropFrame scale must be > 0 to be invertible; got {self.scale}")

    @classmethod
    def identity(cls) -> "CropFrame":
        return cls(1.0, 0.0, 0.0, 0.0)

    @classmethod
    def from_landmarks(cls, landmarks, *, size: int = 192, face_size: float = 90.0,
                       depth_span: float | None = None) -> "CropFrame":
        """The paper's crop: scale s = face_size / sqrt(w * h) of the landmarks' bounding box,
        box centre to crop centre, and (for 3D landmarks) their mean depth to mid-volume.

        landmarks: (68, 2) or (68, 3) photo coordinates. ``depth_span`` is the volume depth in
        crop pixels (``VolumeSpec.depth_span``), default ``size * 100 / 192``.
        """
        lm = as_points(landmarks, name="landmarks")
        lo, hi = lm[:, :2].min(0), lm[:, :2].max(0)
        w, h = hi - lo
        if w <= 0 or h <= 0:
            raise ValueError(f"landmarks span a degenerate box ({w:.3g} x {h:.3g} px); expected a face")
        s = face_size / np.sqrt(w * h)
        centre = (lo + hi) / 2
        tx, ty = size / 2 - s * centre
        if depth_span is None:
            depth_span = size * 100.0 / 192.0
        tz = depth_span / 2 - (s * lm[:, 2].mean() if lm.shape[1] == 3 else 0.0)
        return cls(float(s), float(tx), float(ty), float(tz))

    @property
    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous matrix, photo -> crop."""
        m = np.eye(4)
        m[:3, :3] *= self.scale
        m[:3, 3] = (self.tx, self.ty, self.tz)
        return m

    def inverse(self) -> "CropFrame":
        """The frame that maps crop coordinates back to the photo (as a CropFrame)."""
        s = 1.0 / self.scale
        return CropFrame(s, -self.tx * s, -self.ty * s, -self.tz * s)

    def then(self, other: "CropFrame") -> "CropFrame":
        """Compose: first self, then other."""
        s = other.scale * self.scale
        return CropFrame(s, other.scale * self.tx + other.tx, other.scale * self.ty + other.ty,
                         other.scale * self.tz + other.tz)

    def photo_to_crop(self, points) -> np.ndarray:
        """(N, 2) or (N, 3) photo points -> crop points of the same shape."""
        p = as_points(points)
        t = np.array([self.tx, self.ty, self.tz])[: p.shape[1]]
        return p * self.scale + t

    def crop_to_photo(self, points) -> np.ndarray:
        """(N, 2) or (N, 3) crop points -> photo points of the same shape."""
        p = as_points(points)
        t = np.array([self.tx, self.ty, self.tz])[: p.shape[1]]
        return (p - t) / self.scale

    def to_array(self) -> np.ndarray:
        """(4,) float64 [scale, tx, ty, tz], the form stored in shards."""
        return np.array([self.scale, self.tx, self.ty, self.tz], dtype=np.float64)

    @classmethod
    def from_array(cls, a) -> "CropFrame":
        a = np.asarray(a, dtype=np.float64).reshape(-1)
        if a.shape != (4,):
            raise ValueError(f"a stored CropFrame is 4 numbers [scale, tx, ty, tz]; got shape {a.shape}")
        return cls(*map(float, a))


def crop_image(image, frame: CropFrame, size, *, anti_alias: bool = True) -> np.ndarray:
    """Resample a photo (H, W, 3) uint8 into its crop -> (size, size, 3) uint8, bilinear.

    Crop pixel (i, j) takes the photo's colour at its centre mapped back to the photo,
    ``frame.crop_to_photo((i + 0.5, j + 0.5))``; outside the photo is black. When the crop
    shrinks the photo, a Gaussian blur (sigma = (1 / scale - 1) / 2, as in
    skimage.transform.rescale) first removes detail that the crop cannot hold (aliasing).
    """
    from scipy import ndimage

    h, w = (size, size) if np.isscalar(size) else size
    image = np.asarray(image)
    H, W = image.shape[:2]
    s = frame.scale
    xs = (np.arange(w) + 0.5 - frame.tx) / s - 0.5  # photo pixel-index coordinates
    ys = (np.arange(h) + 0.5 - frame.ty) / s - 0.5
    sigma = max(0.0, (1 / s - 1) / 2) if anti_alias else 0.0
    # Work on the part of the photo that the crop sees, with room for the blur kernel (4 sigma).
    m = int(4 * sigma + 0.5) + 2
    x0, x1 = np.clip([int(np.floor(xs[0])) - m, int(np.ceil(xs[-1])) + m + 1], 0, W)
    y0, y1 = np.clip([int(np.floor(ys[0])) - m, int(np.ceil(ys[-1])) + m + 1], 0, H)
    out = np.zeros((h, w, 3), np.uint8)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return out
    region = image[y0:y1, x0:x1].astype(np.float32)
    if sigma > 0:
        region = ndimage.gaussian_filter(region, (sigma, sigma, 0), mode="nearest")
    yy, xx = np.meshgrid(ys - y0, xs - x0, indexing="ij")
    # Outside the photo is black, but keep the photo's true border pixels (not the region's).
    inside = (yy + y0 >= -0.5) & (yy + y0 <= H - 0.5) & (xx + x0 >= -0.5) & (xx + x0 <= W - 0.5)
    for c in range(3):
        band = ndimage.map_coordinates(region[..., c], [yy, xx], order=1, mode="nearest")
        out[..., c] = np.clip(np.rint(np.where(inside, band, 0)), 0, 255)
    return out
