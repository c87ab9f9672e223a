import numpy as np
import pytest

from vrnkit.config import VolumeSpec, resolve_mode
from vrnkit.geometry import (FLIP_PERMUTATION, LANDMARK_NAMES, OUTER_EYE_CORNERS, CropFrame,
                             euler_to_matrix)


def test_photo_crop_round_trip_within_1e4_px():
    rng = np.random.default_rng(1)
    lm = rng.uniform(100, 400, size=(68, 3))
    frame = CropFrame.from_landmarks(lm, size=192, face_size=90)
    pts = rng.uniform(-1000, 1000, size=(1000, 3))
    back = frame.crop_to_photo(frame.photo_to_crop(pts))
    assert np.abs(back - pts).max() < 1e-4
    # The inverse frame is the same map as crop_to_photo.
    assert np.allclose(frame.inverse().photo_to_crop(frame.photo_to_crop(pts)), pts, atol=1e-6)


def test_paper_crop_puts_the_landmark_box_at_90px_in_the_centre():
    rng = np.random.default_rng(2)
    lm = np.c_[rng.uniform(200, 320, 68), rng.uniform(150, 300, 68), rng.uniform(-20, 20, 68)]
    spec = VolumeSpec.preset("paper")
    frame = CropFrame.from_landmarks(lm, size=192, face_size=90, depth_span=spec.depth_span)
    c = frame.photo_to_crop(lm)
    w, h = np.ptp(c[:, 0]), np.ptp(c[:, 1])
    assert np.sqrt(w * h) == pytest.approx(90)
    assert (c[:, :2].min(0) + c[:, :2].max(0)) / 2 == pytest.approx([96, 96])
    assert c[:, 2].mean() == pytest.approx(spec.depth_span / 2)  # mid-volume = slice 100


def test_frame_composition_and_matrix():
    a = CropFrame(2.0, 1.0, -3.0, 4.0)
    b = CropFrame(0.5, 10.0, 20.0, -1.0)
    p = np.array([[3.0, 5.0, 7.0]])
    assert np.allclose(a.then(b).photo_to_crop(p), b.photo_to_crop(a.photo_to_crop(p)))
    h = a.matrix @ np.r_[p[0], 1]
    assert np.allclose(h[:3], a.photo_to_crop(p)[0])
    assert CropFrame.from_array(a.to_array()) == a


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_non_invertible_frame_is_refused(bad):
    with pytest.raises(ValueError, match="CropFrame"):
        CropFrame(bad, 0.0, 0.0)


def test_bad_points_are_refused():
    f = CropFrame.identity()
    with pytest.raises(ValueError, match=r"shape \(N, 2 or 3\)"):
        f.photo_to_crop(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        f.photo_to_crop(np.array([[np.nan, 0, 0]]))


def test_landmark_tables():
    assert len(LANDMARK_NAMES) == 68 and len(set(LANDMARK_NAMES)) == 68
    p = FLIP_PERMUTATION
    assert sorted(p) == list(range(68))
    assert np.array_equal(p[p], np.arange(68))  # a flip twice is no flip
    assert p[OUTER_EYE_CORNERS[0]] == OUTER_EYE_CORNERS[1]
    assert OUTER_EYE_CORNERS == (36, 45)
    # Points on the face's midline map to themselves: nose bridge, nose tip, chin, lip centres.
    for i in [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]:
        assert p[i] == i
    # Named groups swap with their mirror groups.
    names = np.array(LANDMARK_NAMES)
    assert all(n.startswith("left_brow") for n in names[p[17:22]])
    assert all(n.startswith("left_eye") for n in names[p[36:42]])


def test_mirrored_symmetric_landmarks_map_onto_the_permutation():
    # A left/right symmetric set: mirror each point and its partner must be the permuted point.
    rng = np.random.default_rng(0)
    lm = np.zeros((68, 2))
    for i in range(68):
        j = FLIP_PERMUTATION[i]
        if j >= i:
            x, y = rng.uniform(-50, 50), rng.uniform(-50, 50)
            lm[i] = (x, y)
            lm[j] = (-x, y) if j != i else (0, y)
    mirrored = lm * [-1, 1]
    assert np.allclose(mirrored[FLIP_PERMUTATION], lm)


def test_euler_matrix_is_a_rotation_with_documented_signs():
    rng = np.random.default_rng(3)
    for _ in range(20):
        r = euler_to_matrix(*rng.uniform(-np.pi, np.pi, 3))
        assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1)
    nose = np.array([0, 0, 1.0])
    assert (euler_to_matrix(0, 0.3, 0) @ nose)[0] > 0  # yaw turns the nose to +x
    assert (euler_to_matrix(0.3, 0, 0) @ nose)[1] > 0  # pitch turns it to +y (down)
    assert (euler_to_matrix(0, 0, 0.3) @ [1.0, 0, 0])[1] > 0  # roll turns +x toward +y


def test_mode_switch(monkeypatch):
    monkeypatch.setenv("VRNKIT_MODE", "quick")
    assert resolve_mode() == "quick"
    assert resolve_mode("full") == "full"
    monkeypatch.setenv("VRNKIT_MODE", "fast")
    with pytest.raises(ValueError, match="quick"):
        resolve_mode()


def test_volume_presets():
    assert VolumeSpec.preset("paper").shape == (200, 192, 192)
    assert VolumeSpec.preset("paper").depth_span == 100
    with pytest.raises(ValueError, match="paper"):
        VolumeSpec.preset("huge")
