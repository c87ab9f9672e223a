"""The training loop: it learns, resumes bit for bit, runs on two processes, fails clearly.

Data: a handful of simple faces written as shards by the fixture below (an ellipsoid-like
bump on a disk, posed by a random roll/yaw, its image a shaded depth map), at 32x32 crops,
with a tiny model, so the whole file runs in about a minute on two CPU cores.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from vrnkit import models, train as T
from vrnkit.checkpoint import CheckpointError, load_checkpoint
from vrnkit.config import VolumeSpec, seed_everything
from vrnkit.datasets.shards import ShardDataset, collate, write_index, write_shard
from vrnkit.voxel import Slab, slab_to_volume

S = 32  # crop size of the test data
SPEC = VolumeSpec(depth=32, height=S, width=S, depth_scale=2.0)
TINY = {"image_size": S, "depth": 32, "features": 32, "hourglass_depth": 2}


def rotation(roll: float, yaw: float) -> np.ndarray:
    cr, sr, cy, sy = math.cos(roll), math.sin(roll), math.cos(yaw), math.sin(yaw)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return rz @ ry


def make_sample(rng: np.random.Generator, spec: VolumeSpec = SPEC) -> dict:
    """A posed 'face': a bump on an elliptic disk with a nose, voxelised and shaded."""
    n = spec.width
    v, u = (np.mgrid[:n, :n] + 0.5) / n - 0.5  # canonical pixel centres, [-0.5, 0.5]
    r2 = (u / 0.3) ** 2 + (v / 0.38) ** 2
    mask = r2 < 1
    height = 0.35 * spec.depth_span
    nose = 0.25 * spec.depth_span * np.exp(-((u - 0.05) ** 2 + v**2) / 0.004)  # off-centre: no mirror symmetry
    front = np.where(mask, height * np.sqrt(np.clip(1 - r2, 0, 1)) + nose, 0).astype(np.float32)
    # canonical (u px, v px, z) -> crop: rotate about the crop centre, put the face mid-depth
    r = rotation(rng.uniform(-0.5, 0.5), rng.uniform(-0.4, 0.4)) * rng.uniform(0.9, 1.05)
    centre_c = np.array([n / 2, n / 2, height / 2])
    centre_crop = np.array([n / 2, n / 2, spec.depth_span / 2]) + [*rng.uniform(-2, 2, 2), 0]
    affine = np.concatenate([r, (centre_crop - r @ centre_c)[:, None]], 1).astype(np.float32)
    slab = Slab(front=front, mask=mask, back=0.0, affine=affine)
    vol = slab_to_volume(slab, spec)
    filled = vol.any(0)
    depth = np.where(filled, (spec.depth - np.argmax(vol[::-1], 0)) / spec.depth, 0)
    gy, gx = np.gradient(depth)
    image = np.stack([depth, np.clip(0.5 + 4 * gx, 0, 1) * filled, np.clip(0.5 + 4 * gy, 0, 1) * filled], -1)
    # landmarks: 68 points on the face, eye corners (36, 45) left and right of the centre
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    lu, lv = 0.2 * np.cos(angles), 0.25 * np.sin(angles)
    lu[36], lv[36], lu[45], lv[45] = -0.18, -0.08, 0.18, -0.08
    iu, iv = ((lu + 0.5) * n).astype(int), ((lv + 0.5) * n).astype(int)
    canon = np.stack([(lu + 0.5) * n, (lv + 0.5) * n, front[iv, iu]], 1)
    landmarks = canon @ affine[:, :3].T + affine[:, 3]
    return dict(image=(image * 255).astype(np.uint8), landmarks=landmarks.astype(np.float32), front=front,
                mask=mask, back=np.float32(0), affine=affine, frame=np.array([1.0, 0, 0, 0]))


def write_dataset(root, n: int, *, seed: int = 0, shard_size: int = 4, split: str = "train", repeat: int = 1) -> str:
    rng = np.random.default_rng(seed)
    samples = [make_sample(rng) for _ in range(n)] * repeat
    n = len(samples)
    for k in range(0, n, shard_size):
        chunk = samples[k:k + shard_size]
        write_shard(root, k // shard_size, chunk, [dict(id=f"{split}{k + i}", split=split) for i in range(len(chunk))])
    write_index(root)
    return str(root)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("train-data"), 16)


@pytest.fixture(scope="module")
def val_data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("val-data"), 4, seed=1, split="test")


def tiny(data, out, **kw) -> T.TrainConfig:
    base = T.TrainConfig(model_preset="cpu", model_options=dict(TINY), data=data, out=str(out), batch_size=4,
                         epochs=1, lr=1e-3, lr_final=1e-4, progress=False, max_val_samples=4, val_holdout=0,
                         checkpoint_every=2)
    return replace(base, **kw)


def weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------

def test_overfits_a_handful_of_samples(tmp_path):
    """No augmentation, 4 faces (each 10 times in the folder, so an epoch is 10 steps): the tiny
    VRN reaches IoU >= 0.9 on them (0.92 here) in 400 steps (~12 s on two idle cores)."""
    data = write_dataset(tmp_path / "four", 4, repeat=10, shard_size=8)
    cfg = tiny(data, tmp_path / "run", steps=400, lr=5e-3, lr_final=5e-4, lr_drop=0.7, augment=False, val=data,
               max_val_samples=4, checkpoint_every=1000)
    result = T.train(cfg)
    assert result["val"]["val_iou"] >= 0.9, result["val"]
    assert result["val"]["val_nme"] < 0.05
    df = pd.read_csv(tmp_path / "run" / "metrics.csv")
    steps = df[df.kind == "step"]
    assert list(steps.step) == list(range(1, 401)) and len(df[df.kind == "epoch"]) == 40
    assert steps.loss.iloc[-10:].mean() < 0.2 * steps.loss.iloc[:3].mean()
    assert {"images_per_s", "lr", "volume_loss", "heatmap_loss", "val_iou", "val_nme"} <= set(df.columns)
    model, config, _ = load_checkpoint(tmp_path / "run" / "model.pt")
    assert config.features == 32 and config.image_size == S


@pytest.mark.parametrize("kind", ["vrn", "guided"])
def test_resume_after_a_kill_is_bit_exact(data, val_data, tmp_path, kind):
    """Killed during step 5 (last checkpoint at step 4), resumed: same weights as one whole run.

    Augmentation on, two epochs (the kill is in the second), so the data position, the
    augmentation generator, the optimiser and the schedule must all come back exactly.
    """
    kw = dict(model=kind, epochs=2, checkpoint_every=2, val=val_data, lr_drop=0.5,
              model_options=dict(TINY, features=16))
    whole = T.train(tiny(data, tmp_path / "whole", **kw))

    class Killed(Exception):
        pass

    def kill(step):
        if step == 7:
            raise Killed

    with pytest.raises(Killed):
        T.train(tiny(data, tmp_path / "killed", **kw), on_step=kill)
    extra = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)["extra"]
    assert (extra["step"], extra["epoch"], extra["position"]) == (6, 1, 2)
    resumed = T.train(tiny(data, tmp_path / "killed", **kw))
    a, b = weights(whole["model"]), weights(resumed["model"])
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    again = T.train(tiny(data, tmp_path / "killed", **kw))  # a finished run: nothing left to do
    assert again["step"] == 8 and again["val"] == resumed["val"]
    assert all(torch.equal(v, b[k]) for k, v in weights(again["model"]).items())
    rows = pd.read_csv(tmp_path / "killed" / "metrics.csv")
    assert list(rows[rows.kind == "step"].step) == list(range(1, 9))  # the repeated step 7 logged once
    assert len(rows[rows.kind == "epoch"]) == 2


def test_two_processes_match_one(data, tmp_path):
    """DDP on two CPU processes (gloo), batch 2 each, equals one process accumulating 2 x 2.

    Both sides run one thread per process: RMSprop's first steps divide by tiny running averages,
    which turns float noise in near-zero gradients (from a different thread count's summation
    order) into visible weight differences. With equal threads the gradients agree exactly
    (halving is exact in floating point), so the tolerance below is not even needed.
    """
    kw = dict(model="multitask", steps=3, batch_size=2, model_options=dict(TINY, features=16), val=None,
              checkpoint_every=100)
    T.spawn(tiny(data, tmp_path / "ddp", **kw), 2, threads=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = T.train(tiny(data, tmp_path / "single", accumulate=2, **kw))
    finally:
        torch.set_num_threads(threads)
    ddp, _, extra = load_checkpoint(tmp_path / "ddp" / "model.pt")
    assert extra["step"] == 3
    p_ddp, p_one = dict(ddp.named_parameters()), dict(single["model"].named_parameters())
    for k, v in p_one.items():
        torch.testing.assert_close(p_ddp[k], v, rtol=1e-4, atol=2e-5)
    seed_everything(0)  # the initial weights: training moved them far more than the tolerance
    init = dict(models.build_model(single["model"].config).named_parameters())
    assert max((p_one[k] - v).abs().max().item() for k, v in init.items()) > 1e-3
    log = pd.read_csv(tmp_path / "ddp" / "metrics.csv")
    assert list(log.step) == [1, 2, 3] and (log.heatmap_loss > 0).all()


def test_targets_are_the_numpy_voxelisers(data):
    """make_targets (augmented, flips forced) == slab_to_volume of the same augmented affines."""
    ds = ShardDataset(data, split="train")
    batch = collate([ds[i] for i in range(6)])
    g = torch.Generator().manual_seed(3)
    params = T.draw_params(6, size=S, generator=g, config=T.AugmentConfig(flip=0.5))
    assert params.flip.any() and not params.flip.all()
    t = T.make_targets(batch, params, spec=SPEC, device="cpu", heatmaps=True, chunk=4)
    assert t["volume"].shape == (6, *SPEC.shape) and t["heatmaps"].shape == (6, 68, S // 4, S // 4)
    for i in range(6):
        slab = Slab(front=batch["front"][i].numpy(), mask=batch["mask"][i].numpy(), back=float(batch["back"][i]),
                    affine=t["affine"][i].numpy())
        ref = slab_to_volume(slab, SPEC)
        assert ref.sum() > 100
        assert np.array_equal(t["volume"][i].numpy() > 0.5, ref), i


def test_frontal_targets_and_wider_heatmaps_for_the_ablations(data):
    """--target frontal: the same solid, unrotated, same size, centred where the posed one is;
    --heatmap-sigma 2: heatmaps twice as wide around the same peaks."""
    from vrnkit.voxel import frontal_affine

    ds = ShardDataset(data, split="train")
    batch = collate([ds[i] for i in range(4)])
    posed = T.make_targets(batch, None, spec=SPEC, device="cpu", heatmaps=True)
    frontal = T.make_targets(batch, None, spec=SPEC, device="cpu", heatmaps=True, frontal=True, sigma=2.0)
    a = frontal_affine(batch["front"].float(), batch["mask"], batch["back"].float(), batch["affine"].float())
    for i in range(4):
        lin = batch["affine"][i, :, :3].double()
        scale = torch.linalg.det(lin).abs() ** (1 / 3)
        assert torch.allclose(a[i, :, :3].double(), scale * torch.eye(3, dtype=torch.float64), atol=1e-5)
        slab = Slab(front=batch["front"][i].numpy(), mask=batch["mask"][i].numpy(), back=float(batch["back"][i]),
                    affine=a[i].numpy())
        assert np.array_equal(frontal["volume"][i].numpy() > 0.5, slab_to_volume(slab, SPEC)), i
        # the same amount of face (up to voxel rounding), in about the same place
        vp, vf = posed["volume"][i], frontal["volume"][i]
        assert abs(vf.sum() / vp.sum() - 1) < 0.1
        centre = lambda v: torch.nonzero(v).double().mean(0)  # noqa: E731
        assert torch.linalg.norm(centre(vf) - centre(vp)) < 3.0
    assert torch.equal(posed["heatmaps"].flatten(2).argmax(-1), frontal["heatmaps"].flatten(2).argmax(-1))
    assert (frontal["heatmaps"] > 0.5).sum() > 2 * (posed["heatmaps"] > 0.5).sum()


def test_direct_regression_trains_on_synthfaces_with_vertices(tmp_path):
    """`vrnkit synth --vertices` stores each face's sparse mesh; a flip renumbers it consistently
    with the landmarks; `--model direct` trains on it and is scored by vrnkit.evaluate; a set
    without vertices is refused in one line."""
    from vrnkit.evaluate import evaluate
    from vrnkit.synthfaces.dataset import generate
    from vrnkit.synthfaces.model import FaceModel

    spec = VolumeSpec.preset("cpu")
    plain, with_vertices = tmp_path / "plain", tmp_path / "vertices"
    generate("synth-300wlp", plain, n=24, spec=spec, workers=1, progress=False)
    generate("synth-300wlp", with_vertices, n=24, spec=spec, workers=1, progress=False, sparse=True)
    a, b = ShardDataset(plain)[3], ShardDataset(with_vertices)[3]
    assert "sparse_vertices" not in a and b["sparse_vertices"].shape == (len(FaceModel.default().sparse_region), 3)
    assert np.array_equal(a["image"], b["image"])  # the same faces, plus their vertices

    # a flipped face is renumbered: the vertices of the subject's right side stay by the right eye's landmarks
    batch = collate([ShardDataset(with_vertices)[i] for i in range(4)])
    params = T.draw_params(4, size=64, generator=torch.Generator().manual_seed(0), config=T.AugmentConfig(flip=1.0))
    flipped = T.make_targets(batch, params, spec=spec, device="cpu", volume=False)
    assert flipped["volume"] is None and params.flip.all()
    model = FaceModel.default()
    right = torch.as_tensor(model.mean[model.sparse_region, 0] < -20)  # the subject's right cheek and eye
    for t in (T.make_targets(batch, None, spec=spec, device="cpu", volume=False), flipped):
        side = t["vertices"][:, right].mean(1)  # (B, 3): in 3D, whatever the pose
        other = t["vertices"][:, torch.as_tensor(model.mean[model.sparse_region, 0] > 20)].mean(1)
        eye = t["landmarks"][:, 36:42].mean(1)  # the subject's right eye
        assert ((eye - side).norm(dim=-1) < (eye - other).norm(dim=-1)).all()

    cfg = T.TrainConfig.preset("cpu", model="direct", data=str(plain), out=str(tmp_path / "refused"), steps=2,
                               progress=False)
    with pytest.raises(ValueError, match="--vertices"):
        T.train(cfg)
    result = T.train(replace(cfg, data=str(with_vertices), out=str(tmp_path / "direct"), steps=6, val_holdout=8))
    assert np.isfinite(result["val"]["val_nme"]) and np.isnan(result["val"]["val_iou"])
    scores = evaluate(tmp_path / "direct" / "model.pt", "synth-florence", n=2, progress=False)
    assert np.isfinite(scores.nme).all() and scores.iou.isna().all()


def test_cli_passes_the_ablation_options_to_the_model():
    from vrnkit import cli

    args = cli.build_parser().parse_args(["train", "--model", "guided", "--heatmap-sigma", "2", "--target", "frontal"])
    assert cli.train_config_from_args(args).model_options == {"heatmap_sigma": 2.0, "target": "frontal"}


# ---------------------------------------------------------------------------------------------
# Bad input

def test_no_shards_names_the_folder_and_the_fix(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for path in (empty, tmp_path / "missing"):
        with pytest.raises(FileNotFoundError) as e:
            T.train(tiny(str(path), tmp_path / "out"))
        assert str(path) in str(e.value) and "vrnkit synth" in str(e.value)


def test_resume_refuses_another_model_and_truncated_files(data, tmp_path):
    out = tmp_path / "run"
    T.train(tiny(data, out, steps=1, model_options=dict(TINY, features=16)))
    with pytest.raises(CheckpointError, match="features=16 .expected 32.*another --out"):
        T.train(tiny(data, out, steps=2))
    with pytest.raises(CheckpointError, match="guided"):
        T.train(tiny(data, out, steps=2, model="guided", model_options=dict(TINY, features=16)))
    blob = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        T.train(tiny(data, out, steps=2, model_options=dict(TINY, features=16)))


def test_out_of_memory_suggests_a_smaller_batch(data, tmp_path, monkeypatch):
    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(T, "compute_loss", oom)
    with pytest.raises(RuntimeError, match="smaller --batch-size") as e:
        T.train(tiny(data, tmp_path))
    assert isinstance(e.value.__cause__, torch.OutOfMemoryError)

    def oom_text(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate: out of memory")

    monkeypatch.setattr(T, "compute_loss", oom_text)
    with pytest.raises(RuntimeError, match="--preset"):
        T.train(tiny(data, tmp_path))


def test_wrong_crop_size_and_tiny_dataset(data, tmp_path):
    with pytest.raises(ValueError, match="32x32 px but the 'cpu' model preset expects 64x64"):
        T.train(tiny(data, tmp_path, model_options={}))
    with pytest.raises(ValueError, match="smaller --batch-size"):
        T.train(tiny(data, tmp_path, batch_size=32))


# ---------------------------------------------------------------------------------------------
# Configuration and command line

def test_presets_and_schedule():
    assert T.TrainConfig.for_mode("quick").model_preset == "cpu"
    assert T.TrainConfig.for_mode("full").model_preset == "paper"
    paper = T.TrainConfig.preset("paper")
    assert (paper.lr, paper.lr_final, paper.epochs, paper.lr_drop) == (1e-4, 1e-5, 50, 0.8)
    # 50 epochs of 100 steps: the drop comes after epoch 40, as in the paper
    assert T.learning_rate(3999, 5000, paper) == 1e-4 and T.learning_rate(4000, 5000, paper) == 1e-5
    with pytest.raises(ValueError, match="unknown training preset"):
        T.TrainConfig.preset("huge")
    cpu = torch.device("cpu")
    assert T.amp_dtype("auto", cpu) is None and T.amp_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="amp must be"):
        T.amp_dtype("fp8", cpu)


def test_rank_batches_cut_global_batches():
    class Fake(torch.utils.data.Sampler):
        def __iter__(self):
            return iter(range(10))

        def __len__(self):
            return 10

    one = list(T.RankBatches(Fake(), batch=2, accumulate=2))
    assert one == [[0, 1], [2, 3], [4, 5], [6, 7]]  # the last incomplete global batch is dropped
    ranks = [list(T.RankBatches(Fake(), batch=2, rank=r, world=2)) for r in range(2)]
    assert ranks == [[[0, 1], [4, 5]], [[2, 3], [6, 7]]]


def test_cli_builds_the_config(tmp_path):
    from vrnkit import cli

    args = cli.build_parser().parse_args(["train", "--model", "guided", "--preset", "colab", "--data", "d", "--out", "o",
                                          "--epochs", "3", "--batch-size", "2", "--no-augment"])
    assert args.func is cli.cmd_train
    cfg = cli.train_config_from_args(args)
    assert (cfg.model, cfg.model_preset, cfg.data, cfg.out, cfg.epochs, cfg.batch_size, cfg.augment) == \
        ("guided", "colab", "d", "o", 3, 2, False)
    assert cfg.lr == 1e-4  # untouched fields come from the preset


def test_validation_data_choices(data, val_data, tmp_path):
    """A val folder; else the data folder's val split; else samples held out of the data folder."""
    cfg = tiny(data, tmp_path, val=val_data)
    train_set, val_set = T.open_datasets(cfg, S)
    assert (len(train_set), len(val_set)) == (16, 4)  # the folder's "test" split: no "val", so all of it
    train_set, val_set = T.open_datasets(tiny(data, tmp_path, val_holdout=5), S)
    assert (len(train_set), len(val_set)) == (11, 5)
    assert set(train_set.index["id"]).isdisjoint(val_set.index["id"])
    assert T.open_datasets(tiny(data, tmp_path, val_holdout=0), S)[1] is None
    both = write_dataset(tmp_path / "both", 8)
    rows = [dict(id="v0", split="val"), dict(id="v1", split="val")]
    write_shard(both, 2, [make_sample(np.random.default_rng(5))] * 2, rows)
    write_index(both)
    train_set, val_set = T.open_datasets(tiny(both, tmp_path), S)
    assert (len(train_set), list(val_set.index["id"])) == (8, ["v0", "v1"])


def test_time_limit_ends_the_run_and_drops_the_lr_by_time(data, val_data, tmp_path):
    """--time-limit: the run stops at the time (not after its epochs), validates, writes
    model.pt carrying its volume spec, and the lr drop follows the elapsed time."""
    cfg = tiny(data, tmp_path / "timed", epochs=10_000, time_limit=10.0, val=val_data)
    t = __import__("time").perf_counter()
    result = T.train(cfg)
    took = __import__("time").perf_counter() - t
    assert 1 < result["step"] < 10_000 * 4 and took < 60
    df = pd.read_csv(tmp_path / "timed" / "metrics.csv")
    steps = df[df.kind == "step"]
    assert steps.time_s.iloc[-2] < 10.0 and len(df[df.kind == "epoch"]) >= 1
    assert set(steps.lr) <= {1e-3, 1e-4}
    _, _, extra = load_checkpoint(tmp_path / "timed" / "model.pt")
    assert extra["volume"]["depth_scale"] == 2.0 and extra["volume"]["height"] == S
    assert extra["train_config"]["time_limit"] == 10.0
    assert T.learning_rate(0, 10, cfg, elapsed=7.9) == 1e-3 and T.learning_rate(0, 10, cfg, elapsed=8.1) == 1e-4


def test_guide_jitter_moves_landmarks_by_the_asked_nme():
    """Jittered guiding landmarks are off by the asked NME on average (a detector's error)."""
    torch.manual_seed(0)
    lm = torch.rand(64, 68, 3) * torch.tensor([80.0, 100.0, 30.0]) + 40
    noisy = T.jitter_landmarks(lm, 0.045)
    size = ((lm[..., :2].amax(1) - lm[..., :2].amin(1)).prod(-1)).sqrt()
    err = ((noisy - lm)[..., :2].norm(dim=-1).mean(1) / size).mean()
    assert abs(float(err) - 0.045) < 0.003 and torch.equal(noisy[..., 2], lm[..., 2])


def test_the_gpu_training_script_runs_tiny_on_the_cpu(tmp_path):
    """benchmarks/gpu_train_192.py (what made the shipped 192 models) in its CPU smoke-test form:
    data, both models side by side, fp16 export, summary."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_train_192.py"
    r = subprocess.run([sys.executable, str(script), "--tiny", "--seconds", "6", "--n", "96", "--out",
                        str(tmp_path / "run"), "--export", str(tmp_path / "export")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    summary = pd.read_csv(tmp_path / "export" / "summary.csv")
    assert list(summary.model) == ["vrn-192", "vrn-guided-192"] and set(summary.status) == {"ok"}
    for name in ("vrn-192", "vrn-guided-192"):
        model, config, extra = load_checkpoint(tmp_path / "export" / f"{name}.pt")
        assert config.image_size == 64 and extra["step"] > 0 and extra["volume"]["depth"] == 64
