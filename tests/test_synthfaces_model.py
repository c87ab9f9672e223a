import doctest

import numpy as np
import pytest

from vrnkit.synthfaces import model as facegen, mesh as facemesh
from vrnkit.synthfaces.model import EXPRESSION_RANGE, EXPRESSIONS, IDENTITY_RANGE, FaceModel
from vrnkit.geometry import FLIP_PERMUTATION, LANDMARK_GROUPS


@pytest.fixture(scope="module")
def model():
    return FaceModel.default()


def symmetric(model, identity):
    """The same identity with its antisymmetric (asymmetry) parameters set to 0."""
    out = np.array(identity, np.float32)
    out[[model.identity_names.index(n) for n in facegen.ANTISYMMETRIC_IDENTITY]] = 0
    return out


def domain_area(model, v):
    """Signed area of every triangle in the graph's (angle, height) domain, float64."""
    v = np.asarray(v, np.float64)
    q = np.stack([np.arctan2(v[..., 0], v[..., 2] - facemesh.AXIS_Z), v[..., 1]], -1)
    a, b, c = (q[..., model.faces[:, k], :] for k in range(3))
    return (b - a)[..., 0] * (c - a)[..., 1] - (b - a)[..., 1] * (c - a)[..., 0]


def test_docstring_examples_run():
    for module in (facegen, facemesh):
        assert doctest.testmod(module).failed == 0


def test_mesh_and_tables(model):
    n = model.n_vertices
    assert n >= 10_000 and model.mean.shape == (n, 3) and model.mean.dtype == np.float32
    assert model.faces.dtype == np.int32 and model.faces.min() == 0 and model.faces.max() == n - 1
    assert len(model.identity_names) >= 20 and len(model.expression_names) >= 8
    assert model.identity_basis.shape == (3 * n, len(model.identity_names))
    assert model.expression_basis.shape == (3 * n, len(model.expression_names))
    assert model.landmarks.shape == (68,) and len(set(model.landmarks)) == 68
    assert list(model.outer_eye_corners) == list(model.landmarks[[36, 45]])
    assert np.array_equal(np.sort(model.mirror), np.arange(n))  # a permutation ...
    assert np.array_equal(model.mirror[model.mirror], np.arange(n))  # ... and an involution
    assert 8_000 < len(model.face_region) < n
    assert set(EXPRESSIONS) == {"neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise"}
    assert not EXPRESSIONS["neutral"].any()
    for label, e in EXPRESSIONS.items():
        model.check_expression(e)
        assert label == "neutral" or e.sum() > 1


def test_units_and_proportions(model):
    v = model.mean
    lm = v[model.landmarks]
    assert 130 < np.ptp(v[:, 0]) < 160  # ear to ear, mm
    assert 180 < lm[8, 1] - v[:, 1].min() < 235  # top of the forehead to the chin
    assert 85 < np.linalg.norm(lm[36] - lm[45]) < 100  # outer eye corners
    side = (np.abs(np.abs(v[:, 0]) - 22) < 2) & (np.abs(v[:, 1] - 40) < 2)  # cheek beside the nose
    assert 18 < lm[30, 2] - v[side, 2].mean() < 35  # nose projection
    assert abs(lm[27:36, 0]).max() < 15 and abs(lm[[27, 28, 29, 30, 33, 51, 57, 62, 66, 8], 0]).max() < 1e-4


def test_landmarks_mean_what_ibug_says(model):
    rng = np.random.default_rng(1)
    for _ in range(5):
        lm = model.vertices(model.sample_identity(rng), model.sample_expression(rng))[model.landmarks]
        x, y, z = lm.T
        assert x[0] < x[8] < x[16] and y[8] == y[:17].max()  # jaw: subject's right ear (image left) -> left
        assert x[36] < x[39] < x[42] < x[45]  # outer and inner eye corners, right eye first
        assert y[37] < y[41] and y[38] < y[40] and y[43] < y[47] and y[44] < y[46]  # upper lid above lower
        assert y[17:27].max() < y[36:48].min()  # brows above eyes
        assert np.all(np.diff(y[27:31]) > 0) and z[30] == z[27:36].max()  # bridge down to the tip
        assert y[30] < y[33] < y[51] < y[62] <= y[66] < y[57] < y[8]  # nose, lips, chin in order
        assert x[48] < x[60] < x[64] < x[54] and x[31] < x[33] < x[35]
    # The mouth opens: inner lips part; eyes close: lids meet.
    lm = model.vertices(None, EXPRESSIONS["surprise"])[model.landmarks]
    assert lm[66, 1] - lm[62, 1] > 12
    closed = model.vertices(None, np.eye(len(model.expression_names))[
        model.expression_names.index("eye_close")])[model.landmarks]
    assert closed[41, 1] - closed[37, 1] < 0.3 * (lm[41, 1] - lm[37, 1])


def test_mirror_maps_landmarks_with_flip_permutation(model):
    rng = np.random.default_rng(2)
    for _ in range(5):
        ident = symmetric(model, model.sample_identity(rng))
        v = model.vertices(ident, model.sample_expression(rng))
        mirrored = model.mirror_vertices(v)
        np.testing.assert_allclose(mirrored, v, atol=1e-4)  # a symmetric face is its own mirror image
        lm = v[model.landmarks]
        np.testing.assert_allclose(lm[FLIP_PERMUTATION] * [-1, 1, 1], lm, atol=1e-4)
    # Any face: the mirror image is the face of the mirrored parameters.
    ident, expr = model.sample_identity(rng, scale=2.0), model.sample_expression(rng)
    mirrored = model.vertices(*model.mirror_parameters(ident, expr))
    np.testing.assert_allclose(mirrored, model.mirror_vertices(model.vertices(ident, expr)), atol=1e-3)
    assert np.abs(model.vertices(ident, expr) - mirrored).max() > 0.5  # that face was not symmetric


def test_each_parameter_moves_the_mesh_and_the_parts_are_independent(model):
    for basis in (model.identity_basis, model.expression_basis):
        move = np.abs(basis).reshape(-1, 3, basis.shape[1]).max((0, 1))
        assert move.min() > 0.5, "every parameter moves some vertex by half a millimetre or more"
    both = np.concatenate([model.identity_basis, model.expression_basis], 1).astype(np.float64)
    s = np.linalg.svd(both, compute_uv=False)
    assert s[-1] / s[0] > 1e-3  # no parameter is a mix of the others (identity and expression alike)
    rng = np.random.default_rng(3)
    a1, a2 = model.sample_identity(rng), model.sample_identity(rng)
    e1, e2 = model.sample_expression(rng, "happiness"), model.sample_expression(rng, "surprise")
    # The expression part of the mesh does not depend on the identity, and vice versa.
    d1 = model.vertices(a1, e1) - model.vertices(a1, 0 * e1)
    d2 = model.vertices(a2, e1) - model.vertices(a2, 0 * e1)
    np.testing.assert_allclose(d1, d2, atol=1e-3)
    d1 = model.vertices(a1, e1) - model.vertices(0 * a1, e1)
    d2 = model.vertices(a1, e2) - model.vertices(0 * a1, e2)
    np.testing.assert_allclose(d1, d2, atol=1e-3)


def test_thousands_of_faces_without_inverted_or_collapsed_triangles(model):
    rng = np.random.default_rng(4)
    ref = domain_area(model, model.mean)
    assert ref.min() > 0
    ni, ne = len(model.identity_names), len(model.expression_names)
    worst, smallest = np.inf, np.inf
    for batch in range(20):  # 2000 faces: sampled, and with expressions anywhere in their box
        k = 100
        ident = np.stack([model.sample_identity(rng) for _ in range(k)])
        expr = np.stack([model.sample_expression(rng) for _ in range(k // 2)]
                        + [rng.uniform(*EXPRESSION_RANGE, ne) for _ in range(k // 4)]
                        + [(rng.random(ne) < 0.5).astype(np.float32) for _ in range(k - k // 2 - k // 4)])
        if batch % 5 == 0:  # a few faces at the ends of the identity range too
            ident[:10] = rng.choice(IDENTITY_RANGE, (10, ni)) * (rng.random((10, ni)) < 0.3)
        v = (model.mean.reshape(-1) + ident @ model.identity_basis.T + expr @ model.expression_basis.T)
        v = v.reshape(k, -1, 3)
        worst = min(worst, (domain_area(model, v) / ref).min())
        tri = v[:, model.faces]
        smallest = min(smallest, np.linalg.norm(np.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0]), axis=-1).min())
    assert worst > 0.02, f"a triangle folded or collapsed in the graph domain (area ratio {worst:.3g})"
    assert smallest > 1e-4  # mm^2: no triangle degenerates in 3-D either


def test_sampling_is_seeded_varied_and_valid(model):
    a = model.sample_identity(np.random.default_rng(5))
    assert np.array_equal(a, model.sample_identity(np.random.default_rng(5)))
    rng = np.random.default_rng(6)
    faces = [model.vertices(model.sample_identity(rng), model.sample_expression(rng)) for _ in range(6)]
    gaps = [np.abs(faces[i] - faces[j]).mean() for i in range(6) for j in range(i)]
    assert min(gaps) > 0.5  # mm: clearly different faces
    for label in EXPRESSIONS:
        e = model.sample_expression(rng, label)
        model.check_expression(e)
        if label != "neutral":
            assert np.dot(e, EXPRESSIONS[label]) > 0.4 * np.dot(EXPRESSIONS[label], EXPRESSIONS[label])


@pytest.mark.parametrize("bad, match", [
    (np.zeros(5), r"shape \(\d+,\).*got shape \(5,\)"),
    (np.full(31, np.nan), "finite"),
    (np.full(31, 4.0), r"\[-3.0, 3.0\]; got sex=4, face_width=4"),
])
def test_invalid_identity_raises(model, bad, match):
    with pytest.raises(ValueError, match=match):
        model.vertices(bad, None)


def test_invalid_expression_raises(model):
    ne = len(model.expression_names)
    with pytest.raises(ValueError, match="expression parameters must have shape"):
        model.vertices(None, np.zeros(ne + 1))
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]; got jaw_open=-0.5"):
        model.vertices(None, np.r_[-0.5, np.zeros(ne - 1)])
    with pytest.raises(ValueError, match="unknown expression"):
        model.sample_expression(np.random.default_rng(0), "boredom")


def test_coarse_mesh_is_a_symmetric_subset(model):
    coarse = facemesh.grid_faces(2)
    assert len(coarse) < len(model.faces) / 3
    key = lambda f: {tuple(sorted(t)) for t in f.tolist()}  # noqa: E731
    assert key(model.mirror[coarse]) == key(coarse)
    with pytest.raises(ValueError, match="step"):
        facemesh.grid_faces(3)


def test_feature_maps_cover_their_features(model):
    maps = facemesh.feature_maps(4)
    assert all(m.shape == maps["y"].shape and m.dtype == np.float32 for m in maps.values())
    # A landmark's texel carries the feature it names.
    r, c = model.uv[model.landmarks, 1], model.uv[model.landmarks, 0]
    at = lambda name, k: maps[name][int(round(r[k] * 4 + 1.5)), int(round(c[k] * 4 + 1.5))]  # noqa: E731
    assert at("lips", 62) > 0.5 and at("lips", 66) > 0.5 and at("brows", 19) > 0.5 and at("sclera", 36) < 0.5
    assert maps["iris"].max() == pytest.approx(1, abs=0.01) and maps["mouth"].max() == pytest.approx(1, abs=0.01)
    assert all(len(idx) for idx in LANDMARK_GROUPS.values())


def test_both_face_models_share_one_protocol(model):
    """SynthFaces' model and the 3DDFA model are used the same way: landmarks and face region are
    vertex index arrays of the same names (once a bool mask on one and a method on the other)."""
    from vrnkit.datasets.morphable import toy_face_model
    from vrnkit.geometry import FaceTopology

    for m in (model, toy_face_model()):
        assert isinstance(m, FaceTopology)
        assert m.landmarks.shape == (68,) and m.landmarks.dtype.kind == "i"
        assert m.face_region.ndim == 1 and m.face_region.dtype.kind == "i"
        assert 0 < len(m.face_region) < len(m.mean) and m.face_region.max() < len(m.mean)
        # the nose tip is inside the NME region of both
        assert m.landmarks[30] in set(m.face_region.tolist())


@pytest.mark.parametrize("name, low, high, part", [
    ("face_width", -3, 3, slice(0, 68)), ("nose_length", -3, 3, slice(27, 36)), ("smile", 0, 1, slice(48, 68)),
    ("jaw_open", 0, 1, slice(48, 68)), ("brow_raise", 0, 1, slice(17, 27)), ("eye_close", 0, 1, slice(36, 48))])
def test_a_parameter_visibly_changes_its_part_of_the_crop(model, name, low, high, part):
    """Notebook 01's sliders must show: moving a parameter over its range changes a good share of
    the pixels around the landmarks of the part it shapes, in the paper-size crop (where the crop's
    scaling hides a face's size). The smile of an earlier model changed 13 % of its part (under 1 %
    of the crop) and was hard to see; now about 20 %."""
    from vrnkit.config import VolumeSpec
    from vrnkit.synthfaces.render import render_face

    def crop(value):
        identity = np.zeros(len(model.identity_names), np.float32)
        expression = np.zeros(len(model.expression_names), np.float32)
        names, params = ((model.identity_names, identity) if name in model.identity_names
                         else (model.expression_names, expression))
        params[names.index(name)] = value
        return render_face(model, identity, expression, yaw=np.radians(30), pitch=0.0, roll=0.0,
                           spec=VolumeSpec.preset("paper"), rng=np.random.default_rng(7), clutter=False,
                           occluders=False, jitter=False)

    a, b = crop(low), crop(high)
    lm = np.concatenate([a["landmarks"][part, :2], b["landmarks"][part, :2]])
    (x0, y0), (x1, y1) = np.floor(lm.min(0) - 4).astype(int), np.ceil(lm.max(0) + 4).astype(int)
    changed = np.abs(a["image"].astype(int) - b["image"].astype(int)).max(-1)[y0:y1, x0:x1] > 20
    assert changed.mean() > 0.15, f"{name}: only {changed.mean():.1%} of the pixels around its part change"
