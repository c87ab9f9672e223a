"""`vrnkit train` with bad input, and logs that stay consistent after any stop.

Bad numbers fail before any work with one line that gives the allowed range; OS errors, out of
memory and Ctrl-C end in one line; metrics.csv holds each step once whatever stopped the run,
and temporary files of a killed run are removed by the next one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from test_errors_cli import expect_failure, one_thread, run, snapshot  # noqa: F401  (a fixture)
from test_train import TINY, make_sample, tiny, write_dataset
from vrnkit import files, train as T
from vrnkit.config import VolumeSpec
from vrnkit.datasets.shards import write_index, write_shard

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """16 tiny 32x32 faces (the tests' own model sizes; the CLI's cpu preset expects 64x64)."""
    return write_dataset(tmp_path_factory.mktemp("train-data"), 16)


@pytest.fixture(scope="module")
def data64(tmp_path_factory):
    """4 faces at the cpu preset's 64x64, for runs through the command line."""
    root = tmp_path_factory.mktemp("data64")
    rng = np.random.default_rng(0)
    spec = VolumeSpec.preset("cpu")
    rows = [dict(id=f"f{i}", split="train") for i in range(4)]
    write_shard(root, 0, [make_sample(rng, spec) for _ in range(4)], rows)
    write_index(root)
    return root


def argv(data, out, *extra):
    return ["train", "--preset", "cpu", "--data", data, "--out", out, "--steps", "1", "--batch-size", "2",
            "--num-workers", "0", "--no-progress", *extra]


CASES = [
    (["--batch-size", "0"], ["--batch-size", "[1, 65536]", "got 0"]),
    (["--batch-size", "-1"], ["--batch-size", "got -1"]),  # used to loop for ever on a one-sample set
    (["--accumulate", "0"], ["--accumulate", "[1, 65536]"]),
    (["--checkpoint-every", "0"], ["--checkpoint-every", ">= 1"]),
    (["--epochs", "0"], ["--epochs", "[1, 1000000]"]),  # used to write an untrained model.pt
    (["--epochs", "-3"], ["--epochs", "got -3"]),
    (["--steps", "0"], ["--steps", "got 0"]),  # used to train for the epochs instead
    (["--steps", "-5"], ["--steps", "got -5"]),
    (["--time-limit", "0"], ["--time-limit", "(0, 10000000]"]),
    (["--time-limit", "-1"], ["--time-limit", "got -1.0"]),
    (["--time-limit", "nan"], ["--time-limit", "got nan"]),
    (["--time-limit", "inf"], ["--time-limit", "got inf"]),
    (["--lr", "0"], ["--lr", "(0, 1]"]),
    (["--lr", "-0.001"], ["--lr", "got -0.001"]),
    (["--lr", "nan"], ["--lr", "got nan"]),
    (["--lr", "5"], ["--lr", "got 5.0"]),
    (["--guide-jitter", "-0.1"], ["--guide-jitter", "[0, 1]"]),
    (["--guide-jitter", "2"], ["--guide-jitter", "got 2.0"]),
    (["--guide-jitter", "nan"], ["--guide-jitter"]),
    (["--num-workers", "-1"], ["--num-workers", "[0, 256]"]),
    (["--seed", "-1"], ["--seed", "[0, 4294967295]"]),
    (["--device", "bogus"], ["--device", "'bogus' is not a device", "cpu"]),
    (["--device", "cuda:7"], ["--device", "'cuda:7'"]),
    (["--data", "{tmp}/missing"], ["no dataset folder", "missing", "vrnkit synth"]),
    (["--data", "{tmp}/empty"], ["no dataset in", "empty", "vrnkit synth"]),
    (["--data", "{tmp}/garbled"], ["garbled/index.csv is not a vrnkit index table", "ParserError"]),
    (["--data", "{tmp}/other-table"], ["other-table/index.csv is not a vrnkit index table", "no shard, row"]),
    (["--val", "{tmp}/missing"], ["no dataset folder", "missing"]),
    (["--out", "{tmp}/a-file"], ["--out", "a-file", "is a file, not a folder"]),
    (["--init-from", "{tmp}/missing.pt"], ["missing.pt", "does not exist"]),
    (["--data", "{data}"], ["32x32 px but the 'cpu' model preset expects 64x64"]),
    (["--batch-size", "32"], ["fewer than one global batch", "smaller --batch-size"]),
]


@pytest.mark.parametrize("extra, words", CASES, ids=[" ".join(e) for e, _ in CASES])
def test_bad_options_fail_before_any_work(data, data64, tmp_path, capsys, extra, words):
    (tmp_path / "a-file").write_text("not a folder")
    for name, index in (("empty", None), ("garbled", 'a\n"unclosed\n'), ("other-table", "a,b\n1,2\n")):
        (tmp_path / name).mkdir()
        if index:
            (tmp_path / name / "index.csv").write_text(index)
    extra = [e.format(tmp=tmp_path, data=data) for e in extra]
    before = snapshot(tmp_path, data64)
    rc, _, err = run(argv(data64, tmp_path / "out", *extra), capsys)
    expect_failure(rc, err, words, before)
    assert not (tmp_path / "out" / "model.pt").exists()


@pytest.mark.parametrize("extra, words", [
    (["--batch-size", "abc"], ["--batch-size", "invalid int value"]),
    (["--model", "resnet"], ["--model", "invalid choice"]),
    (["--preset", "huge"], ["--preset", "invalid choice"]),
    (["--amp", "fp8"], ["--amp", "invalid choice"]),
])
def test_unparsable_options_give_the_usage(data64, tmp_path, capsys, extra, words):
    rc, _, err = run(argv(data64, tmp_path / "out", *extra), capsys)
    expect_failure(rc, err, words, usage=True)


@pytest.mark.parametrize("kw, words", [
    (dict(model_options={"feature": 8}), "unknown fields .'feature'."),
    (dict(amp="fp8"), "amp must be"),
    (dict(lr_drop=2.0), "lr_drop must be a number in .0, 1."),
    (dict(log_every=0), "log_every"),
    (dict(max_val_samples=0), "max_val_samples"),
    (dict(val_holdout=-1), "val_holdout"),
    (dict(batch_size=2.5), "batch_size .--batch-size. must be a positive whole number"),
    (dict(batch_size=True), "got True"),
    (dict(model="resnet"), "model .--model. must be one of"),
    (dict(model_preset="huge"), "huge"),
])
def test_train_config_is_checked(data, tmp_path, kw, words):
    with pytest.raises(ValueError, match=words):
        T.train(tiny(data, tmp_path / "run", **kw))
    assert not (tmp_path / "run").exists()


def test_data_made_for_another_preset_is_refused_before_training(tmp_path, capsys):
    """A run takes its volume spec from its dataset's manifest: cpu-preset SynthFaces (64 px crops,
    64 slices) cannot train the colab network (192 px, 200 slices), and the error says so."""
    from vrnkit.synthfaces.dataset import generate
    from vrnkit.train import data_volume_spec
    from vrnkit.models import ModelConfig

    data = tmp_path / "cpu-faces"
    generate("synth-300wlp", data, n=2, spec=VolumeSpec.preset("cpu"), workers=1, progress=False)
    assert data_volume_spec(data, ModelConfig.preset("cpu")) == VolumeSpec.preset("cpu")
    rc, _, err = run(["train", "--preset", "colab", "--data", data, "--out", tmp_path / "out", "--steps", "1",
                      "--no-progress"], capsys)
    expect_failure(rc, err, ["64x64 crops with 64-slice volumes", "192x192 -> 200 slices", "--preset"])
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# Stops through the command line: out of memory, Ctrl-C, a full disk

def raising(error):
    def compute_loss(*a, **k):
        raise error

    return compute_loss


@pytest.mark.parametrize("error, status, words", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB"), 2,
     ["out of memory in a training step", "smaller --batch-size"]),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: out of memory"), 2, ["smaller --batch-size"]),
    (MemoryError(), 2, ["out of memory", "smaller"]),
    (KeyboardInterrupt(), 130, ["vrnkit train: interrupted; run the same command again to resume"]),
])
def test_out_of_memory_and_ctrl_c_are_one_line(data64, tmp_path, capsys, monkeypatch, error, status, words):
    monkeypatch.setattr(T, "compute_loss", raising(error))
    rc, _, err = run(argv(data64, tmp_path / "out"), capsys)
    expect_failure(rc, err, words, status=status)


def test_a_full_disk_names_the_checkpoint(data64, tmp_path, capsys, monkeypatch):
    real = torch.save

    def save(obj, f, *a, **k):  # torch.save reports a full disk as an obscure RuntimeError
        if isinstance(f, str):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: type("Usage", (), {"free": 0})())
    rc, _, err = run(argv(data64, tmp_path / "out"), capsys)
    expect_failure(rc, err, ["the disk is full", "last.pt", "free some space"])
    assert not list((tmp_path / "out").glob(".*.tmp"))


# ---------------------------------------------------------------------------------------------
# metrics.csv and temporary files after a stop

class Stop(Exception):
    pass


def stop_at(n):
    def on_step(step):
        if step == n:
            raise Stop

    return on_step


def logged_steps(out) -> list:
    rows = pd.read_csv(out / "metrics.csv")
    return list(rows[rows.kind == "step"].step)


@pytest.mark.parametrize("stop, checkpoint_every", [(2, 100), (3, 2)], ids=["before-first-checkpoint", "after-one"])
def test_each_step_is_logged_once_after_a_stop(data, tmp_path, stop, checkpoint_every):
    """Killed before the first checkpoint, a run starts afresh and must not keep the old rows;
    killed later, it resumes and drops the rows after its checkpoint. A half-written last row
    and the temporary files of a killed write are cleaned up too."""
    out = tmp_path / "run"
    cfg = tiny(data, out, steps=4, checkpoint_every=checkpoint_every, model_options=dict(TINY, features=16))
    with pytest.raises(Stop):
        T.train(cfg, on_step=stop_at(stop))
    assert logged_steps(out) == list(range(1, stop + 1))
    with open(out / "metrics.csv", "a") as f:
        f.write("step,9,0,0.5")  # killed while writing a row
    for name in ("last.pt", "model.pt", "metrics.csv"):
        (out / f".{name}.k1ll3d.tmp").write_bytes(b"half written")
    T.train(cfg)
    assert logged_steps(out) == [1, 2, 3, 4]
    assert not list(out.glob(".*.tmp"))


def test_a_diverging_loss_stops_the_run_with_the_fix(data, tmp_path, monkeypatch):
    real = T.compute_loss

    def nan_loss(*a, **k):
        loss, parts = real(*a, **k)
        return loss * float("nan"), parts

    monkeypatch.setattr(T, "compute_loss", nan_loss)
    with pytest.raises(ValueError, match=r"loss became nan at step 1 .*diverged.*smaller --lr"):
        T.train(tiny(data, tmp_path / "run", steps=3))
    assert not (tmp_path / "run" / "model.pt").exists()


def test_a_file_in_place_of_the_run_folder(data, tmp_path):
    (tmp_path / "run").write_text("a file")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        T.train(tiny(data, tmp_path / "run"))
    assert (tmp_path / "run").read_text() == "a file"
