"""How good is a reconstruction? Volume IoU, the paper's NME, and the other scores of a test.

* :func:`volume_iou` compares a predicted volume with the target voxel by voxel (training).
* :func:`nme` is the paper's metric: the mean per-vertex Euclidean distance between the ground
  truth mesh and the predicted surface, divided by the 3D outer interocular distance
  (landmarks 36 and 45, 0-based). Correspondences are closest points after a rigid ICP
  alignment, but the ICP result only picks them; the distances are measured on the meshes as
  given, after one correction: a depth shift that matches their mean z. ``rigid=True`` gives
  the rigid-aligned variant. With the prediction's triangles the distances go to its surface,
  so the score does not depend on how densely it is meshed (:class:`Surface`).
* :func:`landmark_error`: the 68 true 3D landmarks to the predicted surface (a sparse 3D error,
  what a photo with only 3D landmarks allows). :func:`landmarks_nme`: 2D landmarks over the
  size of their box (the AFLW2000-3D alignment protocol). :func:`ced`, :func:`ced_auc`:
  cumulative error curves and their area; failures (``inf``) never count as under a threshold.
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


ICP_POINTS = 500  # ground-truth points that steer ICP: a rigid fit needs few; the final match uses all


class Surface:
    """A mesh prepared for closest-point queries: a k-d tree of its vertices and, for each
    vertex, the triangles around it. Without faces, a point set (closest = nearest vertex).

    >>> s = Surface(np.array([[0.0, 0, 0], [2, 0, 0], [0, 2, 0]]), np.array([[0, 1, 2]]))
    >>> s.closest(np.array([[0.5, 0.5, 3.0]]))  # straight below, on the triangle
    array([[0.5, 0.5, 0. ]])
    """

    def __init__(self, vertices, faces=None):
        self.vertices = v = np.asarray(vertices, np.float64)
        self.tree = cKDTree(v, balanced_tree=False, compact_nodes=False)  # builds twice as fast, queries as fast
        self.faces = None
        if faces is None or len(faces) == 0:
            return
        f = np.asarray(faces, np.int64)
        used = np.zeros(len(v), bool)
        used[f.ravel()] = True
        if not used.all():  # vertices in no triangle count as points: degenerate triangles (i, i, i)
            f = np.vstack([f, np.repeat(np.flatnonzero(~used)[:, None], 3, 1)])
        self.faces = f
        owner = f.ravel().astype(np.int32)
        self.around = np.argsort(owner) // 3  # triangles, grouped by vertex
        self.vertices32 = v.astype(np.float32)  # the triangle arithmetic: float32 is twice as fast, 1e-5 px
        self.count = np.bincount(owner, minlength=len(v))
        self.start = np.r_[0, np.cumsum(self.count)[:-1]]

    def closest(self, points) -> np.ndarray:
        """(N, 3) points -> (N, 3) closest points: exact on the triangles around each point's
        nearest vertex, so the answer does not depend on how finely or how the surface is
        triangulated."""
        p = np.asarray(points, np.float64)
        near = self.tree.query(p)[1]
        if self.faces is None:
            return self.vertices[near]
        n = self.count[near]
        group = np.r_[0, np.cumsum(n)[:-1]]
        qid = np.repeat(np.arange(len(p)), n)
        cand = self.around[np.repeat(self.start[near] - group, n) + np.arange(len(qid))]
        tri = self.vertices32[self.faces[cand]]
        pq = p.astype(np.float32)[qid]
        c = _closest_on_triangles(pq, tri[:, 0], tri[:, 1], tri[:, 2])
        d2 = np.einsum("ij,ij->i", pq - c, pq - c)
        best = np.minimum.reduceat(d2, group)
        hit = np.flatnonzero(d2 <= best[qid])
        first = hit[np.r_[True, qid[hit][1:] != qid[hit][:-1]]]  # one per point (ties: the first)
        return c[first].astype(np.float64)


def closest_points(points, vertices, faces=None) -> np.ndarray:
    """For each point (N, 3), the closest point on a mesh (vertices (M, 3), faces (F, 3)) -> (N, 3);
    without faces, the nearest vertex. See :class:`Surface` (for many queries on one mesh)."""
    return Surface(vertices, faces).closest(points)


def icp(gt, surface: Surface, *, iterations: int = 20, tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Rigid (R, t) with pred @ R.T + t ~ gt, by ICP from gt to the predicted ``surface``.

    Each iteration matches (up to ``ICP_POINTS`` of) the gt vertices to their closest points
    on the prediction and refits the rotation and translation on those pairs, until the mean
    distance improves by less than ``tol`` of itself. Going from gt to pred means parts of the
    prediction that the ground truth lacks (neck, volume sides) never pull the alignment;
    matching to the surface, not its vertices, means a sparse prediction does not pull it
    either. The gt points are moved into pred's frame instead of moving pred, so the prepared
    surface serves every iteration. iterations=0 gives the identity.
    """
    sub = gt[:: max(1, len(gt) // ICP_POINTS)]
    r, t = np.eye(3), np.zeros(3)
    previous = np.inf
    for _ in range(iterations):
        moved = (sub - t) @ r  # sub in pred's frame: the inverse of the current fit
        match = surface.closest(moved)
        r, t = rigid_fit(match, sub)
        err = float(np.mean(np.linalg.norm(moved - match, axis=1)))
        if previous - err < tol * max(err, 1e-12):
            break
        previous = err
    return r, t


def _closest_on_triangles(p, a, b, c) -> np.ndarray:
    """Closest point to p on triangle (a, b, c), row by row (Ericson, Real-Time Collision
    Detection, 5.1.5: which Voronoi region of the triangle p projects into). The region gives
    barycentric weights (v, w) of b and c; the point is a + v (b - a) + w (c - a)."""
    ab, ac = b - a, c - a
    dot = lambda x, y: np.einsum("ij,ij->i", x, y)  # noqa: E731
    d1, d2 = dot(ab, p - a), dot(ac, p - a)
    d3, d4 = dot(ab, p - b), dot(ac, p - b)
    d5, d6 = dot(ab, p - c), dot(ac, p - c)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    safe = lambda x: np.where(np.abs(x) > 1e-30, x, 1.0)  # noqa: E731  (degenerate triangles)
    total = safe(va + vb + vc)
    v, w = vb / total, vc / total  # inside the face
    # the edges and corners, lowest priority first, so that the later (more specific) win
    on = (va <= 0) & (d4 >= d3) & (d5 >= d6)  # edge bc
    w = np.where(on, (d4 - d3) / safe((d4 - d3) + (d5 - d6)), w)
    v = np.where(on, 1 - w, v)
    on = (vb <= 0) & (d2 >= 0) & (d6 <= 0)  # edge ac
    v, w = np.where(on, 0.0, v), np.where(on, d2 / safe(d2 - d6), w)
    on = (d6 >= 0) & (d5 <= d6)  # corner c
    v, w = np.where(on, 0.0, v), np.where(on, 1.0, w)
    on = (vc <= 0) & (d1 >= 0) & (d3 <= 0)  # edge ab
    v, w = np.where(on, d1 / safe(d1 - d3), v), np.where(on, 0.0, w)
    on = (d3 >= 0) & (d4 <= d3)  # corner b
    v, w = np.where(on, 1.0, v), np.where(on, 0.0, w)
    on = (d1 <= 0) & (d2 <= 0)  # corner a
    v, w = np.where(on, 0.0, v), np.where(on, 0.0, w)
    return a + ab * v[:, None] + ac * w[:, None]


def nme(gt_vertices, pred_vertices, gt_landmarks, *, pred_faces=None, icp_iterations: int = 20,
        rigid: bool = False) -> float:
    """The paper's NME of one prediction.

    gt_vertices (N, 3), pred_vertices (M, 3) in the same frame (crop or photo pixels), with
    pred_faces (F, 3) if the prediction is a mesh; gt_landmarks (68, 3) in that frame. Rigid ICP
    (``icp_iterations``, 0 = none) finds, for every ground-truth vertex, its corresponding point
    on the prediction (the closest point on its surface when faces are given, else the nearest
    vertex); the NME is the mean distance between them on the unmoved prediction, but for a
    depth alignment, over the interocular distance. ``rigid=True``: the distances after the
    ICP's rotation and translation instead (for methods whose output is not aligned with the
    image). An empty prediction scores inf: a failure that every table counts, not an error.

    Depth alignment: the paper shifts the prediction so that the two meshes' mean z agree. That
    is biased when the prediction covers more of the head than the ground truth's face region
    (a VRN surface has forehead, ears and neck), and it moves when one part of the prediction
    is sampled more densely than another. Here that shift only starts ICP; the distances are
    then measured with the mean z of the corresponding points matched to the ground truth's.
    """
    scale = interocular_distance(gt_landmarks)  # checks the landmarks first, whatever the prediction
    if len(np.asarray(pred_vertices).reshape(-1, 3)) == 0:
        as_points(gt_vertices, name="gt_vertices", dims=(3,))
        return float("inf")
    d = vertex_errors(gt_vertices, pred_vertices, pred_faces=pred_faces, icp_iterations=icp_iterations, rigid=rigid)
    return float(d.mean() / scale)


def nme_pair(gt_vertices, pred_vertices, gt_landmarks, *, pred_faces=None,
             icp_iterations: int = 20) -> tuple[float, float]:
    """(NME, rigid NME) of one prediction from one ICP: what a test table reports per face.
    Arguments as :func:`nme`; an empty prediction gives (inf, inf)."""
    scale = interocular_distance(gt_landmarks)  # checks the landmarks first, whatever the prediction
    if len(np.asarray(pred_vertices).reshape(-1, 3)) == 0:
        as_points(gt_vertices, name="gt_vertices", dims=(3,))
        return float("inf"), float("inf")
    g, moved, match = _correspondences(gt_vertices, pred_vertices, pred_faces, icp_iterations)
    return (float(_distances(g, moved, match, rigid=False).mean() / scale),
            float(_distances(g, moved, match, rigid=True).mean() / scale))


def vertex_errors(gt_vertices, pred_vertices, *, pred_faces=None, icp_iterations: int = 20,
                  rigid: bool = False) -> np.ndarray:
    """(N,) distance from each ground-truth vertex to its correspondence on the prediction, in
    pixels: what :func:`nme` averages (see it for the correspondences and the depth alignment).
    Colour a mesh by it to see where a reconstruction is wrong."""
    return _distances(*_correspondences(gt_vertices, pred_vertices, pred_faces, icp_iterations), rigid=rigid)


def _correspondences(gt_vertices, pred_vertices, pred_faces, icp_iterations: int):
    """(gt after the paper's depth shift, the same moved into the prediction's frame by ICP, the
    corresponding points on the prediction): everything the NME's distances need."""
    gt = as_points(gt_vertices, name="gt_vertices", dims=(3,))
    pred = as_points(pred_vertices, name="pred_vertices", dims=(3,))
    surface = Surface(pred, pred_faces)
    g = gt - [0.0, 0.0, gt[:, 2].mean() - pred[:, 2].mean()]  # the paper's shift (of gt, not pred: the same)
    r, t = icp(g, surface, iterations=icp_iterations)
    moved = (g - t) @ r  # the ground truth in the prediction's frame
    return g, moved, surface.closest(moved)


def _distances(g, moved, match, *, rigid: bool) -> np.ndarray:
    """Per-vertex distances: after the ICP's rotation and translation (rigid), or on the unmoved
    prediction with depth aligned over the corresponding points."""
    if rigid:
        return np.linalg.norm(moved - match, axis=1)
    d = g - match
    d[:, 2] -= d[:, 2].mean()
    return np.linalg.norm(d, axis=1)


def landmark_error(gt_landmarks, pred_vertices, *, pred_faces=None) -> float:
    """Sparse 3D error: mean distance from the 68 true 3D landmarks to the predicted surface, over
    the interocular distance (what a photo with only 3D landmarks allows).

    The prediction is shifted in depth by the median depth difference between each landmark
    and the predicted point nearest to it in the image plane; the distances are then to the
    closest points of the surface. inf for an empty prediction.
    """
    lm = as_points(gt_landmarks, name="gt_landmarks", dims=(3,))
    scale = interocular_distance(lm)
    pred = np.asarray(pred_vertices, np.float64).reshape(-1, 3)
    if len(pred) == 0:
        return float("inf")
    below = pred[cKDTree(pred[:, :2]).query(lm[:, :2])[1]]
    pred = pred + [0.0, 0.0, float(np.median(lm[:, 2] - below[:, 2]))]
    return float(np.linalg.norm(lm - closest_points(lm, pred, pred_faces), axis=1).mean() / scale)


def landmarks_nme(pred, true):
    """2D landmark NME (the AFLW2000-3D protocol): mean point distance over sqrt(w * h) of the
    true landmarks' bounding box. pred, true: (68, 2|3) or (B, 68, 2|3); returns a float or (B,)."""
    p = np.asarray(pred, np.float64)[..., :2]
    q = np.asarray(true, np.float64)[..., :2]
    if p.shape != q.shape or p.shape[-2] != 68:
        raise ValueError(f"landmarks must both be (68, 2|3) (or batches of them); got {np.shape(pred)} and {np.shape(true)}")
    size = np.sqrt(np.prod(q.max(-2) - q.min(-2), axis=-1))
    out = np.linalg.norm(p - q, axis=-1).mean(-1) / size
    return float(out) if out.ndim == 0 else out


def ced(errors, grid) -> np.ndarray:
    """Cumulative error distribution: the fraction of ``errors`` at or below each grid value
    (failures, inf, are never below)."""
    e = np.sort(np.asarray(errors, np.float64))
    return np.searchsorted(e, np.asarray(grid, np.float64), side="right") / max(len(e), 1)


def ced_auc(errors, threshold: float = 0.1) -> float:
    """Area under the cumulative error distribution up to ``threshold``, normalised to [0, 1]
    (1: every face has error 0; failures (inf) never count as under the threshold)."""
    grid = np.linspace(0, threshold, 201)
    frac = ced(errors, grid)
    return float(np.sum((frac[1:] + frac[:-1]) / 2 * np.diff(grid)) / threshold)  # trapezoids


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
