"""Metrics against references: analytic overlaps, translated and rotated copies, brute force."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vrnkit import metrics as M
from vrnkit.config import VolumeSpec

SPEC = VolumeSpec(depth=32, height=24, width=24, depth_scale=2.0)


def landmarks(iod: float = 40.0) -> np.ndarray:
    lm = np.zeros((68, 3))
    lm[36] = [10.0, 20.0, 5.0]
    lm[45] = lm[36] + [iod * 0.6, 0.0, iod * 0.8]  # a 3D distance, not just x
    return lm


def face_surface(n: int = 40) -> np.ndarray:
    """A head-like ellipsoid with a nose bump (n*n points): curved and asymmetric, so that ICP has
    one clear answer. (A nearly flat height field would not do: shifted along itself, it looks
    aligned to point-to-point ICP, a known limit of ICP rather than of the metric.)"""
    th, ph = np.meshgrid(np.linspace(0.2, np.pi - 0.2, n), np.linspace(0, 2 * np.pi, n, endpoint=False))
    r = 1 + 0.25 * np.exp(-((th - 1.2) ** 2 + (ph - 1.0) ** 2) / 0.1)
    p = np.stack([14 * r * np.sin(th) * np.cos(ph), 18 * r * np.sin(th) * np.sin(ph), 10 * r * np.cos(th)], -1)
    return p.reshape(-1, 3) + [30, 30, 20]


def test_volume_iou_analytic():
    a = np.zeros((2, 4, 6, 6), bool)
    b = np.zeros((2, 4, 6, 6), bool)
    a[0, :2] = True  # 72 voxels
    b[0, 1:3] = True  # 72 voxels, 36 shared -> 36 / 108
    a[1, :, :3] = True
    b[1, :, :3] = True
    iou = M.volume_iou(a, b)
    assert iou == pytest.approx([1 / 3, 1.0])
    t = M.volume_iou(torch.tensor(a, dtype=torch.float32) * 0.8, torch.tensor(b))  # probabilities > 0.5
    assert torch.allclose(t, torch.tensor([1 / 3, 1.0], dtype=torch.float64))
    assert M.volume_iou(np.zeros((4, 6, 6), bool), np.zeros((4, 6, 6), bool)) == 1.0  # both empty
    with pytest.raises(ValueError, match="one shape"):
        M.volume_iou(a, b[:1])


def test_nme_identical_and_translated_copies():
    gt = face_surface()
    lm = landmarks(40.0)
    assert M.nme(gt, gt, lm) == 0.0
    shift = np.array([1.3, -0.7, 5.0])
    # the depth part is removed by mean-z alignment; ICP finds the in-plane shift exactly, so every
    # vertex is matched with its own copy, |(1.3, -0.7)| away (ICP never moves the mesh itself)
    assert M.nme(gt, gt + shift, lm) == pytest.approx(math.hypot(1.3, -0.7) / 40.0, rel=1e-9)
    # order of the predicted vertices does not matter
    perm = np.random.default_rng(0).permutation(len(gt))
    assert M.nme(gt, (gt + shift)[perm], lm) == pytest.approx(math.hypot(1.3, -0.7) / 40.0, rel=1e-9)


def test_nme_of_an_empty_prediction_is_a_failure_and_bad_landmarks_an_error():
    gt, lm = face_surface(), landmarks(40.0)
    assert M.nme(gt, np.zeros((0, 3)), lm) == math.inf  # counted as a failure by every table
    with pytest.raises(ValueError, match="68-point scheme"):
        M.nme(gt, gt, lm[:10])
    with pytest.raises(ValueError, match="68-point scheme"):
        M.nme(gt, np.zeros((0, 3)), lm[:10])  # checked even when there is nothing to score


def test_nme_rotated_copy_measures_the_unmoved_mesh():
    gt = face_surface()
    a = math.radians(4)
    r = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    c = gt.mean(0)
    pred = (gt - c) @ r.T + c  # rotation about z: mean z unchanged
    expect = np.linalg.norm(gt - pred, axis=1).mean() / 40.0
    assert M.nme(gt, pred, landmarks(40.0)) == pytest.approx(expect, rel=1e-6)


def test_nme_without_icp_is_brute_force_nearest_neighbours():
    rng = np.random.default_rng(1)
    gt, pred = rng.random((300, 3)) * 30, rng.random((500, 3)) * 30 + [0, 0, 4]
    aligned = pred + [0, 0, gt[:, 2].mean() - pred[:, 2].mean()]  # the paper's shift finds the neighbours
    nearest = aligned[np.sqrt(((gt[:, None] - aligned[None]) ** 2).sum(-1)).argmin(1)]  # all pairs
    d = gt - nearest
    d[:, 2] -= d[:, 2].mean()  # then the depth is aligned over the pairs
    expect = np.linalg.norm(d, axis=1).mean() / 25.0
    assert M.nme(gt, pred, landmarks(25.0), icp_iterations=0) == pytest.approx(expect, rel=1e-12)


def test_interocular_distance_and_bad_landmarks():
    assert M.interocular_distance(landmarks(33.0)) == pytest.approx(33.0)
    with pytest.raises(ValueError, match="68"):
        M.interocular_distance(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="coincide"):
        M.interocular_distance(np.zeros((68, 3)))


def test_front_surface_binary_soft_and_empty():
    vol = np.zeros(SPEC.shape, np.float32)
    vol[:10, 5, 7] = 1.0  # slices 0..9 inside: front voxel face at slice 10 -> z = 5
    vol[:10, 6, 7] = 1.0
    vol[10, 6, 7] = 0.75  # crossing 0.5 between slice 10 (0.75) and 11 (0): 10 + 0.25/0.75
    z = M.front_surface(vol, SPEC)
    assert z[5, 7].item() == pytest.approx(5.0)
    assert z[6, 7].item() == pytest.approx((10 + 1 / 3 + 0.5) / 2)
    assert torch.isnan(z[0, 0]) and int(torch.isfinite(z).sum()) == 2
    pts = M.surface_points(z)
    assert pts[:, :2].tolist() == [[7.5, 5.5], [7.5, 6.5]]


def test_nme_estimate_reference_cases():
    d, y, x = np.mgrid[:32, :24, :24]
    height = 14 + 4 * np.exp(-((x - 12) ** 2 + (y - 11) ** 2) / 18)  # a bump, in slices
    target = (d < height) & ((x - 12) ** 2 + (y - 12) ** 2 < 64)
    lm = landmarks(16.0)
    assert M.nme_estimate(target[None], target[None], lm[None], SPEC) == pytest.approx([0.0])
    deeper = np.zeros_like(target)
    deeper[:-3] = target[3:]  # 1.5 px further back: removed by mean-z alignment
    assert M.nme_estimate(deeper[None], target[None], lm[None], SPEC)[0] == pytest.approx(0.0, abs=1e-12)
    # one pixel to the right: every target point is at most 1 px (plus the slope) from the prediction
    right = np.roll(target, 1, axis=2)
    e = M.nme_estimate(torch.tensor(right[None]).float(), torch.tensor(target[None]), torch.tensor(lm[None]), SPEC)
    assert 0 < e[0] < 1.0 / 16.0
    empty = M.nme_estimate(np.zeros_like(target)[None], target[None], lm[None], SPEC)
    assert np.isnan(empty[0])


def ellipsoid_mesh(n: int, *, flip: bool = False):
    """The front of an ellipsoid with a nose bump (so that ICP has one answer) as a triangle mesh
    on an n x n (theta, phi) grid; flip: the other diagonal of every quad (the same surface,
    triangulated differently)."""
    th, ph = np.meshgrid(np.linspace(0.3, np.pi - 0.3, n), np.linspace(0.2, np.pi - 0.2, n), indexing="ij")
    r = 1 + 0.15 * np.exp(-((th - 1.4) ** 2 + (ph - 1.4) ** 2) / 0.4)
    v = np.stack([14 * r * np.sin(th) * np.cos(ph), 18 * r * np.cos(th), 10 * r * np.sin(th) * np.sin(ph)],
                 -1).reshape(-1, 3)
    i = np.arange(n * n).reshape(n, n)
    a, b, c, d = i[:-1, :-1].ravel(), i[1:, :-1].ravel(), i[:-1, 1:].ravel(), i[1:, 1:].ravel()
    f = np.r_[np.c_[a, b, d], np.c_[a, d, c]] if flip else np.r_[np.c_[a, b, c], np.c_[b, d, c]]
    return v + [30, 30, 20], f


def test_nme_measures_the_predicted_surface_not_its_vertex_density():
    """The same surface made 4x sparser, 2x denser or re-triangulated scores the same NME (it is
    measured to the surface); measured to the vertices only, the sparse one would be far worse."""
    gt, _ = ellipsoid_mesh(161)
    lm = landmarks(40.0)
    for shift in ([0.0, 0.0, 0.0], [0.8, -0.5, 0.0]):
        v, f = ellipsoid_mesh(641)  # a reference four times denser than the ground truth
        ref = M.nme(gt, v + shift, lm, pred_faces=f)
        for n, flip in ((41, False), (41, True), (321, False)):
            v, f = ellipsoid_mesh(n, flip=flip)
            assert M.nme(gt, v + shift, lm, pred_faces=f) == pytest.approx(ref, abs=0.001), (shift, n, flip)
        v, f = ellipsoid_mesh(21)  # very sparse: only its chords differ from the surface
        assert M.nme(gt, v + shift, lm, pred_faces=f) == pytest.approx(ref, abs=0.005)
    assert ref > 0.01  # the shift shows
    v, f = ellipsoid_mesh(21)
    assert M.nme(gt, v, lm) > 0.01  # the sparse mesh's vertices only: the gaps between them count
    assert M.nme(gt, gt, lm) == 0.0


def test_rigid_nme_removes_the_rotation_that_nme_keeps():
    gt = face_surface()
    a = math.radians(4)
    r = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    c = gt.mean(0)
    pred = (gt - c) @ r.T + c + [2.0, -1.0, 3.0]
    lm = landmarks(40.0)
    assert M.nme(gt, pred, lm) > 0.02
    assert M.nme(gt, pred, lm, rigid=True) == pytest.approx(0.0, abs=1e-9)


def test_closest_points_match_brute_force_on_coarse_and_thin_triangles():
    trimesh = pytest.importorskip("trimesh")
    rng = np.random.default_rng(3)
    x, y = np.meshgrid(np.linspace(0, 40, 21), np.linspace(0, 40, 3))  # long thin triangles, a wave
    v = np.c_[x.ravel(), y.ravel(), 2 * np.sin(x.ravel() / 7)]
    i = np.arange(v.shape[0]).reshape(x.shape)
    f = np.r_[np.c_[i[:-1, :-1].ravel(), i[1:, :-1].ravel(), i[:-1, 1:].ravel()],
              np.c_[i[1:, :-1].ravel(), i[1:, 1:].ravel(), i[:-1, 1:].ravel()]]
    sphere = trimesh.creation.icosphere(subdivisions=1)
    for verts, faces in ((v, f), (sphere.vertices * 20, sphere.faces)):
        p = rng.normal(size=(500, 3)) * 12 + verts.mean(0)
        got = np.linalg.norm(p - M.closest_points(p, verts, faces), axis=1)
        brute = np.min([np.linalg.norm(p - trimesh.triangles.closest_point(np.repeat(t[None], len(p), 0), p), axis=1)
                        for t in verts[faces]], axis=0)
        assert np.allclose(got, brute, atol=1e-4)  # float32 arithmetic: 1e-5 px
    # vertices that no triangle uses still count, as points
    lonely = np.r_[v, [[20.0, 20.0, 30.0]]]
    assert np.allclose(M.closest_points(np.array([[20.0, 20.0, 31.0]]), lonely, f), [[20.0, 20.0, 30.0]])


def test_landmark_error_is_the_distance_to_the_surface_after_depth_alignment():
    v, f = ellipsoid_mesh(61)
    lm = landmarks(40.0)
    front = v[v[:, 2] > 25]
    on = front[np.random.default_rng(4).choice(len(front), 68, replace=False)]
    on[[36, 45]] = lm[[36, 45]] = front[[0, -1]]  # the eye corners on the surface too
    assert M.landmark_error(on, v, pred_faces=f) == pytest.approx(0.0, abs=1e-6)
    assert M.landmark_error(on, v + [0, 0, 7.0], pred_faces=f) == pytest.approx(0.0, abs=1e-6)  # depth aligned
    plane_v = np.array([[0, 0, 0], [100, 0, 0], [0, 100, 0], [100, 100, 0]], float)
    plane_f = np.array([[0, 1, 2], [1, 3, 2]])
    up_down = np.c_[np.random.default_rng(5).uniform(10, 90, (68, 2)), np.where(np.arange(68) % 2, 1.5, -1.5)]
    up_down[36], up_down[45] = [20, 50, -1.5], [60, 50, 1.5]  # 34 up, 34 down: the median is 0
    assert M.landmark_error(up_down, plane_v, pred_faces=plane_f) == pytest.approx(1.5 / M.interocular_distance(up_down))
    assert M.landmark_error(on, np.zeros((0, 3))) == math.inf


def test_landmarks_nme_and_error_curves():
    true = np.c_[np.linspace(0, 40, 68), np.linspace(0, 10, 68)]  # box 40 x 10 -> sqrt 20
    assert M.landmarks_nme(true + [3.0, 4.0], true) == pytest.approx(5.0 / 20.0)
    assert np.allclose(M.landmarks_nme(np.stack([true, true + [0, 2.0]]), np.stack([true, true])), [0, 0.1])
    with pytest.raises(ValueError, match="68"):
        M.landmarks_nme(true[:5], true[:5])
    errors = [0.02, 0.05, np.inf, 0.2]
    assert np.allclose(M.ced(errors, [0.0, 0.02, 0.05, 1.0]), [0, 0.25, 0.5, 0.75])  # inf is never below
    assert M.ced_auc([0.0, 0.0]) == pytest.approx(1.0) and M.ced_auc([np.inf]) == 0.0
