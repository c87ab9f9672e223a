"""How good is a reconstruction? Volume IoU and the paper's NME.

* :func:`volume_iou` compares a predicted volume with the target voxel by voxel (training).
* :func:`nme` is the paper's metric: the mean per-vertex Euclidean distance between the ground
  truth mesh and the predicted one, divided by the 3D outer interocular distance (landmarks 36
  and 45, 0-based). Correspondences are nearest neighbours after a rigid ICP alignment, but the
  ICP result only picks the neighbours; the distances are measured on the meshes as given,
  after one correction: the prediction is shifted in depth so the two meshes' mean z agree.
* :func:`nme_estimate` is a fast stand-in for validation during training: it compares the
  front surfaces of the predicted and target volumes (one point per pixel column), with
  nearest neighbours and the same depth alignment, without meshing or ICP.

All coordinates are crop (or photo) pixels: x right, y down, z toward the viewer.

>>> import numpy as np
>>> v = np.random.default_rng(0).random((500, 3)) * 50
>>> lm = np.zeros((68, 3)); lm[45, 0] = 40.0            # interocular distance 40 px
>>> round(nme(v, v + [3.0, 4.0, 7.0], lm), 4)          # z shift removed, |(3, 4)| = 5 -> 5 / 40
0.125
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .config import VolumeSpec
from .geometry import OUTER_EYE_CORNERS, as_points


# ---------------------------------------------------------------------------------------------
# Volumes

def volume_iou(pred, target, *, level: float = 0.5):
    """Intersection over union per sample: pred (B, D, H, W) bool or probabilities, target bool.

    Probabilities count as inside when > ``level``. Torch tensors or NumPy arrays (the result
    has the same kind); (D, H, W) inputs are treated as a batch of one. Two empty volumes have
    IoU 1 (nothing to get wrong). Returns (B,) float.
    """
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"pred and target must have one shape; got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.ndim == 3:
        return volume_iou(pred[None], target[None], level=level)[0]
    if pred.ndim != 4:
        raise ValueError(f"expected volumes (B, D, H, W); got shape {tuple(pred.shape)}")
    p = pred if _is_bool(pred) else pred > level
    t = target if _is_bool(target) else target > 0.5
    inter = (p & t).reshape(p.shape[0], -1).sum(1)
    union = (p | t).reshape(p.shape[0], -1).sum(1)
    if hasattr(inter, "clamp"):  # torch
        return (inter.double() / union.clamp(min=1).double()).where(union > 0, inter.new_ones(()).double())
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def _is_bool(x) -> bool:
    return str(x.dtype) in ("bool", "torch.bool")  # NumPy and torch spell it differently


def front_surface(volume, spec: VolumeSpec, *, level: float = 0.5):
    """Depth (crop pixels) of the surface seen from the viewer, per pixel column.

    volume: (B, D, H, W) or (D, H, W) probabilities or bool, torch or NumPy. For each column
    (y, x) the front-most inside voxel d (value > level; front = high d) is found and the
    crossing to the voxel in front of it is interpolated linearly, as marching cubes does:
    a binary column gives its front voxel face, z = (d + 1) / depth_scale. Returns a torch
    float32 tensor (B, H, W) (or (H, W)) with NaN where a column holds nothing.
    """
    import torch

    vol = torch.as_tensor(volume)
    single = vol.ndim == 3
    if single:
        vol = vol[None]
    if vol.ndim != 4 or tuple(vol.shape[1:]) != spec.shape:
        raise ValueError(f"expected volumes (B, D, H, W) with (D, H, W) = {spec.shape}; got {tuple(vol.shape)}")
    vol = vol.float()
    D = vol.shape[1]
    d_index = torch.arange(D, device=vol.device, dtype=torch.int32).view(1, D, 1, 1)
    front = torch.where(vol > level, d_index, -1).amax(1)  # (B, H, W), -1 = empty column
    d = front.clamp(min=0).long().unsqueeze(1)
    here = vol.gather(1, d).squeeze(1)
    ahead = vol.gather(1, (d + 1).clamp(max=D - 1)).squeeze(1)
    ahead = torch.where(front == D - 1, torch.zeros_like(ahead), ahead)  # outside the volume: empty
    frac = ((here - level) / (here - ahead).clamp(min=1e-6)).clamp(0, 1)
    z = (front.float() + frac + 0.5) / spec.depth_scale
    z = torch.where(front >= 0, z, torch.full_like(z, float("nan")))
    return z[0] if single else z


def surface_points(depth) -> np.ndarray:
    """(H, W) front depths (NaN = empty) -> (N, 3) float64 points (x + 0.5, y + 0.5, z)."""
    z = np.asarray(depth.detach().cpu() if hasattr(depth, "detach") else depth, np.float64)
    y, x = np.nonzero(np.isfinite(z))
    return np.stack([x + 0.5, y + 0.5, z[y, x]], 1)


# ---------------------------------------------------------------------------------------------
# NME

def interocular_distance(landmarks) -> float:
    """3D distance between the outer eye corners (landmarks 36 and 45) of (68, 3) landmarks."""
    lm = as_points(landmarks, name="landmarks", dims=(3,))
    if lm.shape[0] != 68:
        raise ValueError(f"landmarks must be the 68-point scheme (68, 3); got {lm.shape}")
    d = float(np.linalg.norm(lm[OUTER_EYE_CORNERS[0]] - lm[OUTER_EYE_CORNERS[1]]))
    if not d > 0:
        raise ValueError("the outer eye corners (landmarks 36 and 45) coincide; cannot normalise")
    return d


def align_mean_z(gt, pred) -> np.ndarray:
    """pred shifted in depth so that its mean z equals gt's (the paper's depth alignment)."""
    out = np.array(pred, np.float64)
    out[:, 2] += gt[:, 2].mean() - out[:, 2].mean()
    return out


def rigid_fit(src, dst) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rotation R and translation t with dst ~ src @ R.T + t (Kabsch, no mirror)."""
    cs, cd = src.mean(0), dst.mean(0)
    u, _, vt = np.linalg.svd((src - cs).T @ (dst - cd))
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))])  # a rotation, not a mirror
    r = vt.T @ fix @ u.T
    return r, cd - cs @ r.T


def icp_correspondences(gt, pred, *, iterations: int = 20, tol: float = 1e-6) -> np.ndarray:
    """Index into pred of each gt vertex's nearest neighbour after rigid ICP of pred onto gt.

    Each iteration matches every gt vertex to its nearest moved pred vertex and refits the
    rotation and translation on those pairs. Going from gt to pred means parts of the
    prediction that the ground truth lacks (neck, volume sides) never pull the alignment.
    iterations=0 gives plain nearest neighbours. Returns (N_gt,) int indices.
    """
    moved = pred
    previous = np.inf
    for _ in range(iterations):
        dist, j = cKDTree(moved).query(gt)
        r, t = rigid_fit(pred[j], gt)
        moved = pred @ r.T + t
        err = float(np.mean(dist))
        if previous - err < tol * max(err, 1e-12):
            break
        previous = err
    return cKDTree(moved).query(gt)[1]


def nme(gt_vertices, pred_vertices, gt_landmarks, *, icp_iterations: int = 20) -> float:
    """The paper's NME of one prediction.

    gt_vertices (N, 3), pred_vertices (M, 3) in the same frame (crop or photo pixels);
    gt_landmarks (68, 3) in that frame. The prediction is shifted in depth to the ground
    truth's mean z; rigid ICP (``icp_iterations``, 0 = none) finds, for every ground-truth
    vertex, its corresponding predicted vertex; the NME is the mean distance between them
    (on the depth-aligned, otherwise unmoved prediction) over the interocular distance.
    Pass surfaces that cover the same part of the face: mean-z alignment of a face front
    against a closed volume surface (sides and flat back too) would be biased. An empty
    prediction scores inf: a failure that every table counts, not an error.
    """
    gt = as_points(gt_vertices, name="gt_vertices", dims=(3,))
    scale = interocular_distance(gt_landmarks)  # checks the landmarks first, whatever the prediction
    if len(np.asarray(pred_vertices).reshape(-1, 3)) == 0:
        return float("inf")
    pred = align_mean_z(gt, as_points(pred_vertices, name="pred_vertices", dims=(3,)))
    idx = icp_correspondences(gt, pred, iterations=icp_iterations)
    return float(np.linalg.norm(gt - pred[idx], axis=1).mean() / scale)


def nme_estimate(pred_volume, target_volume, gt_landmarks, spec: VolumeSpec, *, level: float = 0.5) -> np.ndarray:
    """Fast NME for validation: front surfaces of predicted and target volumes, no ICP.

    pred_volume (B, D, H, W) probabilities or bool; target_volume (B, D, H, W) bool;
    gt_landmarks (B, 68, 3) crop coordinates (torch or NumPy). Each volume's front surface
    gives one point per pixel column (:func:`front_surface`); each target point is matched
    to its nearest predicted point after mean-z alignment. The volumes are already aligned
    with the image, so no ICP is needed. Returns (B,) float64; NaN where the prediction is
    empty.
    """
    zp = front_surface(pred_volume, spec, level=level)
    zt = front_surface(target_volume, spec, level=0.5)
    if zp.ndim == 2:
        zp, zt, gt_landmarks = zp[None], zt[None], [gt_landmarks]
    lms = np.asarray(gt_landmarks.detach().cpu() if hasattr(gt_landmarks, "detach") else gt_landmarks,
                     np.float64)
    out = np.full(zp.shape[0], np.nan)
    for b in range(zp.shape[0]):
        gt, pred = surface_points(zt[b]), surface_points(zp[b])
        if len(gt) == 0 or len(pred) == 0:
            continue
        pred = align_mean_z(gt, pred)
        dist, _ = cKDTree(pred).query(gt)
        out[b] = dist.mean() / interocular_distance(lms[b])
    return out
