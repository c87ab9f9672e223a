"""`vrnkit synth` with bad input: each case fails with one line that names the problem, and
leaves every file that was there before as it was; a refused folder is never touched."""
from __future__ import annotations

import errno
import json
import shutil

import numpy as np
import pytest

from test_errors_cli import deny_writes, expect_failure, fill_disk_after_one_shard, run, snapshot
from vrnkit.synthfaces import dataset as synth
from vrnkit.config import VolumeSpec
from vrnkit.datasets.shards import FORMAT_VERSION, list_shards, read_index, read_shard

QUICK = VolumeSpec.preset("cpu")
SETTINGS = dict(n=4, shard_size=2, seed=0)  # the reference dataset below


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A small SynthFaces set, made once: the folder that most cases point at (as a copy)."""
    root = tmp_path_factory.mktemp("made") / "synth"
    synth.generate("synth-300wlp", root, spec=QUICK, workers=1, progress=False, **SETTINGS)
    return root


def argv(out, *extra):
    return ["synth", "--preset", "cpu", "--n", "4", "--shard-size", "2", "--seed", "0", "--workers", "1",
            "--no-progress", "--out", out, *extra]


def shard_digests(root) -> dict:
    return {p.name: d for p, d in ((p, snapshot(p)[str(p)]) for p in list_shards(root))}


def folder(kind, made, tmp_path):
    """The --out folder of a case: new, a copy of the reference set, or a copy changed so."""
    out = tmp_path / "d"
    if kind == "new":
        return out
    if kind in ("file", "under-file"):
        (tmp_path / "f").write_text("a file, not a folder")
        return tmp_path / "f" if kind == "file" else tmp_path / "f" / "sub"
    if kind == "index-only":
        out.mkdir()
        (out / "index.csv").write_text("my own table\n1,2,3\n")
        return out
    shutil.copytree(made, out)
    manifest = out / "dataset.json"
    if kind == "no-manifest":
        manifest.unlink()
    elif kind == "bad-manifest":
        manifest.write_text("{not json")
    elif kind == "converted":  # the shards of an AFLW2000-3D conversion, as `vrnkit prepare` records them
        manifest.unlink()
        (out / "prepare.json").write_text(json.dumps(dict(kind="aflw2000", source="/data/AFLW2000", samples=4)))
    elif kind == "legacy":  # what vrnkit wrote before the common manifest: the same settings
        manifest.write_text(json.dumps(dict(protocol="synth-300wlp", n=4, seed=0, shard_size=2,
                                            spec=QUICK.to_dict(), format_version=FORMAT_VERSION)))
    return out


CASES = [
    # numbers out of their range (the folder is not even created)
    ("new", ["--n", "0"], ["--n", ">= 1", "got 0"]),
    ("new", ["--n", "-5"], ["--n", "got -5"]),
    ("new", ["--shard-size", "0"], ["--shard-size", "[1, 100000]", "got 0"]),
    ("new", ["--shard-size", "-4"], ["--shard-size", "got -4"]),
    ("new", ["--shard-size", "1000000"], ["--shard-size", "[1, 100000]"]),
    ("new", ["--workers", "0"], ["--workers", "[1, 1024]"]),
    ("new", ["--workers", "-2"], ["--workers", "got -2"]),
    ("new", ["--seed", "-1"], ["--seed", "[0, 4294967295]"]),
    ("new", ["--seed", str(2**32)], ["--seed", "got 4294967296"]),
    # a folder that holds another dataset, or files nothing describes
    ("ours", ["--seed", "1"], ["different dataset", "seed 0 there, 1 here", "--force"]),
    ("ours", ["--n", "6"], ["different dataset", "n 4 there, 6 here"]),
    ("ours", ["--shard-size", "1"], ["shard_size 2 there, 1 here"]),
    ("ours", ["--protocol", "synth-florence"], ["protocol 'synth-300wlp' there, 'synth-florence' here"]),
    ("ours", ["--preset", "paper"], ["different dataset", "spec"]),
    ("no-manifest", [], ["no dataset.json or prepare.json", "shard-00000.npz", "--force"]),
    ("no-manifest", ["--seed", "7"], ["no dataset.json or prepare.json"]),
    ("index-only", [], ["index.csv", "--force"]),
    ("converted", [], ["AFLW2000-3D from /data/AFLW2000", "different dataset"]),
    # made before SynthFaces had a generator version: by an older renderer, so not resumed into
    ("legacy", [], ["different dataset", f"generator_version None there, {synth.GENERATOR_VERSION} here", "--force"]),
    ("bad-manifest", [], ["dataset.json is not a readable dataset manifest", "--force"]),
    ("file", [], ["is a file, not a folder"]),
    ("under-file", [], ["is a file, not a folder"]),
]


@pytest.mark.parametrize("kind, extra, words", CASES, ids=[f"{k}{' '.join(e)}" for k, e, _ in CASES])
def test_bad_options_and_folders_are_refused(made, tmp_path, capsys, kind, extra, words):
    out = folder(kind, made, tmp_path)
    before = snapshot(tmp_path)
    rc, _, err = run(argv(out, *extra), capsys)
    expect_failure(rc, err, words, before)
    assert snapshot(tmp_path) == before  # nothing new either: a refused run writes nothing


@pytest.mark.parametrize("extra, words", [
    (["--n", "abc"], ["--n", "invalid int value"]),
    (["--seed", "1.5"], ["--seed", "invalid int value"]),
    (["--protocol", "synth-lfw"], ["--protocol", "invalid choice"]),
    (["--preset", "huge"], ["--preset", "invalid choice"]),
])
def test_unparsable_options_give_the_usage(tmp_path, capsys, extra, words):
    rc, _, err = run(argv(tmp_path / "d", *extra), capsys)
    expect_failure(rc, err, words, usage=True)
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("kw, words", [
    (dict(n=0), "n .--n., the number of samples, must be a positive whole number >= 1; got 0"),
    (dict(n=2.5), "got 2.5"),
    (dict(n="10"), "whole number"),
    (dict(seed=-1), "seed"),
    (dict(shard_size=0), "shard_size"),
    (dict(workers=0), "workers"),
    (dict(protocol="synth-lfw"), "unknown SynthFaces protocol"),
])
def test_generate_checks_its_arguments(tmp_path, kw, words):
    kw = {**SETTINGS, "protocol": "synth-300wlp", **kw}
    with pytest.raises(ValueError, match=words):
        synth.generate(kw.pop("protocol"), tmp_path / "d", spec=QUICK, workers=kw.pop("workers", 1),
                       progress=False, **kw)
    assert not (tmp_path / "d").exists()


# ---------------------------------------------------------------------------------------------
# What may be written: an identical re-run resumes, --force replaces, nothing else is touched

@pytest.mark.parametrize("kind", ["ours"])
def test_an_identical_run_resumes_to_the_same_bytes(made, tmp_path, capsys, kind):
    out = folder(kind, made, tmp_path)
    list_shards(out)[1].unlink()  # killed before shard 1 was written
    (out / ".shard-00001.npz.abc123.tmp").write_bytes(b"half a shard")  # and during its write
    rc, stdout, _ = run(argv(out), capsys)
    assert rc == 0 and "4 samples of synth-300wlp" in stdout
    assert shard_digests(out) == shard_digests(made) and not list(out.glob(".*.tmp"))
    assert list(read_index(out)["id"]) == [f"synth-300wlp-{i:07d}" for i in range(4)]


@pytest.mark.parametrize("kind", ["converted", "no-manifest", "ours"])
def test_force_replaces_only_the_dataset_files(made, tmp_path, capsys, kind):
    out = folder(kind, made, tmp_path)
    (out / "notes.txt").write_text("mine")
    extra = ["--seed", "1"] if kind == "ours" else []
    rc, stdout, _ = run(argv(out, *extra, "--force"), capsys)
    assert rc == 0 and "--force: deleting" in stdout
    assert (out / "notes.txt").read_text() == "mine" and not (out / "prepare.json").exists()
    assert json.loads((out / "dataset.json").read_text())["seed"] == (1 if kind == "ours" else 0)
    if kind != "ours":
        assert shard_digests(out) == shard_digests(made)


def test_permission_denied_is_one_line(tmp_path, capsys, monkeypatch):
    deny_writes(monkeypatch, tmp_path)
    rc, _, err = run(argv(tmp_path / "d"), capsys)
    expect_failure(rc, err, ["permission denied for", str(tmp_path / "d"), "choose a folder you can write to"])


def test_a_full_disk_names_the_shard_and_the_run_resumes(made, tmp_path, capsys, monkeypatch):
    out = tmp_path / "d"
    fill_disk_after_one_shard(monkeypatch)
    rc, _, err = run(argv(out), capsys)
    expect_failure(rc, err, ["the disk is full", "shard-00001.npz", "free some space"])
    monkeypatch.undo()
    assert run(argv(out), capsys)[0] == 0 and shard_digests(out) == shard_digests(made)


def test_ctrl_c_says_how_to_resume_and_resuming_works(made, tmp_path, capsys, monkeypatch):
    out = tmp_path / "d"
    real = synth.make_sample

    def stopped(protocol, index, **kw):
        if index == 2:
            raise KeyboardInterrupt
        return real(protocol, index, **kw)

    monkeypatch.setattr(synth, "make_sample", stopped)
    rc, _, err = run(argv(out), capsys)
    expect_failure(rc, err, ["vrnkit synth: interrupted; run the same command again to resume"], status=130)
    monkeypatch.undo()
    assert run(argv(out), capsys)[0] == 0 and shard_digests(out) == shard_digests(made)


def test_a_corrupt_shard_names_the_command_that_writes_it_again(made, tmp_path):
    out = folder("ours", made, tmp_path)
    bad = list_shards(out)[0]
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"truncated or corrupt.*delete it and run `vrnkit synth --protocol "
                                         r"synth-300wlp --n 4 --seed 0 --shard-size 2 --preset cpu --out"):
        read_shard(bad)


def test_an_unreadable_shard_is_not_called_corrupt(made, monkeypatch):
    """Permission denied is the system's error: the message must not advise deleting the shard."""
    def denied(path, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(np, "load", denied)
    with pytest.raises(PermissionError):
        read_shard(list_shards(made)[0])
