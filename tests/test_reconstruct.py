"""From a photo to a mesh: the face is found, reconstructed where it is, and written to files that
reload as they were; bad photos and options give one-line errors and a folder run goes on."""
import json
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from PIL import Image
from skimage.data import astronaut

from vrnkit.config import VolumeSpec
from vrnkit.metrics import nme
from vrnkit.photo import background_photo, paste_image
from vrnkit.reconstruct import Reconstruction, front_facing, reconstruct
from vrnkit.synthfaces.dataset import make_sample

pytest.importorskip("dlib", reason="the photos extra (pip install 'vrnkit[photos]') is part of `make test`")

PAPER = VolumeSpec.preset("paper")


@pytest.fixture(scope="module")
def astronaut_rec() -> Reconstruction:
    return reconstruct(astronaut())


def composite(index: int, *, xy=(300, 120), scale=1.3):
    """A held-out SynthFaces face pasted into a photo-like background at a known place and scale:
    (photo, its 68 landmarks and mesh vertices in the photo's pixels, the sample)."""
    sample, meta = make_sample("synth-aflw2000", index, spec=PAPER)
    bg = background_photo(index, size=(480, 640))
    photo, lm = paste_image(bg, sample["image"], xy=xy, scale=scale, landmarks=sample["landmarks"])
    _, vertices = paste_image(bg, sample["image"], xy=xy, scale=scale, landmarks=sample["vertices"])
    return photo, lm, vertices, sample


@pytest.mark.parametrize("index", [27, 46])  # near-frontal held-out faces (yaw 2 deg)
def test_a_face_pasted_into_a_photo_is_found_and_reconstructed_in_place(index):
    """Measured with vrn-guided-192 and dlib's landmarks on generator-version-4 faces: landmark
    error 7.0 / 4.9 px (face 117 px across; a landmark in the wrong frame is tens of px off), NME
    0.103 / 0.112; 15 px to the side gives 0.24. Face 27's error is its jaw (17 px): its neck is lit
    like its face, so dlib puts the chin where the long chin's shading fades, 18 px above the
    mesh's. (On version 3: 4.5 / 4.4 px, NME 0.098 / 0.101.)"""
    photo, lm, vertices, sample = composite(index)
    rec = reconstruct(photo)
    assert rec.source == "hog" and rec.faces_found == 1
    assert np.linalg.norm(rec.landmarks[:, :2] - lm[:, :2], axis=1).mean() < 8.0
    pred, faces = front_facing(rec.vertices, rec.faces, sample["affine"])
    assert nme(vertices, pred, lm, pred_faces=faces) < 0.12
    # the same mesh 15 px to the side is far worse: the bound above checks the placement
    assert nme(vertices, pred + [15, 0, 0], lm, pred_faces=faces) > 0.15


def test_the_astronaut_gets_a_face_sized_mesh_over_her_face(astronaut_rec):
    rec = astronaut_rec
    x0, y0, x1, y1 = rec.box  # dlib's box: about (175, 76) - (266, 167) on her face
    assert 150 < x0 < 200 and 60 < y0 < 100 and 240 < x1 < 290 and 150 < y1 < 190
    lo, hi = rec.vertices.min(0), rec.vertices.max(0)
    width, height = hi[:2] - lo[:2]
    assert 0.8 < width / (x1 - x0) < 1.5 and 1.0 < height / (y1 - y0) < 2.0, (lo, hi)
    centre = (lo[:2] + hi[:2]) / 2
    assert np.linalg.norm(centre - [(x0 + x1) / 2, (y0 + y1) / 2]) < 25
    assert rec.faces_found == 2  # upsampled HOG also finds the round mission patch; the largest is her
    assert rec.volume.shape == PAPER.shape and rec.crop.shape == (192, 192, 3)
    assert set(rec.seconds) >= {"detect", "crop", "network", "surface", "colours"}
    # skin colours from the photo (not grey): red above blue on most vertices
    assert np.mean(rec.colours[:, 0].astype(int) > rec.colours[:, 2]) > 0.8


def test_files_reload_with_the_same_vertices_and_colours(astronaut_rec, tmp_path):
    rec = astronaut_rec
    paths = rec.save(tmp_path / "astro", photo=astronaut(), volume=True)
    assert {p.name for p in paths.values()} == {f"astro.{e}" for e in ("obj", "ply", "glb", "json", "png")} | {
        "astro_volume.npy"}
    for ext in ("obj", "ply", "glb"):
        mesh = trimesh.load(paths[ext], force="mesh", process=False)
        assert len(mesh.vertices) == len(rec.vertices) and len(mesh.faces) == len(rec.faces)
        # files are y-up: x and z as in the photo's frame, y mirrored (up to one constant)
        np.testing.assert_allclose(mesh.vertices[:, [0, 2]], rec.vertices[:, [0, 2]], atol=1e-3)
        np.testing.assert_allclose(mesh.vertices[:, 1] + rec.vertices[:, 1],
                                   (mesh.vertices[:, 1] + rec.vertices[:, 1]).mean(), atol=1e-3)
    ply = trimesh.load(paths["ply"], process=False)
    np.testing.assert_array_equal(ply.visual.vertex_colors[:, :3], rec.colours)
    info = json.loads(paths["json"].read_text())
    assert info["faces_found"] == 2 and len(info["landmarks"]) == 68 and info["model"] == "vrn-guided-192"
    np.testing.assert_allclose(info["crop_frame"], rec.frame.to_array())
    np.testing.assert_allclose(np.load(paths["volume"]), rec.volume, atol=1e-3)
    assert Image.open(paths["png"]).size[0] > 800


def test_landmarks_instead_of_detection_and_an_exif_rotated_photo(tmp_path, astronaut_rec):
    # landmarks from a file: the same crop as the detector's
    np.save(tmp_path / "lm.npy", astronaut_rec.landmarks)
    rec = reconstruct(astronaut(), landmarks=tmp_path / "lm.npy")
    assert rec.source == "file" and rec.faces_found == 1
    np.testing.assert_allclose(rec.frame.to_array(), astronaut_rec.frame.to_array(), rtol=1e-6)
    # a phone photo stored sideways with EXIF orientation 6 (turn 90 deg clockwise to view)
    stored = Image.fromarray(astronaut()).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    rotated = reconstruct(tmp_path / "phone.jpg")
    np.testing.assert_allclose(rotated.box, astronaut_rec.box, atol=6)


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "vrnkit", "reconstruct", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_cli_folder_run_goes_on_past_bad_files_and_lists_them(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(astronaut()).save(photos / "astronaut.jpg")
    Image.fromarray(background_photo(0)).save(photos / "no_face.png")
    (photos / "notes.jpg").write_text("not a picture")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(photos / "tiny.png")
    grey16 = (astronaut().mean(2) * 257).astype(np.uint16)  # 16-bit grey: must not turn white
    Image.fromarray(grey16).save(photos / "grey16.png")
    out = tmp_path / "out"
    r = run_cli(photos, "-o", out, "--no-progress")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "no face found in" in r.stderr and "no_face.png: no face" not in r.stderr and "--landmarks" in r.stderr
    assert "notes.jpg" in r.stderr and "tiny.png" in r.stderr
    assert "3 of 5 photos failed" in r.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{stem}.{e}" for stem in ("astronaut", "grey16") for e in ("obj", "ply", "glb", "json", "png"))
    ply = trimesh.load(out / "grey16.ply", process=False)
    assert ply.visual.vertex_colors[:, :3].mean() < 200  # grey skin, not white


@pytest.mark.parametrize("args, words", [
    (["--landmarks", "LM67"], ["68"]),
    (["--model", "vrn-huge"], ["unknown model", "vrn-guided-192"]),
    (["--model", "missing.pt"], ["missing.pt", "does not exist"]),
])
def test_cli_bad_options_give_one_line(tmp_path, args, words):
    photo = tmp_path / "a.png"
    Image.fromarray(astronaut()).save(photo)
    np.savetxt(tmp_path / "lm67.txt", np.zeros((67, 2)))
    args = [str(tmp_path / "lm67.txt") if a == "LM67" else a for a in args]
    r = run_cli(photo, "-o", tmp_path / "out", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_an_8000_px_photo_stays_under_2_gb(tmp_path):
    """Detection runs on a shrunk copy, colours come from the full photo, memory stays low."""
    big = Image.fromarray(astronaut()).resize((8000, 8000), Image.BILINEAR)
    big.save(tmp_path / "big.jpg", quality=85)
    del big
    code = ("import resource, json, sys; from vrnkit.reconstruct import front_facing, reconstruct; "
            f"r = reconstruct({str(tmp_path / 'big.jpg')!r}); "
            "print(json.dumps(dict(rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
            "box=list(r.box), lo=r.vertices.min(0).tolist(), hi=r.vertices.max(0).tolist())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rss"] < 2048, got  # MB
    k = 8000 / 512  # her face, 15.6 times larger than in the 512 px photo
    x0, y0, x1, y1 = got["box"]
    assert abs((x0 + x1) / 2 / k - 220) < 15 and abs((y0 + y1) / 2 / k - 122) < 15, got
    assert 0.8 < (got["hi"][0] - got["lo"][0]) / (x1 - x0) < 1.5
