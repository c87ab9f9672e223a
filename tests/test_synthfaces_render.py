import doctest

import numpy as np
import pytest

from vrnkit.synthfaces import render

from vrnkit import viz
from vrnkit.config import VolumeSpec
from vrnkit.synthfaces.model import ANTISYMMETRIC_IDENTITY, EXPRESSIONS, FaceModel
from vrnkit.geometry import FLIP_PERMUTATION, CropFrame
from vrnkit.raster import rasterize

QUICK = VolumeSpec.preset("cpu")
PAPER = VolumeSpec.preset("paper")


@pytest.fixture(scope="module")
def model():
    return FaceModel.default()


def sample(model, seed, *, spec=QUICK, yaw=None, **kw):
    rng = np.random.default_rng(seed)
    y, pitch, roll = render.random_pose(rng)
    return render.render_face(model, model.sample_identity(rng), model.sample_expression(rng),
                              yaw=y if yaw is None else yaw, pitch=pitch, roll=roll, spec=spec, rng=rng, **kw)


def test_docstring_examples_run():
    for module in (render, viz):
        assert doctest.testmod(module).failed == 0


def test_outputs_have_documented_shapes_and_types(model):
    s = sample(model, 0)
    H, W = QUICK.height, QUICK.width
    assert s["image"].shape == (H, W, 3) and s["image"].dtype == np.uint8
    assert s["landmarks"].shape == (68, 3) and s["landmarks"].dtype == np.float32
    assert s["landmark_visible"].shape == (68,) and s["landmark_visible"].dtype == bool
    assert s["vertices"].shape == (model.n_vertices, 3) and s["vertices"].dtype == np.float32
    assert s["mask"].shape == (H, W) and s["occluder"].shape == (H, W)
    assert isinstance(s["frame"], CropFrame) and s["affine"].shape == (3, 4) and s["pose"].shape == (3,)


def test_same_seed_same_bytes_and_other_seeds_differ(model):
    for spec in (QUICK, PAPER):
        a, b = sample(model, 7, spec=spec), sample(model, 7, spec=spec)
        assert a["image"].tobytes() == b["image"].tobytes()
        assert a["landmarks"].tobytes() == b["landmarks"].tobytes()
    assert sample(model, 8)["image"].tobytes() != sample(model, 7)["image"].tobytes()


def test_affine_and_crop_frame_follow_the_paper(model):
    rng = np.random.default_rng(1)
    ident, expr = model.sample_identity(rng), EXPRESSIONS["fear"]
    s = render.render_face(model, ident, expr, yaw=0.5, pitch=-0.2, roll=0.3, spec=PAPER, rng=rng, jitter=False)
    v = model.vertices(ident, expr).astype(np.float64)
    np.testing.assert_allclose(v @ s["affine"][:, :3].T + s["affine"][:, 3], s["vertices"], atol=1e-2)
    lm = s["landmarks"]
    box = lm[:, :2].max(0) - lm[:, :2].min(0)
    assert np.sqrt(box.prod()) == pytest.approx(PAPER.face_size, rel=1e-4)  # 90 px face
    np.testing.assert_allclose((lm[:, :2].max(0) + lm[:, :2].min(0)) / 2, [96, 96], atol=1e-3)  # centred
    assert lm[:, 2].mean() == pytest.approx(PAPER.depth_span / 2, abs=1e-3)  # mid-volume
    A = s["affine"][:, :3].astype(np.float64)
    k = np.linalg.norm(A[0])
    np.testing.assert_allclose(A @ A.T, k * k * np.eye(3), atol=1e-6 * k * k)  # a scaled rotation


@pytest.mark.parametrize("seed", range(6))
def test_visible_landmarks_fall_on_the_rendered_face(model, seed):
    yaw = np.radians([-90, -60, -20, 0, 45, 85])[seed]
    s = sample(model, 100 + seed, spec=PAPER, yaw=yaw, occluders=False)
    # An independent z-buffer of the full-resolution mesh, one pixel of slack at its outline.
    from scipy.ndimage import binary_dilation

    full = rasterize(s["vertices"], model.faces, PAPER.height, PAPER.width)
    face = binary_dilation(full.mask, np.ones((3, 3), bool))
    lm, vis = s["landmarks"], s["landmark_visible"]
    x, y = lm[vis, 0].astype(int), lm[vis, 1].astype(int)
    assert face[y, x].all()
    assert binary_dilation(s["mask"], np.ones((3, 3), bool))[y, x].all()  # and on the face drawn
    assert vis.sum() >= (64 if abs(yaw) < 0.1 else 25)
    # Hidden landmarks face away from the camera or lie behind the surface seen at their pixel.
    hidden = np.nonzero(~vis)[0]
    x, y = lm[hidden, 0].astype(int).clip(0, PAPER.width - 1), lm[hidden, 1].astype(int).clip(0, PAPER.height - 1)
    away = render.grid_normals(s["vertices"])[model.landmarks[hidden], 2] < 0
    assert np.all(away | (full.depth[y, x] > lm[hidden, 2]))


def test_self_occlusion_hides_the_far_side(model):
    s = sample(model, 3, spec=PAPER, yaw=np.radians(80), occluders=False)  # nose toward image right
    vis = s["landmark_visible"]
    assert vis[36] and vis[39] and not vis[45] and not vis[16]  # subject's left side turned away
    s = sample(model, 3, spec=PAPER, yaw=np.radians(-80), occluders=False)
    assert s["landmark_visible"][45] and not s["landmark_visible"][36]


def test_flipped_render_matches_render_of_mirrored_face(model):
    rng = np.random.default_rng(11)
    ident = model.sample_identity(rng)
    ident[[model.identity_names.index(n) for n in ANTISYMMETRIC_IDENTITY]] = 0  # a symmetric face
    expr = model.sample_expression(rng, "happiness")
    mirrored, _ = model.mirror_parameters(ident)
    for yaw, pitch, roll in [(0.6, 0.1, 0.2), (-1.3, -0.2, 0.0), (0.0, 0.3, -0.3)]:
        a = render.render_face(model, ident, expr, yaw=yaw, pitch=pitch, roll=roll, spec=PAPER,
                               rng=np.random.default_rng(5), jitter=False)
        b = render.render_face(model, mirrored, expr, yaw=-yaw, pitch=pitch, roll=-roll, spec=PAPER,
                               rng=np.random.default_rng(5), jitter=False)
        flipped = a["mask"][:, ::-1]
        assert (flipped & b["mask"]).sum() / (flipped | b["mask"]).sum() > 0.98
        lm = a["landmarks"][FLIP_PERMUTATION].copy()
        lm[:, 0] = PAPER.width - lm[:, 0]
        assert np.abs(lm - b["landmarks"]).max() < 1.0  # pixels (x, y and depth)
        agree = a["landmark_visible"][FLIP_PERMUTATION] == b["landmark_visible"]
        assert agree.mean() > 0.95


def test_options_and_errors(model):
    rng = np.random.default_rng(2)
    for _ in range(50):
        yaw, pitch, roll = render.random_pose(rng, max_yaw=np.pi / 4)
        assert abs(yaw) <= np.pi / 4 and abs(pitch) <= np.radians(35) and abs(roll) <= np.radians(35)
    plain = sample(model, 4, clutter=False, occluders=False, lighting="strong", head=False)
    assert not plain["occluder"].any()
    with pytest.raises(ValueError, match="lighting"):
        sample(model, 4, lighting="dim")
    with pytest.raises(ValueError, match="identity"):
        render.render_face(model, np.zeros(3), None, yaw=0, pitch=0, roll=0, spec=QUICK, rng=rng)


def test_gallery_draws_one_panel_per_image(model):
    ss = [sample(model, k) for k in range(5)]
    fig = viz.gallery([s["image"] for s in ss], [s["landmarks"] for s in ss], cols=3,
                      titles=list("abcde"), visible=[s["landmark_visible"] for s in ss])
    assert len(fig.axes) == 5
    with pytest.raises(ValueError, match="one"):
        viz.gallery([ss[0]["image"]], [ss[0]["landmarks"]] * 2)
