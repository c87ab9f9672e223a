"""The command line, run as a user would: `vrnkit voxelise`, and its errors."""
import subprocess
import sys

import numpy as np
import trimesh

from vrnkit import cli
from vrnkit.config import VolumeSpec


def test_voxelise_writes_a_volume_and_the_recovered_mesh(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=3.0)
    mesh_path = tmp_path / "ball.obj"
    sphere.export(mesh_path)
    assert cli.main(["voxelise", str(mesh_path), "--out", str(tmp_path / "out"), "--preset", "cpu"]) == 0
    vol = np.load(tmp_path / "out" / "ball_volume.npy")
    spec = VolumeSpec.preset("cpu")
    assert vol.shape == spec.shape and vol.dtype == bool
    # Fitted into 80 % of the crop: a ball of diameter 0.8 * 32 px of depth span = 25.6 px.
    # Its volume in voxels: (4/3) pi r^3 with r = 12.8 px, times depth_scale slices per px.
    expected = 4 / 3 * np.pi * 12.8 ** 3 * spec.depth_scale
    assert abs(vol.sum() - expected) / expected < 0.05
    back = trimesh.load(tmp_path / "out" / "ball_recovered.obj", process=False)
    assert back.is_watertight and back.volume > 0


def test_voxelise_explains_a_bad_mesh_file(tmp_path, capsys):
    bad = tmp_path / "broken.obj"
    bad.write_text("this is not a mesh\n")
    assert cli.main(["voxelise", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "broken.obj" in err and "error" in err
    assert cli.main(["voxelise", str(tmp_path / "missing.ply")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_python_m_vrnkit_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "vrnkit", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ["demo", "synth", "prepare", "train", "voxelise"]:
        assert command in out
