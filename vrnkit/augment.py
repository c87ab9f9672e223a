"""The paper's augmentations and the training targets (volumes, heatmaps), on the training device.

VRN trains with in-plane rotation (+-45 deg), translation (+-15 px at a 192 px crop), scale
(0.85-1.15), horizontal flips (20 %) and per-channel colour scaling (0.6-1.4). Every geometric
part is a 2D similarity of the crop about its centre, so one 3x3 homogeneous map M per sample
says where each crop point goes:

    p' = c + t + s * R(angle) @ F @ (p - c)       c = crop centre, F = diag(-1, 1) if flipped

and the same map moves everything that lives in the crop, so image, landmarks and volume stay
aligned by construction:

* the image is resampled once (``grid_sample`` at M^-1 of each output pixel centre);
* landmarks (x, y) go through M; their depth z is scaled by s about the middle of the volume
  depth (the crop frame puts the face's reference depth there, so a scaled face stays centred
  in the volume instead of drifting toward the front or back);
* the slab's canonical -> crop affine becomes M3 @ affine, with M3 the 3D version of M (x, y as
  M, z as above). A flip makes M3 a mirror (negative determinant); the slab rule only needs A
  to be invertible, so flipped volumes come out right. Flipped landmarks are also renumbered
  (``FLIP_PERMUTATION``): the left eye corner becomes the right one.

:func:`make_targets` is the trainer's whole on-device step before the model: move a collated
batch to the device, augment it, build the target volumes (``voxel.slabs_to_volumes``) and the
68 Gaussian heatmaps (:func:`landmarks_to_heatmaps`).

Random numbers come from a CPU ``torch.Generator`` (a few numbers per sample) and are then
moved to the training device, so a run draws the same augmentations on CPU and GPU and its
generator state can be saved in a checkpoint for an exact resume.

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> params = draw_params(2, size=64, generator=g)
>>> params.matrix.shape, params.flip.dtype
(torch.Size([2, 3, 3]), torch.bool)
>>> landmarks_to_heatmaps(torch.tensor([[[10.0, 6.0]]]), 16).argmax().item()  # pixel (1, 2)
18
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import VolumeSpec
from .geometry import FLIP_PERMUTATION
from .voxel import frontal_affine, slabs_to_volumes


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random augmentations (the paper's by default; 0 / 1 turn one off)."""

    rotation: float = 45.0  # max in-plane rotation, degrees (uniform in +-rotation)
    translation: float = 15.0  # max shift in pixels at a 192 px crop; scaled by size / 192
    scale: tuple[float, float] = (0.85, 1.15)  # uniform scale range (x, y and depth alike)
    flip: float = 0.2  # probability of a horizontal flip
    colour: tuple[float, float] = (0.6, 1.4)  # per-channel multiplier range


@dataclass
class AugmentParams:
    """One batch's augmentations (CPU float64 tensors; B samples).

    matrix: (B, 3, 3) homogeneous crop -> augmented crop map M (x, y in pixels)
    scale: (B,) the in-plane scale s, also applied to depth
    flip: (B,) bool, whether the sample was mirrored (landmarks must be renumbered)
    colour: (B, 3) per-channel multipliers
    """

    matrix: torch.Tensor
    scale: torch.Tensor
    flip: torch.Tensor
    colour: torch.Tensor

    def __getitem__(self, rows) -> "AugmentParams":
        """A subset of the samples, e.g. params[2:4] (one process's share of a global batch)."""
        return AugmentParams(self.matrix[rows], self.scale[rows], self.flip[rows], self.colour[rows])


def draw_params(n: int, *, size: int, generator: torch.Generator,
                config: AugmentConfig = AugmentConfig()) -> AugmentParams:
    """Draw n random augmentations for square crops of ``size`` pixels.

    One (n, 8) block of uniforms is drawn from ``generator`` (a CPU generator) in a fixed order,
    so the same generator state always gives the same augmentations.
    """
    u = torch.rand(n, 8, generator=generator, dtype=torch.float64)
    angle = (2 * u[:, 0] - 1) * math.radians(config.rotation)
    shift = (2 * u[:, 1:3] - 1) * (config.translation * size / 192.0)
    lo, hi = config.scale
    scale = lo + (hi - lo) * u[:, 3]
    flip = u[:, 4] < config.flip
    clo, chi = config.colour
    colour = clo + (chi - clo) * u[:, 5:8]
    return AugmentParams(similarity_matrix(angle, scale, shift, flip, size=size), scale, flip, colour)


def similarity_matrix(angle, scale, shift, flip, *, size: int) -> torch.Tensor:
    """(B, 3, 3) map p -> c + shift + scale * R(angle) @ F @ (p - c), c = (size/2, size/2).

    angle (B,) radians (positive turns +x toward +y, clockwise on screen since y points down);
    scale (B,); shift (B, 2) pixels; flip (B,) bool (F = diag(-1, 1), i.e. x -> size - x).
    """
    n = angle.shape[0]
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    sign = 1.0 - 2.0 * flip.to(angle.dtype)  # -1 mirrors x before the rotation
    a = torch.stack([torch.stack([cos * sign, -sin], -1), torch.stack([sin * sign, cos], -1)], -2)
    c = torch.full((n, 2), size / 2.0, dtype=angle.dtype)
    m = torch.zeros(n, 3, 3, dtype=angle.dtype)
    m[:, :2, :2] = a
    m[:, :2, 2] = c + shift - (a @ c.unsqueeze(-1)).squeeze(-1)
    m[:, 2, 2] = 1.0
    return m


def matrix_3d(params: AugmentParams, *, depth_span: float) -> torch.Tensor:
    """(B, 4, 4) map of crop points (x, y, z): x, y by M, z scaled by s about depth_span / 2."""
    n = params.matrix.shape[0]
    m3 = torch.zeros(n, 4, 4, dtype=torch.float64)
    m3[:, :2, :2] = params.matrix[:, :2, :2]
    m3[:, :2, 3] = params.matrix[:, :2, 2]
    m3[:, 2, 2] = params.scale
    m3[:, 2, 3] = (1 - params.scale) * depth_span / 2  # z' = zc + s (z - zc)
    m3[:, 3, 3] = 1.0
    return m3


# ---------------------------------------------------------------------------------------------
# Applying one batch's parameters to what lives in the crop

def warp_image(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample images (B, C, H, W) so that content at p moves to M p (bilinear, zeros outside).

    Pixel centres sit at i + 0.5, which is grid_sample's align_corners=False convention: the
    normalised coordinate of pixel position x is 2 x / W - 1.
    """
    B, C, H, W = image.shape
    to_norm = torch.tensor([[2.0 / W, 0, -1], [0, 2.0 / H, -1], [0, 0, 1]], dtype=torch.float64)
    # Output pixel -> input pixel is M^-1; in normalised coordinates N M^-1 N^-1.
    theta = to_norm @ torch.linalg.inv(matrix.to(torch.float64)) @ torch.linalg.inv(to_norm)
    theta = theta[:, :2].to(device=image.device, dtype=image.dtype)
    grid = F.affine_grid(theta, [B, C, H, W], align_corners=False)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def transform_landmarks(landmarks: torch.Tensor, params: AugmentParams, *, depth_span: float,
                        permutation=FLIP_PERMUTATION) -> torch.Tensor:
    """Landmarks (B, K, 2 or 3) in crop coordinates -> augmented, renumbered where flipped
    (``permutation``: the K points' left-right renumbering; default the 68 landmarks')."""
    m3 = matrix_3d(params, depth_span=depth_span).to(landmarks.device)
    k = landmarks.shape[-1]
    p = landmarks.to(torch.float64)
    if k == 2:  # pad a dummy depth so one code path serves both
        p = torch.cat([p, torch.zeros_like(p[..., :1])], -1)
    out = p @ m3[:, :3, :3].transpose(1, 2) + m3[:, None, :3, 3]
    out = out[..., :k].to(landmarks.dtype)
    if params.flip.any():
        if landmarks.shape[1] != len(permutation):
            raise ValueError(f"flipping needs a renumbering of all {landmarks.shape[1]} points; got one of "
                             f"{len(permutation)}")
        perm = torch.as_tensor(np.asarray(permutation), device=landmarks.device)
        flip = params.flip.to(landmarks.device).view(-1, 1, 1)
        out = torch.where(flip, out[:, perm], out)
    return out


def transform_affine(affine: torch.Tensor, params: AugmentParams, *, depth_span: float) -> torch.Tensor:
    """Slab affines (B, 3, 4) canonical -> crop, composed with the augmentation: M3 @ A."""
    m3 = matrix_3d(params, depth_span=depth_span).to(affine.device)
    a = torch.cat([affine.to(torch.float64), m3.new_tensor([0, 0, 0, 1]).expand(affine.shape[0], 1, 4)], 1)
    return (m3 @ a)[:, :3].to(affine.dtype)


def augment(image: torch.Tensor, landmarks: torch.Tensor, affine: torch.Tensor, params: AugmentParams,
            *, depth_span: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply one batch's augmentations on the tensors' device.

    image (B, 3, S, S) float in [0, 1]; landmarks (B, 68, 3) crop coordinates; affine (B, 3, 4)
    slab canonical -> crop. ``depth_span`` is the volume depth in crop pixels
    (``VolumeSpec.depth_span``). Returns the three, augmented; colours are clamped to [0, 1].
    """
    if image.ndim != 4 or image.shape[2] != image.shape[3]:
        raise ValueError(f"image must be a batch of square crops (B, C, S, S); got {tuple(image.shape)}")
    if params.matrix.shape[0] != image.shape[0]:
        raise ValueError(f"{params.matrix.shape[0]} augmentations for a batch of {image.shape[0]}")
    image = warp_image(image, params.matrix)
    colour = params.colour.to(device=image.device, dtype=image.dtype)[:, :, None, None]
    image = (image * colour).clamp_(0, 1)
    return (image, transform_landmarks(landmarks, params, depth_span=depth_span),
            transform_affine(affine, params, depth_span=depth_span))


# ---------------------------------------------------------------------------------------------
# Heatmap targets

def landmarks_to_heatmaps(landmarks: torch.Tensor, size: int, *, sigma: float = 1.0,
                          stride: float = 4.0) -> torch.Tensor:
    """Gaussian heatmaps (B, K, size, size), peak 1, of landmarks (B, K, 2 or 3) crop coordinates.

    Heatmap pixel (i, j) has its centre at crop ((j + 0.5) * stride, (i + 0.5) * stride) (1/4
    resolution by default, as the networks' heatmap outputs); ``sigma`` is in heatmap pixels.
    Depth (if given) is ignored. Landmarks outside the crop give partial or empty maps.
    """
    if landmarks.ndim != 3 or landmarks.shape[-1] not in (2, 3):
        raise ValueError(f"landmarks must be (B, K, 2 or 3); got {tuple(landmarks.shape)}")
    xy = landmarks[..., :2].float() / stride - 0.5  # in heatmap pixel-centre units
    grid = torch.arange(size, device=landmarks.device, dtype=torch.float32)
    gx = torch.exp(-(grid - xy[..., 0:1]) ** 2 / (2 * sigma**2))  # (B, K, size) along x
    gy = torch.exp(-(grid - xy[..., 1:2]) ** 2 / (2 * sigma**2))  # along y
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)  # separable: (B, K, size_y, size_x)


def jitter_landmarks(landmarks: torch.Tensor, nme: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, K, 2|3) landmarks moved in x and y by Gaussian noise whose mean distance is ``nme`` x
    sqrt(w*h) of each face's landmark box (the size a landmark NME is measured against): a
    landmark detector's error. ``generator``: a torch generator on the landmarks' device."""
    xy = landmarks[..., :2]
    size = (xy.amax(1) - xy.amin(1)).prod(-1).clamp_min(1e-6).sqrt()  # (B,)
    sigma = nme * size / math.sqrt(math.pi / 2)  # per axis: the 2D norm's mean is sigma * sqrt(pi / 2)
    noise = torch.randn(xy.shape, generator=generator, device=xy.device, dtype=xy.dtype)
    noisy = landmarks.clone()
    noisy[..., :2] += noise * sigma[:, None, None]
    return noisy


def heatmaps_to_landmarks(heatmaps: torch.Tensor, *, stride: float = 4.0) -> torch.Tensor:
    """Landmarks (B, K, 2) in crop pixels from heatmaps (B, K, h, w): the peak pixel's centre,
    moved a quarter pixel toward its larger neighbour in x and in y (as FAN does), so the
    result is not stuck on the heatmap's grid. The inverse of :func:`landmarks_to_heatmaps`
    up to that quarter pixel."""
    b, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, k, -1).argmax(-1)
    y, x = flat // w, flat % w
    hm = heatmaps.reshape(b * k, h, w)
    i = torch.arange(b * k, device=heatmaps.device)
    yy, xx = y.reshape(-1), x.reshape(-1)
    dx = hm[i, yy, (xx + 1).clamp(max=w - 1)] - hm[i, yy, (xx - 1).clamp(min=0)]
    dy = hm[i, (yy + 1).clamp(max=h - 1), xx] - hm[i, (yy - 1).clamp(min=0), xx]
    px = xx.float() + 0.5 + 0.25 * torch.sign(dx)
    py = yy.float() + 0.5 + 0.25 * torch.sign(dy)
    return (torch.stack([px, py], -1) * stride).reshape(b, k, 2)


# ---------------------------------------------------------------------------------------------
# A training batch: augmented, with its targets

def make_targets(batch: dict, params: AugmentParams | None, *, spec: VolumeSpec, device,
                 heatmaps: bool = False, chunk: int | None = None, sigma: float = 1.0,
                 frontal: bool = False, volume: bool = True) -> dict:
    """Move a collated batch to ``device``, augment it (unless params is None), build targets.

    Returns image (B, 3, S, S), volume (B, D, S, S) float 0/1, landmarks (B, 68, 3), affine
    (B, 3, 4) (canonical -> augmented crop) and heatmaps (B, 68, S/4, S/4) or None. Volumes are
    built ``chunk`` samples at a time (the slab rule needs tens of bytes of temporaries per voxel
    of the chunk's bounding box): default 1 on a CPU (tight boxes; 3x faster than 8 at 192 px),
    8 on a GPU (fewer kernel launches and host syncs). ``sigma``: of the heatmaps, in heatmap
    pixels. ``frontal``: volumes of the frontal face at the posed face's place and size
    (:func:`vrnkit.voxel.frontal_affine`) instead of the posed face: the paper's ablation.
    ``volume=False``: no volumes (None; direct regression). A batch with ``sparse_vertices``
    also gets ``vertices`` (B, K, 3), augmented like the landmarks (and renumbered where flipped).
    """
    nb = torch.device(device).type == "cuda"
    chunk = chunk or (8 if nb else 1)
    get = lambda k: batch[k].to(device, non_blocking=nb)  # noqa: E731
    image, landmarks, affine = get("image"), get("landmarks").float(), get("affine").float()
    vertices = get("sparse_vertices").float() if "sparse_vertices" in batch else None
    if params is not None:
        if vertices is not None:  # before the landmarks' own call: both use the un-augmented inputs
            vertices = transform_landmarks(vertices, params, depth_span=spec.depth_span,
                                           permutation=_sparse_mirror())
        image, landmarks, affine = augment(image, landmarks, affine, params, depth_span=spec.depth_span)
    front, mask, back = get("front").float(), get("mask"), get("back").float()
    posed = frontal_affine(front, mask, back, affine) if frontal else affine
    solid = torch.cat([slabs_to_volumes(front[i:i + chunk], mask[i:i + chunk], back[i:i + chunk],
                                        posed[i:i + chunk], spec, dtype=torch.float32)
                       for i in range(0, image.shape[0], chunk)]) if volume else None
    hm = landmarks_to_heatmaps(landmarks, image.shape[-1] // 4, sigma=sigma) if heatmaps else None
    out = {"image": image, "volume": solid, "landmarks": landmarks, "affine": affine, "heatmaps": hm}
    if vertices is not None:
        out["vertices"] = vertices
    return out


def _sparse_mirror() -> np.ndarray:
    """How SynthFaces' sparse vertices renumber when a face is flipped (FaceModel.sparse_mirror)."""
    from .synthfaces.model import FaceModel

    return FaceModel.default().sparse_mirror
