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
    from vrnkit.synthfaces import scene, texture

    for module in (render, texture, scene, viz):
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


# ---------------------------------------------------------------------------------------------
# The appearance (synthfaces.texture, synthfaces.scene, the lights and shadows in render)

from vrnkit.synthfaces import scene, texture  # noqa: E402
from vrnkit.synthfaces.dataset import make_sample  # noqa: E402


def luminance(image) -> np.ndarray:
    return np.asarray(image, np.float64) @ [0.299, 0.587, 0.114]


def patch_mean(lum, xy, r=1) -> float:
    """Mean of the (2r+1)^2 pixels around the pixel that holds point xy (pixel-corner coordinates)."""
    x, y = int(np.floor(xy[0])), int(np.floor(xy[1]))
    return float(lum[y - r:y + r + 1, x - r:x + r + 1].mean())


def test_test_sets_are_deterministic_per_index():
    a, _ = make_sample("synth-aflw2000", 3, spec=PAPER)
    b, _ = make_sample("synth-aflw2000", 3, spec=PAPER)
    c, _ = make_sample("synth-aflw2000", 4, spec=PAPER)
    assert a["image"].tobytes() == b["image"].tobytes()
    assert np.abs(a["image"].astype(int) - c["image"]).mean() > 10  # another face, not noise


def frontal_faces(model, n, **kw):
    """n near-frontal paper-size faces without occluders, background clutter or head: the face alone."""
    out = []
    for k in range(n):
        rng = np.random.default_rng([31, k])
        ident = model.sample_identity(rng)
        out.append(render.render_face(model, ident, EXPRESSIONS["neutral"], yaw=rng.uniform(-0.2, 0.2),
                                      pitch=rng.uniform(-0.1, 0.1), roll=0.0, spec=PAPER, rng=rng,
                                      occluders=False, clutter=False, **kw))
    return out


def test_brows_are_darker_than_the_forehead_above_them(model):
    darker = 0
    faces = frontal_faces(model, 24)
    for s in faces:
        lum, lm = luminance(s["image"]), s["landmarks"][:, :2]
        brow_height = (lm[27, 1] - lm[19, 1]) * 0.25  # the brow hangs below its landmarks (its upper edge)
        for b in ((19, 20), (23, 24)):
            brow = np.mean([patch_mean(lum, lm[i] + [0, brow_height]) for i in b])
            forehead = np.mean([patch_mean(lum, lm[i] - [0, 2.5 * brow_height]) for i in b])
            darker += brow < forehead - 10
    assert darker >= 0.9 * 2 * len(faces)


def test_lashes_iris_and_lips_are_painted_darker_than_the_skin(model):
    from vrnkit.synthfaces.mesh import I_LO, I_UP, NU

    rng = np.random.default_rng(1)
    centre = (NU - 1) / 2
    eye_col = centre - 24  # a column through the right eye (the midline is column 70)
    lips_uv = [centre, (model.uv[model.landmarks[51], 1] + model.uv[model.landmarks[62], 1]) / 2]
    uv = np.array([[eye_col, I_UP + 0.2], [eye_col, (I_UP + I_LO) / 2], lips_uv, [centre, 30.0]], np.float32)
    for _ in range(50):
        look = texture.draw_look(rng, male=bool(rng.integers(2)))
        albedo, _ = texture.face_albedo(uv, look)
        lash, eye, lips, cheek = luminance(albedo)
        skin = luminance(look["skin"])
        assert lash < 0.6 * skin and lash < 0.2
        assert lips < 0.95 * skin
    assert 0 < cheek < 1 and np.isfinite(eye)


def test_the_key_light_casts_the_nose_shadow(model):
    rng = np.random.default_rng(0)
    v_model = model.vertices()
    _, affine = render.pose_to_crop(v_model[model.landmarks], yaw=0.0, pitch=0.0, roll=0.0, spec=PAPER, rng=rng,
                                    jitter=False)
    v = v_model.astype(np.float64) @ affine[:, :3].T + affine[:, 3]
    r = rasterize(v, render._faces_for(PAPER.width), PAPER.height, PAPER.width)
    used, coarse = render._shadow_mesh()
    lm = v[model.landmarks]
    from_left = render._shadow(r.depth, v[used], coarse, np.array([0.8, -0.2, 0.55]), 0.0)
    # Light from the face's left (image right): the right of the nose (image left of it) is in shadow.
    beside_nose = lm[31, :2] + [-0.3 * (lm[35, 0] - lm[31, 0]), -0.1 * (lm[33, 1] - lm[27, 1])]
    assert from_left[int(beside_nose[1]), int(beside_nose[0])] == 0
    assert from_left[int(lm[19, 1]) - 6, int(lm[24, 0])] == 1  # the forehead is lit
    from scipy.ndimage import binary_dilation

    assert not (from_left[~binary_dilation(r.mask, np.ones((3, 3), bool))] < 1).any()  # no surface, no shadow
    assert render._shadow(r.depth, v[used], coarse, np.array([0.0, 0.0, 1.0]), 0.0)[r.mask].mean() > 0.99


def test_ambient_occlusion_darkens_the_creases(model):
    ao = render._vertex_ao(model)
    assert ao.shape == (model.n_vertices,) and ao.min() >= 0 and ao.max() <= 1
    forehead = model.landmarks[27] - 25 * model.grid_shape[1]  # 25 grid rows above the nose's root
    assert ao[forehead] > 0.95
    assert ao[model.landmarks[31]] < 0.8 * ao[forehead]  # beside the nostril
    assert ao[model.landmarks[39]] < ao[forehead]  # the inner eye corner


def test_styles_accessories_and_occluders_come_in_their_shares():
    rng = np.random.default_rng(0)
    looks = [texture.draw_look(rng, male=bool(k % 2)) for k in range(600)]
    styles = [scene.draw_style(rng, look) for look in looks]
    assert set(s["style"] for s in styles) == set(scene.HAIR_STYLES)
    glasses = np.mean([s["glasses"] for s in styles])
    assert abs(glasses - scene.GLASSES_P) < 0.05 and 0 < np.mean([s["hat"] for s in styles]) < 0.1
    men = [look for look in looks if look["male"]]
    assert 0.3 < np.mean([look["stubble"] > 0 or look["beard"] > 0 or look["moustache"] > 0 for look in men]) < 0.8
    assert not any(look["beard"] or look["moustache"] for look in looks if not look["male"])
    # Occluders: drawn in the asked share of faces; a drawn one covers part of the face.
    s = frontal_faces(FaceModel.default(), 1)[0]
    covered = []
    for k in range(200):
        surf = scene.Surfaces(PAPER.height, PAPER.width)
        covered.append(scene.draw_occluders(surf, s["landmarks"], np.random.default_rng(k), p=0.5))
    share = np.mean([c.any() for c in covered])
    assert 0.4 < share < 0.6
    on_face = [(c & s["mask"]).mean() / s["mask"].mean() for c in covered if c.any()]
    assert 0.01 < np.median(on_face) < 0.5


def test_occluder_mask_marks_what_covers_the_face(model):
    seen = 0
    for k in range(40):
        s = sample(model, 200 + k, spec=QUICK, occluders=True)
        seen += s["occluder"].any()
    assert 3 <= seen <= 30  # occluders (p = 0.25), glasses frames and hats over some faces


needs_dlib = pytest.mark.skipif(
    __import__("importlib").util.find_spec("dlib") is None
    or __import__("importlib").util.find_spec("face_recognition_models") is None,
    reason="needs dlib and its models: pip install 'vrnkit[photos]'")


@needs_dlib
def test_a_real_face_detector_finds_near_frontal_synthfaces(model):
    """dlib's HOG detector (trained on real photos only) finds SynthFaces: 20 of 20 in our runs."""
    from vrnkit.detect import detect_faces
    from vrnkit.photo import background_photo, paste_image

    found = 0
    for k, s in enumerate(frontal_faces(model, 20, head=True)):
        photo, lm = paste_image(background_photo(k, size=(320, 320)), s["image"], xy=(64, 64),
                                landmarks=s["landmarks"])
        lo, hi = lm[:, :2].min(0), lm[:, :2].max(0)
        boxes = [f.box for f in detect_faces(photo, detector="hog")]
        found += any(np.all(lo <= (np.asarray(b[:2]) + b[2:]) / 2) and np.all((np.asarray(b[:2]) + b[2:]) / 2 <= hi)
                     for b in boxes)
    assert found >= 17
