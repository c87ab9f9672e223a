"""`vrnkit prepare` with bad input: each case fails with one line that names the problem and
keeps every file that was there; it never deletes a dataset it did not write (issue 9)."""
from __future__ import annotations

import json
import shutil

import pytest

from test_errors_cli import deny_writes, expect_failure, fill_disk_after_one_shard, run, snapshot
from test_errors_synth import made  # noqa: F401  (a SynthFaces folder, as a fixture)
from test_datasets_real import make_aflw2000_fixture
from vrnkit.datasets import real as realdata
from vrnkit.datasets.shards import list_shards, read_index, read_shard


@pytest.fixture(scope="module")
def aflw(tmp_path_factory):
    """(AFLW2000-3D fixture folder, model folder, its conversion): two faces, one per shard."""
    base = tmp_path_factory.mktemp("aflw")
    root, model_dir = make_aflw2000_fixture(base, n=2)
    converted = base / "converted"
    assert run_quietly(argv(converted, root=root, model=model_dir)) == 0
    return root, model_dir, converted


def run_quietly(args) -> int:
    from vrnkit import cli

    return cli.main([str(a) for a in args])


def argv(out, *flags, dataset="aflw2000", **options):
    """`vrnkit prepare` with the reference options; options=None leaves one out."""
    opts = {"preset": "cpu", "shard_size": 1, "workers": 1, "out": out, **options}
    args = ["prepare", dataset, *flags, "--no-progress"]
    for k, v in opts.items():
        if v is not None:
            args += [f"--{k.replace('_', '-')}", v]
    return args


def folder(kind, aflw, made, tmp_path):  # noqa: F811
    """The --out folder of a case: new, a copy of the conversion or of a SynthFaces set, or worse."""
    root, _, converted = aflw
    out = tmp_path / "d"
    if kind == "new":
        return out
    if kind == "root":
        return root
    if kind in ("file", "under-file"):
        (tmp_path / "f").write_text("a file, not a folder")
        return tmp_path / "f" if kind == "file" else tmp_path / "f" / "sub"
    shutil.copytree(made if kind == "synth" else converted, out)
    if kind == "no-manifest":
        (out / "prepare.json").unlink()
    elif kind == "legacy":  # what vrnkit wrote before the common manifest: the same settings
        m = json.loads((out / "prepare.json").read_text())
        old = {k: m[k] for k in ("kind", "spec", "split", "shard_size", "subsets", "y_up", "model")}
        (out / "prepare.json").write_text(json.dumps(dict(old, root=str(root))))
    return out


CASES = [
    # --limit 0 at its own earlier output used to delete every shard and exit 0
    ("ours", [], dict(limit=0), ["--limit", ">= 1", "got 0"]),
    ("ours", [], dict(limit=-1), ["--limit", "got -1"]),
    ("new", [], dict(shard_size=0), ["--shard-size", "[1, 100000]"]),
    ("new", [], dict(shard_size=-2), ["--shard-size", "got -2"]),
    ("new", [], dict(workers=0), ["--workers", "[1, 1024]"]),
    ("new", [], dict(split=" "), ["--split", "train or test"]),
    ("new", [], dict(dataset="300wlp", subsets=",,"), ["--subsets", "folder names such as AFW"]),
    # pointed at a SynthFaces set it used to delete its shards and exit 0
    ("synth", [], {}, ["different dataset", "SynthFaces synth-300wlp (4 samples, seed 0", "--force"]),
    ("synth", [], dict(limit=1), ["SynthFaces synth-300wlp"]),
    ("no-manifest", [], {}, ["no dataset.json or prepare.json", "--force"]),
    ("ours", [], dict(preset="paper"), ["other settings", "spec"]),
    ("ours", [], dict(split="train"), ["split 'test' there, 'train' here"]),
    ("ours", [], dict(shard_size=2), ["shard_size 1 there, 2 here"]),
    ("ours", ["--y-up"], {}, ["y_up False there, True here"]),
    ("root", [], {}, ["is the dataset folder itself"]),
    ("file", [], {}, ["is a file, not a folder"]),
    ("under-file", [], {}, ["is a file, not a folder"]),
    ("new", [], dict(root="nowhere"), ["nowhere", "does not exist"]),
    ("new", [], dict(root="a-file"), ["a-file", "not a folder"]),
    ("new", [], dict(model="nowhere"), ["Model_Shape.mat"]),
    ("new", [], dict(model=None), ["needs the morphable model", "--model"]),
    ("new", [], dict(dataset="300wlp"), ["300W-LP subset folder"]),
    ("new", [], dict(dataset="folder"), ["without a partner"]),
]


@pytest.mark.parametrize("kind, flags, options, words", CASES,
                         ids=[f"{k}-{'-'.join(f)}{o}" for k, f, o, _ in CASES])
def test_bad_options_and_folders_are_refused(aflw, made, tmp_path, capsys, kind, flags, options, words):  # noqa: F811
    root, model_dir, _ = aflw
    out = folder(kind, aflw, made, tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    options = {"root": root, "model": model_dir, **options}
    options["root"] = tmp_path / options["root"] if options["root"] in ("nowhere", "a-file") else options["root"]
    options["model"] = tmp_path / "nowhere" if options["model"] == "nowhere" else options["model"]
    before = snapshot(tmp_path, root)
    rc, _, err = run(argv(out, *flags, **options), capsys)
    expect_failure(rc, err, words, before)
    assert snapshot(tmp_path, root) == before  # a refused run writes nothing


@pytest.mark.parametrize("options, words", [
    (dict(limit="x"), ["--limit", "invalid int value"]),
    (dict(shard_size="1.5"), ["--shard-size", "invalid int value"]),
    (dict(preset="huge"), ["--preset", "invalid choice"]),
    (dict(dataset="nonsense"), ["invalid choice"]),
])
def test_unparsable_options_give_the_usage(aflw, tmp_path, capsys, options, words):
    root, model_dir, _ = aflw
    rc, _, err = run(argv(tmp_path / "d", **{"root": root, "model": model_dir, **options}), capsys)
    expect_failure(rc, err, words, usage=True)


@pytest.mark.parametrize("kw, words", [(dict(limit=0), "limit"), (dict(shard_size=0), "shard_size"),
                                       (dict(workers=0), "workers"), (dict(limit=1.5), "got 1.5")])
def test_prepare_checks_its_arguments(aflw, tmp_path, kw, words):
    root, model_dir, _ = aflw
    with pytest.raises(ValueError, match=words):
        realdata.prepare("aflw2000", root, tmp_path / "d", model=model_dir, preset="cpu", progress=False, **kw)
    assert not (tmp_path / "d").exists()


# ---------------------------------------------------------------------------------------------
# What may be written: its own earlier runs resume, --force replaces, nothing else is touched

def shard_bytes(root) -> dict:
    return {p.name: p.read_bytes() for p in list_shards(root)}


@pytest.mark.parametrize("kind", ["ours", "legacy"])
def test_its_own_folder_resumes_and_a_shorter_limit_shortens_it(aflw, made, tmp_path, capsys, kind):  # noqa: F811
    root, model_dir, converted = aflw
    out = folder(kind, aflw, made, tmp_path)
    list_shards(out)[1].unlink()
    (out / ".shard-00001.npz.x1.tmp").write_bytes(b"half")
    assert run(argv(out, root=root, model=model_dir), capsys)[0] == 0
    assert shard_bytes(out) == shard_bytes(converted) and not list(out.glob(".*.tmp"))
    assert run(argv(out, root=root, model=model_dir, limit=1), capsys)[0] == 0  # its own shard, deleted
    assert list(read_index(out)["id"]) == ["image00000"] and len(list_shards(out)) == 1


def test_force_replaces_a_synthfaces_folder_and_keeps_other_files(aflw, made, tmp_path, capsys):  # noqa: F811
    root, model_dir, converted = aflw
    out = folder("synth", aflw, made, tmp_path)
    (out / "notes.txt").write_text("mine")
    rc, stdout, _ = run(argv(out, "--force", root=root, model=model_dir), capsys)
    assert rc == 0 and "--force: deleting" in stdout
    assert (out / "notes.txt").read_text() == "mine" and not (out / "dataset.json").exists()
    assert shard_bytes(out) == shard_bytes(converted)


def test_permission_denied_is_one_line(aflw, tmp_path, capsys, monkeypatch):
    root, model_dir, _ = aflw
    deny_writes(monkeypatch, tmp_path)
    rc, _, err = run(argv(tmp_path / "d", root=root, model=model_dir), capsys)
    expect_failure(rc, err, ["permission denied for", str(tmp_path / "d")])


def test_a_full_disk_names_the_shard_and_the_run_resumes(aflw, tmp_path, capsys, monkeypatch):
    root, model_dir, converted = aflw
    out = tmp_path / "d"
    fill_disk_after_one_shard(monkeypatch)
    rc, _, err = run(argv(out, root=root, model=model_dir), capsys)
    expect_failure(rc, err, ["the disk is full", "shard-00001.npz"])
    monkeypatch.undo()
    assert run(argv(out, root=root, model=model_dir), capsys)[0] == 0
    assert shard_bytes(out) == shard_bytes(converted)


def test_ctrl_c_says_how_to_resume_and_resuming_works(aflw, tmp_path, capsys, monkeypatch):
    root, model_dir, converted = aflw
    out = tmp_path / "d"
    real = realdata.convert_items

    def stopped(kind, items, *a, **k):
        if items[0]["id"] == "image00001":
            raise KeyboardInterrupt
        return real(kind, items, *a, **k)

    monkeypatch.setattr(realdata, "convert_items", stopped)
    rc, _, err = run(argv(out, root=root, model=model_dir), capsys)
    expect_failure(rc, err, ["vrnkit prepare: interrupted; run the same command again to resume"], status=130)
    monkeypatch.undo()
    assert run(argv(out, root=root, model=model_dir), capsys)[0] == 0
    assert shard_bytes(out) == shard_bytes(converted)


def test_a_corrupt_shard_names_the_command_that_writes_it_again(aflw, tmp_path):
    out = tmp_path / "d"
    shutil.copytree(aflw[2], out)
    bad = list_shards(out)[0]
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"truncated or corrupt.*delete it and run `vrnkit prepare aflw2000 --root"):
        read_shard(bad)
