"""Evaluation: the landmark fits recover known faces, every method meets the same faces, failures
are counted, tables and curves add up, `vrnkit evaluate` writes its report."""
import numpy as np
import pandas as pd
import pytest

from vrnkit import evaluate as E
from vrnkit import fitting
from vrnkit.synthfaces.model import EXPRESSIONS, FaceModel
from vrnkit.geometry import euler_to_matrix
from vrnkit.metrics import nme


def posed_face(rng, yaw=30.0):
    model = FaceModel.default()
    ident = model.sample_identity(rng)
    expr = np.asarray(EXPRESSIONS["happiness"], np.float32) * 0.8
    R = euler_to_matrix(np.radians(8), np.radians(yaw), np.radians(-5))
    v = 0.8 * model.vertices(ident, expr).astype(np.float64) @ R.T + [96, 100, 0]
    return model, v, R, ident


def test_fit_pose_recovers_a_known_scaled_rotation():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 30, (68, 3))
    R = euler_to_matrix(0.2, -0.7, 0.1)
    x = 1.7 * (X @ R.T)[:, :2] + [50, 60]
    s, R_fit, t = fitting.fit_pose(X, x)
    assert abs(s - 1.7) < 1e-9 and np.allclose(R_fit, R, atol=1e-9) and np.allclose(t, [50, 60])
    assert np.isclose(np.linalg.det(R_fit), 1.0)


def test_the_linear_fit_recovers_a_model_face_and_beats_the_mean_face():
    model, v, R, ident = posed_face(np.random.default_rng(1))
    lm = v[model.landmarks]
    fit = fitting.fit_landmarks(lm[:, :2])
    mean = fitting.fit_landmarks(lm[:, :2], shape=False)
    region = model.face_region
    assert fit.rms < 0.5 and mean.rms > 1.0  # pixels
    assert np.allclose(fit.rotation, R, atol=0.05)
    good, floor = nme(v[region], fit.vertices[region], lm), nme(v[region], mean.vertices[region], lm)
    assert good < 0.02 and good < 0.6 * floor, (good, floor)
    with pytest.raises(ValueError, match="68 finite"):
        fitting.fit_landmarks(lm[:67, :2])


def test_noise_has_the_asked_error():
    lm = np.random.default_rng(2).uniform(0, 100, (68, 2))
    size = np.sqrt(np.prod(lm.max(0) - lm.min(0)))
    errs = [np.linalg.norm(E.noisy_landmarks(lm, 0.05, np.random.default_rng(k)) - lm, axis=1).mean() / size
            for k in range(200)]
    assert abs(np.mean(errs) - 0.05) < 0.002


def test_failures_count_in_the_table_and_the_auc():
    scores = pd.DataFrame(dict(method=["a"] * 4 + ["b"] * 4, dataset="p", yaw=0.0,
                               nme=[0.02, 0.04, 0.06, np.inf, 0.0, 0.0, 0.2, 0.2]))
    tab = E.table(scores)
    assert tab.loc["a", "p failed"] == 1 and np.isclose(tab.loc["a", "p NME"], 0.04)
    # a: 3 of 4 faces under 0.1, at 0.02, 0.04, 0.06 -> area (0.08 + 0.06 + 0.04) / 4 / 0.1 = 0.45
    assert np.isclose(tab.loc["a", "p AUC@0.1"], 0.45, atol=0.01)
    assert np.isclose(tab.loc["b", "p AUC@0.1"], 0.5, atol=0.01)
    assert "| a |" in E.markdown(tab)


def test_compare_scores_every_method_on_the_same_faces():
    scores = E.compare(["mean-face", "linear-fit", "vrn-cpu", "voxelised-gt"], ["synth-florence"], n=2,
                       progress=False)
    assert len(scores) == 8 and scores.groupby("id").method.nunique().eq(4).all()
    assert np.isfinite(scores.nme).all() and (scores.nme < 0.3).all()
    assert (scores.rigid_nme <= scores.nme + 1e-9).all()  # rigid alignment can only help
    by = scores.set_index("method")
    assert (by.loc["voxelised-gt", "iou"] == 1.0).all()  # the true solid, voxelised: the same volume
    assert by.loc["vrn-cpu", "iou"].between(0.5, 1).all() and np.isnan(by.loc["mean-face", "iou"]).all()
    assert np.isnan(by.loc["vrn-cpu", "landmark_nme"]).all()  # VRN has no landmarks of its own
    assert (by.loc["linear-fit", "landmark_nme"] < 0.02).all()  # the fit goes through the given landmarks


def test_indices_pick_the_faces_of_a_protocol_and_of_a_folder(tmp_path):
    """synth-bu4dfe's first faces are all one expression; indices walk its grid through all six."""
    from vrnkit.config import VolumeSpec
    from vrnkit.synthfaces.dataset import generate

    walk = range(10, 2520, 22)
    scores = E.evaluate("mean-face", "synth-bu4dfe", n=6, indices=walk, progress=False)
    assert list(scores.id) == [f"synth-bu4dfe-{i:07d}" for i in walk[:6]]
    assert scores.expression.nunique() == 6 and np.isfinite(scores.nme).all()
    folder = tmp_path / "set"
    generate("synth-florence", folder, n=6, spec=VolumeSpec.preset("cpu"), workers=1)
    ids = [m["id"] for _, m in E.faces_of(folder, spec=None, n=2, indices=[4, 1, 99])]
    assert ids == ["synth-florence-0000004", "synth-florence-0000001"]  # in the order asked, the first n


def test_the_landmark_fit_beats_the_mean_face_on_faces_with_expressions():
    scores = E.compare(["mean-face", "linear-fit"], ["synth-bu4dfe"], n=6, progress=False)
    assert (scores.expression != "neutral").any()
    mean = scores.groupby("method").nme.mean()
    assert mean["linear-fit"] < 0.8 * mean["mean-face"], mean


def test_noisy_landmarks_are_the_same_for_every_method_on_a_face():
    noisy = E.compare(["mean-face", "linear-fit"], ["synth-florence"], n=2, landmark_noise=0.05, progress=False)
    exact = E.compare(["mean-face"], ["synth-florence"], n=2, progress=False)
    by = noisy.set_index("method")
    # the mean face's own landmarks are its fit to the noisy ones: further from the truth than with exact ones
    assert (by.loc["mean-face", "landmark_nme"].to_numpy() > exact.landmark_nme.to_numpy()).all()
    again = E.compare(["mean-face"], ["synth-florence"], n=2, landmark_noise=0.05, progress=False)
    assert np.allclose(again.nme, by.loc["mean-face", "nme"])  # the same noise: reproducible


def test_by_group_and_report(tmp_path):
    scores = pd.DataFrame(dict(method=["a"] * 4, dataset="p", yaw=[10.0, -20.0, 45.0, 80.0],
                               expression=["neutral", "happiness", "neutral", "happiness"],
                               nme=[0.02, 0.04, np.inf, 0.08], rigid_nme=0.01, landmark_error=0.02, iou=np.nan,
                               landmark_nme=np.nan, seconds=0.1))
    yaw = E.by_group(scores, "yaw")
    assert np.isclose(yaw.loc["a", "0-30"], 0.03) and np.isnan(yaw.loc["a", "30-60"])  # the failure is left out
    assert np.isclose(E.by_group(scores, "expression").loc["a", "happiness"], 0.06)
    paths = E.report(scores, tmp_path / "r", title="t")
    md = paths["md"].read_text()
    assert "## Table 1" in md and "## NME by |yaw|" in md and "## NME per expression" in md
    from PIL import Image

    assert Image.open(paths["png"]).size[0] > 600
    assert len(pd.read_csv(paths["csv"])) == 4


def test_vrnkit_evaluate_writes_the_report_and_refuses_bad_input(tmp_path, capsys):
    from vrnkit.cli import main

    out = tmp_path / "eval"
    assert main(["evaluate", "--methods", "mean-face", "linear-fit", "--data", "synth-florence", "--n", "2",
                 "--out", str(out), "--no-progress"]) == 0
    assert {"scores.csv", "report.md", "report.png"} <= {p.name for p in out.iterdir()}
    assert "| linear-fit |" in capsys.readouterr().out
    assert main(["evaluate", "--methods", "nope", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown method 'nope'" in err[0]
    assert main(["evaluate", "--data", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "no test set" in capsys.readouterr().err


def test_a_model_is_evaluated_on_aflw2000_3d_shards(tmp_path):
    """Shards converted from AFLW2000-3D (made with the 3DDFA face model, not SynthFaces') are scored
    against their own face region, which the shards store: evaluation never indexes them with
    SynthFaces' face region (which cannot work: the meshes have other vertices)."""
    from test_datasets_real import make_aflw2000_fixture

    from vrnkit.datasets.morphable import load_morphable_model
    from vrnkit.datasets.real import prepare
    from vrnkit.datasets.shards import ShardDataset
    from vrnkit.pretrained import load_pretrained

    root, model_dir = make_aflw2000_fixture(tmp_path, n=4)
    out = tmp_path / "aflw-shards"
    prepare("aflw2000", root, out, model=model_dir, preset="cpu", workers=1, progress=False)
    region = load_morphable_model(model_dir).face_region
    shards = ShardDataset(out)
    assert shards[0]["vertices"].shape == (len(region), 3)
    assert len(region) != len(FaceModel.default().face_region)  # another face model
    net, _, _ = load_pretrained("vrn-cpu")
    df = E.evaluate(net, out, n=4, progress=False)
    assert len(df) == 4 and set(df["id"]) == set(shards.index["id"])
    assert df["iou"].between(0, 1).all()
    scored = df["nme"].dropna()
    assert len(scored) >= 1 and np.isfinite(scored).all() and (scored > 0).all()


def test_an_empty_prediction_is_a_counted_failure_not_a_crash(tmp_path):
    """A network that predicts no voxel inside gets NME inf for every face (evaluate) and a
    'failed' count in its validation table, never an exception or a NaN that hides it."""
    import torch

    from vrnkit.config import VolumeSpec
    from vrnkit.models import ModelConfig, build_model
    from vrnkit.synthfaces.dataset import generate

    test = tmp_path / "test"
    generate("synth-florence", test, n=3, spec=VolumeSpec.preset("cpu"), workers=1, progress=False)
    net = build_model(ModelConfig.preset("cpu")).eval()
    with torch.no_grad():
        net.head.conv.bias.fill_(-50.0)  # the volume head's bias far negative: every voxel outside
    df = E.evaluate(net, test, n=3, progress=False)
    assert len(df) == 3 and np.isinf(df["nme"]).all() and (df["iou"] == 0).all()
