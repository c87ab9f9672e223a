"""The shipped model works, and the main job (vrnkit demo) writes what the README promises."""
import numpy as np
import pytest
import trimesh

from vrnkit import pretrained
from vrnkit.checkpoint import volume_spec_of
from vrnkit.config import VolumeSpec
from vrnkit.metrics import volume_iou
from vrnkit.reconstruct import predict_volume
from vrnkit.synthfaces.dataset import make_sample
from vrnkit.voxel import Slab, slab_to_volume


def test_shipped_model_reconstructs_held_out_faces():
    model, config, _ = pretrained.load_pretrained()
    spec = volume_spec_of(config)
    assert spec == VolumeSpec.preset("cpu")
    samples = [make_sample("synth-florence", i, spec=spec)[0] for i in range(0, 30, 5)]
    probs = predict_volume(model, np.stack([s["image"] for s in samples]))
    assert probs.shape == (len(samples),) + spec.shape and probs.min() >= 0 and probs.max() <= 1
    targets = np.stack([slab_to_volume(Slab(s["front"], s["mask"], s["back"], s["affine"]), spec) for s in samples])
    iou = volume_iou(probs, targets)
    # Its validation table says 0.845 on synth-florence; a broken model or loader gives < 0.3.
    assert iou.mean() > 0.7, iou


def test_predict_volume_refuses_a_wrong_crop():
    model, _, _ = pretrained.load_pretrained()
    with pytest.raises(ValueError, match="64x64"):
        predict_volume(model, np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown pretrained"):
        pretrained.load_pretrained("vrn-huge")


def test_demo_writes_coloured_meshes_and_a_picture(tmp_path):
    from vrnkit.demo import run_demo

    result = run_demo(tmp_path)
    assert result["iou"] > 0.6 and result["nme"] < 0.2
    for ext in ("obj", "ply", "glb"):
        mesh = trimesh.load(result["paths"][ext], force="mesh", process=False)
        assert len(mesh.vertices) == result["vertices"] and mesh.volume > 0
    colours = trimesh.load(result["paths"]["ply"], process=False).visual.vertex_colors
    assert np.ptp(colours[:, :3]) > 20  # sampled from the photo, not a flat default
    assert result["paths"]["picture"].stat().st_size > 10_000


def test_export_ships_a_run_with_curve_and_table(tmp_path, monkeypatch):
    from vrnkit.synthfaces.dataset import generate
    from vrnkit.train import TrainConfig, train

    data = tmp_path / "data"
    generate("synth-300wlp", data, n=16, spec=VolumeSpec.preset("cpu"), shard_size=8, workers=1, progress=False)
    test = tmp_path / "test"
    generate("synth-florence", test, n=4, spec=VolumeSpec.preset("cpu"), workers=1, progress=False)
    run = tmp_path / "run"
    train(TrainConfig(data=str(data), out=str(run), steps=4, batch_size=4, val_holdout=4, progress=False,
                      model_options=dict(features=16, hourglass_depth=2)))
    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path / "weights")
    out = pretrained.export(run, "tiny", eval_dirs=[test], n=4)
    for name in ("tiny.pt", "tiny-curve.png", "tiny-validation.csv", "tiny-validation.md"):
        assert (tmp_path / "weights" / name).is_file()
    assert list(out["table"]["samples"]) == [4]


@pytest.mark.parametrize("name, bound", [("vrn-192", 0.75), ("vrn-guided-192", 0.75)])
def test_full_resolution_models_are_small_and_reconstruct_held_out_faces(name, bound):
    """The paper-size models: fp16 files <= 10 MB, and on held-out faces an IoU that a broken
    model or loader cannot reach. They were trained on SynthFaces generator version 1 (their
    tables: 0.85-0.91 on 48 faces per set); on these three version-4 faces they score 0.81 and
    0.81, and the guided one given its landmarks with x and y swapped 0.27-0.44."""
    path = pretrained.WEIGHTS / pretrained.PRETRAINED[name]
    assert path.stat().st_size <= 10e6
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    model, config, extra = pretrained.load_pretrained(name)
    spec = volume_spec_of(config, extra)
    assert spec == VolumeSpec.preset("paper")
    samples = [make_sample("synth-florence", i, spec=spec)[0] for i in (0, 7, 14)]
    probs = predict_volume(model, np.stack([s["image"] for s in samples]),
                                      landmarks=np.stack([s["landmarks"] for s in samples]))
    targets = np.stack([slab_to_volume(Slab(s["front"], s["mask"], s["back"], s["affine"]), spec) for s in samples])
    iou = volume_iou(probs, targets)
    assert iou.mean() > bound, iou
