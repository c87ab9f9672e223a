"""kill -9 (and Ctrl-C) at a few moments of `vrnkit synth` and of a training run, then the same
command again: the data is byte for byte what one whole run writes, each sample id is there
once, and metrics.csv holds each step once. Ctrl-C ends in one line, status 130.

The killed commands run in a subprocess (its own process group, so that pool workers die with
it); they are slowed down a little (a sleep per sample or a pause at one step) so that each
moment is hit every time, whatever the machine's speed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from test_errors_cli import one_thread, run, snapshot  # noqa: F401  (a fixture)
from test_train import TINY, tiny, write_dataset
from vrnkit.synthfaces import dataset as synth
from vrnkit import train as T
from vrnkit.config import VolumeSpec
from vrnkit.datasets.shards import list_shards, read_index

TESTS = Path(__file__).resolve().parent
pytestmark = pytest.mark.usefixtures("one_thread")
SYNTH = ["synth", "--preset", "cpu", "--n", "12", "--shard-size", "2", "--seed", "0", "--workers", "2",
         "--no-progress"]
# `vrnkit synth` with 0.2 s more per sample (the workers are forked, so they inherit the patch)
SLOW_SYNTH = ("import sys, time, vrnkit.synthfaces.dataset as s; from vrnkit.cli import main; real = s.make_sample; "
              "s.make_sample = lambda *a, **k: (time.sleep(0.2), real(*a, **k))[1]; sys.exit(main(sys.argv[1:]))")
# a tiny training run (as `vrnkit train` runs it) that pauses at step STOP, for the test to stop it there
PAUSING_TRAIN = ("import sys, time, torch; torch.set_num_threads(1); sys.path.insert(0, {tests!r}); "
                 "from test_errors_kill import train_config; "
                 "from vrnkit import train as T; from vrnkit.cli import run_command; "
                 "data, out, stop, marker = sys.argv[1:]; "
                 "pause = lambda step: step == int(stop) and (open(marker, 'w').close(), time.sleep(600)); "
                 "sys.exit(run_command(lambda a: T.train(train_config(data, out), on_step=pause), None, "
                 "name='vrnkit train', resumable=True))")


def stop_when(command, ready, sig=signal.SIGKILL, *, timeout=240.0) -> tuple[int, str]:
    """Start ``command``, wait until ``ready()`` is true, then send ``sig`` to its whole process
    group (as kill -9, or as Ctrl-C in a terminal does) -> (exit status, stderr)."""
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the command ended before the moment to stop it: {proc.stderr.read()!r}"
        assert time.monotonic() < deadline, "the moment to stop it never came"
        time.sleep(0.01)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def check_stopped(rc, err, sig) -> None:
    if sig == signal.SIGKILL:
        assert rc == -signal.SIGKILL
    else:  # Ctrl-C: one line, last (after any progress bar), and no traceback from any process
        assert rc == 130 and "Traceback" not in err, err
        assert err.strip().splitlines()[-1].endswith("interrupted; run the same command again to resume"), err


# ---------------------------------------------------------------------------------------------
# vrnkit synth

@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The reference: the same dataset written by one uninterrupted run."""
    root = tmp_path_factory.mktemp("whole") / "synth"
    synth.generate("synth-300wlp", root, n=12, shard_size=2, seed=0, spec=VolumeSpec.preset("cpu"), workers=1,
                   progress=False)
    return root


def shard_digests(root) -> dict:
    return {Path(p).name: d for p, d in snapshot(*list_shards(root)).items()}


MOMENTS = {  # when to kill: a condition on the output folder
    "manifest written, no shard yet": lambda out: (out / "dataset.json").exists(),
    "first shard written": lambda out: len(list_shards(out)) >= 1,
    "half the shards written": lambda out: len(list_shards(out)) >= 3,
}


@pytest.mark.parametrize("moment, sig", [*((m, signal.SIGKILL) for m in MOMENTS),
                                         ("first shard written", signal.SIGINT)])
def test_synth_stopped_then_resumed_writes_the_same_bytes(whole, tmp_path, capsys, moment, sig):
    out = tmp_path / "d"
    command = [sys.executable, "-c", SLOW_SYNTH, *SYNTH, "--out", str(out)]
    check_stopped(*stop_when(command, lambda: MOMENTS[moment](out), sig), sig)
    rc, stdout, _ = run([*SYNTH, "--out", out], capsys)  # the same command again
    assert rc == 0 and "12 samples" in stdout
    assert shard_digests(out) == shard_digests(whole) and not list(out.glob(".*.tmp"))
    ids = list(read_index(out)["id"])
    assert ids == [f"synth-300wlp-{i:07d}" for i in range(12)]  # each once, none missing


# ---------------------------------------------------------------------------------------------
# Training

def train_config(data, out) -> T.TrainConfig:
    """6 steps of the tiny test model, a checkpoint every 2 steps, over two epochs."""
    return tiny(data, out, steps=6, checkpoint_every=2, batch_size=4, model_options=dict(TINY, features=16))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("kill-data"), 12)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory, one_thread):  # noqa: F811  (as the killed runs: one thread)
    return T.train(train_config(data, tmp_path_factory.mktemp("reference") / "run"))["model"].state_dict()


@pytest.mark.parametrize("stop, sig", [(1, signal.SIGKILL), (3, signal.SIGKILL), (4, signal.SIGKILL),
                                       (3, signal.SIGINT)],
                         ids=["before-first-checkpoint", "after-a-checkpoint", "at-a-checkpoint", "ctrl-c"])
def test_training_stopped_then_resumed_is_bit_exact_with_each_step_logged_once(data, reference, tmp_path, stop, sig):
    out, marker = tmp_path / "run", tmp_path / "paused"
    command = [sys.executable, "-c", PAUSING_TRAIN.format(tests=str(TESTS)), data, str(out), str(stop), str(marker)]
    check_stopped(*stop_when(command, marker.exists, sig), sig)
    result = T.train(train_config(data, out))  # the same run again: it resumes (or restarts) by itself
    assert result["step"] == 6
    for k, v in result["model"].state_dict().items():
        assert torch.equal(v, reference[k]), k
    rows = pd.read_csv(out / "metrics.csv")
    assert list(rows[rows.kind == "step"].step) == [1, 2, 3, 4, 5, 6]
    assert not list(out.glob(".*.tmp"))
