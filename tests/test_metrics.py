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
    aligned = pred + [0, 0, gt[:, 2].mean() - pred[:, 2].mean()]
    d = np.sqrt(((gt[:, None] - aligned[None]) ** 2).sum(-1)).min(1)  # all pairs
    assert M.nme(gt, pred, landmarks(25.0), icp_iterations=0) == pytest.approx(d.mean() / 25.0, rel=1e-12)


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
