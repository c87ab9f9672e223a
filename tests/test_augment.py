"""Augmentations keep image, landmarks and volume aligned; heatmaps sit where they should.

References: exact pixel moves of known images, a pattern drawn at the landmarks (its blobs must
follow the augmented landmarks), the face mask drawn into the image (it must match the
augmented volume's footprint), and the NumPy slab voxeliser on the augmented affines.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from vrnkit import augment as A
from vrnkit.config import VolumeSpec
from vrnkit.geometry import FLIP_PERMUTATION
from vrnkit.voxel import Slab, slab_to_volume, slabs_to_volumes

S = 64
SPEC = VolumeSpec(depth=64, height=S, width=S, depth_scale=2.0)
BLOBS = (8, 30, 36, 45)  # landmarks drawn into image channel 1 (36 alone also in channel 2)
SIGMA = 1.5


def params(angle=0.0, scale=1.0, shift=(0.0, 0.0), flip=False, colour=(1.0, 1.0, 1.0)) -> A.AugmentParams:
    t = lambda *v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    a, s, f = t(math.radians(angle))[0], t(scale)[0], torch.tensor([flip])
    return A.AugmentParams(A.similarity_matrix(a, s, t(*shift), f, size=S), s, f, t(*colour))


def blob(x, y):
    j, i = np.meshgrid(np.arange(S) + 0.5, np.arange(S) + 0.5)
    return np.exp(-((j - x) ** 2 + (i - y) ** 2) / (2 * SIGMA**2))


def face(rng):
    """(image (3, S, S), landmarks (68, 3), slab): channel 0 = face footprint, 1 = blobs at
    landmarks BLOBS, 2 = blob at landmark 36 only."""
    v, u = (np.mgrid[:S, :S] + 0.5) / S - 0.5
    r2 = (u / 0.22) ** 2 + (v / 0.28) ** 2
    mask = r2 < 1
    front = np.where(mask, 10 * np.sqrt(np.clip(1 - r2, 0, 1)), 0).astype(np.float32)
    roll = rng.uniform(-0.4, 0.4)
    c, s = math.cos(roll), math.sin(roll)
    r = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    centre = np.array([S / 2, S / 2, 0.0])
    t = np.array([S / 2, S / 2, SPEC.depth_span / 2 - 5]) - r @ centre
    affine = np.concatenate([r, t[:, None]], 1).astype(np.float32)
    slab = Slab(front=front, mask=mask, back=0.0, affine=affine)
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    lu, lv = 0.15 * np.cos(angles), 0.2 * np.sin(angles)
    lu[[36, 45, 30, 8]] = [-0.15, 0.15, 0.02, 0.0]
    lv[[36, 45, 30, 8]] = [-0.07, -0.07, 0.05, 0.22]
    iu, iv = ((lu + 0.5) * S).astype(int), ((lv + 0.5) * S).astype(int)
    canon = np.stack([(lu + 0.5) * S, (lv + 0.5) * S, front[iv, iu]], 1)
    lm = canon @ affine[:, :3].T.astype(np.float64) + affine[:, 3]
    image = np.stack([slab_to_volume(slab, SPEC).any(0).astype(np.float64),
                      sum(blob(*lm[k, :2]) for k in BLOBS), blob(*lm[36, :2])])
    return torch.tensor(image, dtype=torch.float32), torch.tensor(lm, dtype=torch.float32), slab, canon


def centroid(img, x, y, radius=4):
    """Weighted centroid (pixel-centre coordinates) of img in a window around (x, y)."""
    x, y = float(x), float(y)
    j, i = np.meshgrid(np.arange(S) + 0.5, np.arange(S) + 0.5)
    w = img * (((j - x) ** 2 + (i - y) ** 2) < radius**2)
    return np.array([(w * j).sum(), (w * i).sum()]) / w.sum()


# ---------------------------------------------------------------------------------------------

def test_warps_move_pixels_exactly():
    ONE = pytest.approx(1.0, abs=1e-4)  # float32 grid coordinates
    img = torch.zeros(1, 1, S, S)
    img[0, 0, 10, 20] = 1.0  # row 10, column 20: centre (20.5, 10.5)
    out = A.warp_image(img, params(shift=(3.0, -2.0)).matrix)
    assert out[0, 0, 8, 23] == ONE and out.sum() == ONE
    out = A.warp_image(img, params(flip=True).matrix)  # x -> S - x: column 20 -> 63 - 20
    assert out[0, 0, 10, S - 1 - 20] == ONE and out.sum() == ONE
    out = A.warp_image(img, params(angle=90.0).matrix)  # (x, y) - c -> (-(y - c), x - c)
    assert out[0, 0, 20, S - 1 - 10] == ONE


def test_similarity_maps_and_ranges():
    m = params(angle=30, scale=1.1, shift=(2, 3), flip=True).matrix[0]
    assert torch.allclose(m @ torch.tensor([S / 2, S / 2, 1.0], dtype=torch.float64),
                          torch.tensor([S / 2 + 2, S / 2 + 3, 1.0], dtype=torch.float64))
    assert torch.det(m[:2, :2]).item() == pytest.approx(-1.1**2)
    g = torch.Generator().manual_seed(0)
    p = A.draw_params(4000, size=S, generator=g)
    a = p.matrix[:, :2, :2]
    s = torch.sqrt(torch.det(a).abs())
    assert torch.allclose(s, p.scale) and p.scale.min() >= 0.85 and p.scale.max() <= 1.15
    sign = torch.where(p.flip, -1.0, 1.0).double()
    angle = torch.atan2(a[:, 1, 0], a[:, 1, 1])  # the second column is not mirrored
    assert angle.abs().max() <= math.radians(45) + 1e-9 and angle.abs().max() > math.radians(40)
    shift = (p.matrix[:, :2, 2] + (a @ torch.full((4000, 2, 1), S / 2.0, dtype=torch.float64))[..., 0] - S / 2)
    assert shift.abs().max() <= 15 * S / 192 + 1e-9
    assert abs(p.flip.double().mean().item() - 0.2) < 0.03
    assert p.colour.min() >= 0.6 and p.colour.max() <= 1.4
    assert torch.all(torch.sign(torch.det(a)) == sign)


def test_generator_state_reproduces_draws():
    g = torch.Generator().manual_seed(5)
    A.draw_params(3, size=S, generator=g)
    state = g.get_state()
    first = A.draw_params(3, size=S, generator=g)
    g.set_state(state)
    again = A.draw_params(3, size=S, generator=g)
    assert torch.equal(first.matrix, again.matrix) and torch.equal(first.colour, again.colour)
    assert torch.equal(first[1:].matrix, first.matrix[1:])


@pytest.mark.parametrize("flip", [0.0, 1.0, 0.5])
def test_image_landmarks_and_volume_stay_aligned(flip):
    rng = np.random.default_rng(int(flip * 10))
    faces = [face(rng) for _ in range(4)]
    image = torch.stack([f[0] for f in faces])
    lms = torch.stack([f[1] for f in faces])
    affine = torch.tensor(np.stack([f[2].affine for f in faces]))
    g = torch.Generator().manual_seed(0)  # with flip=0.5: two of four flipped
    p = A.draw_params(4, size=S, generator=g, config=A.AugmentConfig(flip=flip, colour=(1.0, 1.0)))
    img2, lm2, aff2 = A.augment(image, lms, affine, p, depth_span=SPEC.depth_span)
    front = torch.tensor(np.stack([f[2].front for f in faces]))
    mask = torch.tensor(np.stack([f[2].mask for f in faces]))
    vol = slabs_to_volumes(front, mask, torch.zeros(4), aff2, SPEC)
    for b in range(4):
        flipped = bool(p.flip[b])
        # blobs follow the landmarks; the blob of landmark 36 is called 45 after a flip
        for k in BLOBS:
            assert np.linalg.norm(centroid(img2[b, 1].numpy(), *lm2[b, k, :2]) - lm2[b, k, :2].numpy()) < 0.3
        k36 = 45 if flipped else 36
        assert np.linalg.norm(centroid(img2[b, 2].numpy(), *lm2[b, k36, :2]) - lm2[b, k36, :2].numpy()) < 0.3
        # the volume's footprint is the warped face mask, within a pixel
        fp, im = vol[b].any(0).numpy(), img2[b, 0].numpy() > 0.5
        assert (fp & ~ndimage.binary_dilation(im, np.ones((3, 3)))).sum() == 0
        assert (im & ~ndimage.binary_dilation(fp, np.ones((3, 3)))).sum() == 0
        assert (fp ^ im).sum() < 0.1 * fp.sum()
        # landmarks = augmented affine applied to their canonical points (depth too)
        canon = faces[b][3]
        expect = canon @ aff2[b, :, :3].double().numpy().T + aff2[b, :, 3].double().numpy()
        if flipped:
            expect = expect[FLIP_PERMUTATION]
        assert np.allclose(lm2[b].numpy(), expect, atol=1e-3)
        # and the NumPy voxeliser agrees with the batched one on the augmented (maybe mirrored) affine
        ref = slab_to_volume(Slab(front=faces[b][2].front, mask=faces[b][2].mask, back=0.0,
                                  affine=aff2[b].numpy()), SPEC)
        assert np.array_equal(ref, vol[b].numpy())
    assert p.flip.all() if flip == 1.0 else not p.flip.any() if flip == 0.0 else p.flip.any()


def test_flip_mirrors_the_volume_and_scale_keeps_mid_depth():
    _, lm, slab, _ = face(np.random.default_rng(7))
    aff = torch.tensor(slab.affine)[None]
    base = slab_to_volume(slab, SPEC)
    flipped = A.transform_affine(aff, params(flip=True), depth_span=SPEC.depth_span)[0].numpy()
    mirrored = slab_to_volume(Slab(slab.front, slab.mask, 0.0, flipped), SPEC)
    assert (mirrored != base[:, :, ::-1]).sum() <= 0.001 * base.sum()
    p = params(scale=1.15)
    z = A.transform_landmarks(torch.tensor([[[S / 2, S / 2, SPEC.depth_span / 2], [S / 2, S / 2, 30.0]]]), p,
                              depth_span=SPEC.depth_span)[0, :, 2]
    assert z[0].item() == pytest.approx(SPEC.depth_span / 2)  # the middle of the volume stays put
    assert z[1].item() == pytest.approx(16 + 1.15 * 14)


def test_colour_scaling_per_channel():
    img = torch.full((1, 3, S, S), 0.5)
    out, _, _ = A.augment(img, torch.zeros(1, 68, 3), torch.eye(3, 4)[None], params(colour=(0.6, 1.0, 1.4)),
                          depth_span=32.0)
    assert torch.allclose(out[0, :, 30, 30], torch.tensor([0.3, 0.5, 0.7]))
    assert out.max() <= 1


def test_heatmaps_pixel_centres_and_sigma():
    lm = torch.tensor([[[4 * 5.5, 4 * 2.5, 7.0], [4 * 6.0, 4 * 3.0, 0.0]]])  # pixel (2, 5) centre; a corner
    hm = A.landmarks_to_heatmaps(lm, 16)
    assert hm.shape == (1, 2, 16, 16)
    assert hm[0, 0, 2, 5] == pytest.approx(1.0) and hm[0, 0].argmax().item() == 2 * 16 + 5
    assert hm[0, 0, 2, 6] == pytest.approx(math.exp(-0.5)) and hm[0, 0, 3, 6] == pytest.approx(math.exp(-1.0))
    # a landmark on a pixel corner: four equal maxima around it
    corner = hm[0, 1, 2:4, 5:7].flatten().tolist()
    assert corner == pytest.approx([math.exp(-0.25)] * 4) and hm[0, 1].max() == hm[0, 1, 2, 5]
    wide = A.landmarks_to_heatmaps(lm[..., :2], 16, sigma=2.0)
    assert wide[0, 0, 2, 7] == pytest.approx(math.exp(-0.5))
    with pytest.raises(ValueError, match="B, K, 2 or 3"):
        A.landmarks_to_heatmaps(torch.zeros(68, 2), 16)


def test_heatmaps_to_landmarks_inverts_landmarks_to_heatmaps():
    """Peaks of Gaussian heatmaps give the landmarks back within a quarter heatmap pixel."""
    from vrnkit.augment import heatmaps_to_landmarks, landmarks_to_heatmaps

    g = torch.Generator().manual_seed(3)
    lm = 8 + torch.rand(2, 68, 2, generator=g) * 176  # crop pixels of a 192 px crop
    back = heatmaps_to_landmarks(landmarks_to_heatmaps(lm, 48), stride=4.0)
    err = (back - lm).abs()
    assert err.max() <= 0.25 * 4 + 1e-4 and err.mean() < 0.7, err.max()
