"""`vrnkit voxelise` with bad input: one line naming the file and the problem, and no output
file written by a run that fails (it used to write an empty volume before failing)."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from test_errors_cli import deny_writes, disk_full, expect_failure, run, snapshot
from vrnkit import cli


def obj_text(vertices, faces) -> str:
    return "".join(f"v {x} {y} {z}\n" for x, y, z in vertices) + "".join(f"f {a} {b} {c}\n" for a, b, c in faces + 1)


def ball(shift=0.0, **change):
    """An icosphere's OBJ text, moved by ``shift``, with vertices replaced as ``change`` says
    (v5=[x, y, z]: vertex 5)."""
    m = trimesh.creation.icosphere(subdivisions=2)
    v = np.array(m.vertices) + shift
    for i, xyz in change.items():
        v[int(i[1:])] = xyz
    return obj_text(v, np.asarray(m.faces))


MESHES = {  # file name -> its contents (None: no such file; "folder": a folder by that name)
    "missing.obj": None,
    "folder.obj": "folder",
    "text.obj": "this is not a mesh\n",
    "empty.obj": "",
    "points.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\n",
    "nan.obj": ball(v5=[np.nan, 0, 0]),
    "inf.obj": ball(v7=[0, np.inf, 0], v9=[0, 0, -np.inf]),
    "bad-index.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n",
    "garbage.ply": "ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2\n",
    "garbage.stl": "solid x\n facet nothing\n",
    "one-point.obj": "v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n",
    "far.obj": ball(shift=1000.0),  # fine, but with --no-fit it lies outside the volume
}

CASES = [
    ("missing.obj", [], ["missing.obj", "does not exist"]),
    ("folder.obj", [], ["folder.obj", "is a folder; give a mesh file"]),
    ("text.obj", [], ["text.obj", "has no triangles"]),
    ("empty.obj", [], ["empty.obj"]),
    ("points.obj", [], ["points.obj"]),
    ("nan.obj", [], ["nan.obj", "has 1 of 162 vertices with NaN or infinite", "vertex 6"]),  # used to say 162 (all)
    ("inf.obj", [], ["inf.obj", "has 2 of 162 vertices", "vertex 8"]),
    ("bad-index.obj", [], ["bad-index.obj", "could not read mesh"]),
    ("garbage.ply", [], ["garbage.ply"]),
    ("garbage.stl", [], ["garbage.stl"]),
    ("one-point.obj", [], ["one-point.obj", "empty 64x64x64 volume", "flat or tiny"]),
    ("far.obj", ["--no-fit"], ["far.obj", "empty 64x64x64 volume", "drop --no-fit"]),
    ("far.obj", ["--out", "{tmp}/a-file"], ["a-file", "is a file, not a folder"]),
    ("far.obj", ["--out", "{tmp}/a-file/sub"], ["a-file", "is a file, not a folder"]),
]


@pytest.mark.parametrize("name, extra, words", CASES, ids=[f"{n}{' '.join(e)}" for n, e, _ in CASES])
def test_bad_meshes_and_outputs_are_one_line_and_write_nothing(tmp_path, capsys, name, extra, words):
    content = MESHES[name]
    if content == "folder":
        (tmp_path / name).mkdir()
    elif content is not None:
        (tmp_path / name).write_text(content)
    (tmp_path / "a-file").write_text("a file")
    before = snapshot(tmp_path)
    extra = [e.format(tmp=tmp_path) for e in extra]
    rc, _, err = run(["voxelise", tmp_path / name, "--preset", "cpu", "--out", tmp_path / "out", *extra], capsys)
    expect_failure(rc, err, words, before)
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, words", [(["--preset", "huge"], ["--preset", "invalid choice"]),
                                          (["--fill", "solid"], ["--fill", "invalid choice"]),
                                          ([], ["required: mesh"])])
def test_unparsable_options_give_the_usage(tmp_path, capsys, extra, words):
    mesh = [] if not extra else [tmp_path / "far.obj"]
    rc, _, err = run(["voxelise", *mesh, *extra], capsys)
    expect_failure(rc, err, words, usage=True)


@pytest.fixture
def mesh(tmp_path):
    path = tmp_path / "ball.obj"
    path.write_text(ball())
    return path


def test_permission_denied_names_the_folder(mesh, tmp_path, capsys, monkeypatch):
    deny_writes(monkeypatch, tmp_path / "out")
    rc, _, err = run(["voxelise", mesh, "--preset", "cpu", "--out", tmp_path / "out"], capsys)
    expect_failure(rc, err, ["permission denied for", str(tmp_path / "out")])


def test_a_full_disk_names_the_file(mesh, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(np, "save", disk_full)
    rc, _, err = run(["voxelise", mesh, "--preset", "cpu", "--out", tmp_path / "out"], capsys)
    expect_failure(rc, err, ["the disk is full", "ball_volume.npy"])
    assert not [p for p in (tmp_path / "out").iterdir()]  # no half-written file


def test_ctrl_c_is_one_line(mesh, tmp_path, capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("vrnkit.voxel.mesh_to_volume", interrupted)
    rc, _, err = run(["voxelise", mesh, "--preset", "cpu", "--out", tmp_path / "out"], capsys)
    expect_failure(rc, err, ["vrnkit voxelise: interrupted"], status=130)
    assert "resume" not in err


def test_a_good_mesh_still_works_and_replaces_only_its_own_outputs(mesh, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "other_volume.npy").write_bytes(b"someone else's")
    rc, stdout, _ = run(["voxelise", mesh, "--preset", "cpu", "--out", out], capsys)
    assert rc == 0 and "ball_volume.npy" in stdout and np.load(out / "ball_volume.npy").any()
    assert (out / "other_volume.npy").read_bytes() == b"someone else's"
    assert cli.main(["voxelise", str(mesh), "--preset", "cpu", "--out", str(out)]) == 0
