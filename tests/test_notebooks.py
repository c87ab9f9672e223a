"""The notebooks run top to bottom, as a student runs them, and are committed without outputs.

Every notebooks/*.ipynb is executed with nbclient in a fresh kernel, in a temporary folder, with
VRNKIT_MODE=quick and VRNKIT_NOTEBOOK_SMOKE=1 (the notebooks shrink their sizes for it). A new
notebook is picked up automatically; EXPECTED lists, per notebook, files it must write and text
it must print, and CHECKS further checks of what it did. Notebook 01 is also run on a
300W-LP-format fixture tree (VRNKIT_REAL_DATA), to check that it switches to real data when a path
is set, and notebook 07 on a photo file (VRNKIT_PHOTO) stored sideways with an EXIF orientation.
"""
import base64
import json
import queue
import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell (smoke sizes take a few seconds each)
OUT = Path("out") / "notebooks"  # relative to the folder a notebook runs in

# Files a notebook must write (under its run folder) and text its outputs must contain.
EXPECTED = {
    "00_tour.ipynb": dict(
        files=[OUT / "00_astronaut.png", OUT / "00_astronaut_k3d.html"],
        text=["face 0:", "found by hog", "seconds per stage:", "offline HTML view:"]),
    "01_synthfaces.ipynb": dict(
        files=[OUT / "01_gallery.png", OUT / "01_poses.png", OUT / "01_overlay.png",
               Path("data") / "synth-300wlp-cpu-64" / "index.csv"],
        text=["64 faces in", "64 samples in 1 shard", "voxels inside"]),
    "02_volumes_and_meshes.ipynb": dict(
        files=[OUT / "02_face.obj", OUT / "02_face.ply", OUT / "02_face.glb", OUT / "02_face_k3d.html",
               OUT / "02_mesh.png", OUT / "02_photo.png", OUT / "02_discretisation.png"],
        text=["voxels that differ: 0 of", "watertight: True"]),
    "04_k3d_inspection.ipynb": dict(
        files=[OUT / "04_side_by_side.html", OUT / "04_overlay.html", OUT / "04_errors.html", OUT / "04_views.png",
               OUT / "04_errors.png"],
        text=["synth-aflw2000-0000011", "reconstruction:", "error: median"]),
    "05_evaluation.ipynb": dict(
        files=[OUT / "05_error_map.png", OUT / "05_curves.png", OUT / "05_best_worst.png", OUT / "05_scores.csv",
               OUT / "05_evaluate" / "report.md", OUT / "05_evaluate" / "report.png"],
        text=["NME = mean error", "reconstructions scored in", "wrote "]),
    "06_ablations.ipynb": dict(
        files=[OUT / "06_pose.png", OUT / "06_expression.png", OUT / "06_ablations.png",
               OUT / "06_ablations_by_group.png"],
        text=["The paper's ordering, checked", "## The commands"]),
    "07_your_own_photo.ipynb": dict(
        files=[OUT / f"07_astronaut.{ext}" for ext in ("obj", "ply", "glb", "json", "png")],
        text=["astronaut: 512 x 512 pixels", "hog: 2 face(s)", "cnn: 1 face(s)", "group photo: 2 faces",
              "chelsea(): ValueError: no face found", "the same crop frame as ours: True",
              "smooth=0: mean bend by x mod 4", "VRN-Guided and VRN agree on", "PLY reloaded:"]),
}


def check_tour(text: str, folder: Path) -> None:
    """The tour's one-call reconstruction of the astronaut is a full-size face mesh."""
    m = re.search(r"([\d,]+) vertices and ([\d,]+) triangles, from a \(200, 192, 192\) volume", text)
    assert m, "the tour does not print its reconstruction's size"
    vertices, triangles = (int(g.replace(",", "")) for g in m.groups())
    assert vertices > 10_000 and 1.5 * vertices < triangles < 2.5 * vertices, (vertices, triangles)
    assert (folder / OUT / "00_astronaut_k3d.html").stat().st_size > 100_000  # the mesh is in the page


def check_photo(text: str, folder: Path, name: str = "astronaut") -> None:
    """Notebook 07 wrote a PLY that reloads with the reconstruction's vertices, and a JSON that
    agrees with it; the face box is on the astronaut's face (x0, y0 about 175, 76)."""
    import trimesh

    ply = trimesh.load(folder / OUT / f"07_{name}.ply", process=False)
    m = re.search(r"PLY reloaded: ([\d,]+) vertices \(the reconstruction has ([\d,]+)\)", text)
    assert m, "notebook 07 does not print the reloaded PLY's size"
    printed, made = (int(g.replace(",", "")) for g in m.groups())
    assert len(ply.vertices) == printed == made > 10_000, (len(ply.vertices), printed, made)
    info = json.loads((folder / OUT / f"07_{name}.json").read_text())
    assert info["vertices"] == len(ply.vertices) and info["model"] == "vrn-guided-192"
    assert info["volume_shape"] == [200, 192, 192] and info["landmarks_from"] == "hog"
    x0, y0, x1, y1 = info["box"]
    assert 150 < x0 < 200 and 60 < y0 < 100 and 240 < x1 < 290 and 150 < y1 < 190, info["box"]


def check_evaluation(text: str, folder: Path) -> None:
    """Notebook 05 scored every method on the same faces of every test set; the floor's volume is
    the truth's own (IoU 1) and the mean face beats no network by accident of a crash (all finite)."""
    import numpy as np
    import pandas as pd

    scores = pd.read_csv(folder / OUT / "05_scores.csv")
    counts = scores.groupby(["method", "dataset"]).size()
    assert counts.nunique() == 1 and len(counts) == 4 * 3, counts  # vrn-cpu, linear-fit, mean-face, floor x 3 sets
    assert np.isfinite(scores.nme).all() and (scores.nme < 0.3).all()
    assert (scores[scores.method.str.startswith("voxelised-gt")].iou == 1.0).all()


def check_ablations(text: str, folder: Path) -> None:
    """Notebook 06 scored the same faces with every method, over all three |yaw| bins, and walked
    synth-bu4dfe through all six expressions."""
    import numpy as np
    import pandas as pd

    pose = pd.read_csv(folder / OUT / "06_pose.csv")
    assert pose.groupby("id").method.nunique().eq(3).all() and np.isfinite(pose.nme).all()
    assert pd.cut(pose.yaw.abs(), [0, 30, 60, 90], include_lowest=True).nunique() == 3, sorted(pose.yaw)
    expression = pd.read_csv(folder / OUT / "06_expression.csv")
    assert set(expression.expression) == {"anger", "disgust", "fear", "happiness", "sadness", "surprise"}


def check_inspection(text: str, folder: Path) -> None:
    """Notebook 04's snapshots hold the meshes, not an empty scene: each is well over the size of an
    empty k3d snapshot (its viewer alone is about 1.2 MB). tests/test_viz.py checks in Chromium that
    such a snapshot shows a face."""
    import k3d

    empty = len(k3d.plot().get_snapshot().encode())
    for name in ("side_by_side", "overlay", "errors"):
        assert (folder / OUT / f"04_{name}.html").stat().st_size > empty + 100_000, name


CHECKS = {"00_tour.ipynb": check_tour, "04_k3d_inspection.ipynb": check_inspection, "07_your_own_photo.ipynb": check_photo, "05_evaluation.ipynb": check_evaluation,
          "06_ablations.ipynb": check_ablations}
PHOTOS = {"00_tour.ipynb", "07_your_own_photo.ipynb"}  # these need dlib, the photos extra (in `make test`)


class PolledClient(nbclient.NotebookClient):
    """nbclient, but waiting for the kernel's shell replies in short slices.

    After a cell that displays a widget, nbclient sometimes misses a reply that is already
    waiting and sits out the whole cell timeout (jupyter/nbclient issue #312; seen here about
    one run in three with k3d). Polling every 0.5 s notices the reply.
    """

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        get_msg = kc.shell_channel.get_msg

        async def polled(timeout=None):
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
                try:
                    return await get_msg(timeout=left)
                except queue.Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise

        kc.shell_channel.get_msg = polled
        return kc


def run_notebook(path: Path, folder: Path, monkeypatch, *, then: str | None = None, **env) -> tuple:
    """Execute a notebook in ``folder`` -> (executed notebook, seconds). Raises on any cell error.
    ``then``: code run after the last cell, in the same kernel (what a user's click would do)."""
    monkeypatch.setenv("VRNKIT_MODE", "quick")
    monkeypatch.setenv("VRNKIT_NOTEBOOK_SMOKE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend, as in Jupyter
    monkeypatch.delenv("VRNKIT_DATA", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    nb = nbformat.read(path, as_version=4)
    if then:
        nb.cells.append(nbformat.v4.new_code_cell(then))
    client = PolledClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                                     resources={"metadata": {"path": str(folder)}})
    t0 = time.perf_counter()
    client.execute()
    return nb, time.perf_counter() - t0


def text_of(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                out.append(o.get("text", ""))
            elif "data" in o:
                data = o["data"]  # a Markdown display counts by its text, not its repr
                out.append(str(data.get("text/markdown", data.get("text/plain", ""))))
    return "\n".join(out)


def pictures(nb) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for cell in nb.cells for o in cell.get("outputs", [])
            if "data" in o and "image/png" in o["data"]]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks in notebooks/"
    missing = set(EXPECTED) - {p.name for p in NOTEBOOKS}
    assert not missing, f"EXPECTED names notebooks that do not exist: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean_and_starts_with_one_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them before committing"
    first = nb.cells[0]
    assert first.cell_type == "code", f"{path.name} must start with its setup cell"
    for needle in ("REPO_URL", "google.colab", "seed_everything", "resolve_mode", "VRNKIT_NOTEBOOK_SMOKE", "DRIVE"):
        assert needle in first.source, f"{path.name}: the setup cell lacks {needle}"
    assert not any(re.search(r"pip\W{0,5}install", c.source) for c in code[1:]), \
        f"{path.name}: only the setup cell installs anything"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_links_to_colab_and_clones_the_one_repository(path):
    """The repository URL lives in vrnkit.config; every notebook's setup cell and Colab link, and the
    README's link to the notebook, must say the same (a Colab session clones what the cell names)."""
    from vrnkit.config import COLAB_URL, REPO_URL

    cells = nbformat.read(path, as_version=4).cells
    setup, title = cells[0].source, cells[1].source
    assert f'REPO_URL = "{REPO_URL}"' in setup, f"{path.name}: REPO_URL differs from vrnkit.config.REPO_URL"
    assert COLAB_URL + path.name in setup, f"{path.name}: its setup cell lacks its Open-in-Colab link"
    assert f"]({COLAB_URL + path.name})" in title, f"{path.name}: its title cell lacks the Open-in-Colab badge"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"]({COLAB_URL + path.name})" in readme, f"README.md lacks the Open-in-Colab link of {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_end_to_end(path, tmp_path, monkeypatch):
    if path.name in PHOTOS:
        pytest.importorskip("dlib", reason="the photos extra (pip install 'vrnkit[photos]') is part of `make test`")
    nb, seconds = run_notebook(path, tmp_path, monkeypatch)
    print(f"{path.name}: {seconds:.1f} s")
    text = text_of(nb)
    assert re.search(r"vrnkit quick mode on \w+ \(smoke-test sizes\)", text), "the setup cell's mode banner is missing"
    assert "(64, 64, 64)" in text  # the cpu preset that quick mode resolved
    assert len(pictures(nb)) >= 3, "a notebook about pictures shows too few of them"
    expected = EXPECTED.get(path.name, {})
    for f in expected.get("files", []):
        assert (tmp_path / f).is_file() and (tmp_path / f).stat().st_size > 0, f"{path.name} did not write {f}"
    for needle in expected.get("text", []):
        assert needle in text, f"{path.name}: expected output containing {needle!r}"
    if path.name in CHECKS:
        CHECKS[path.name](text, tmp_path)


def test_dataset_notebook_switches_to_real_data_when_a_path_is_set(tmp_path, monkeypatch):
    from test_datasets_real import make_300wlp_fixture

    from vrnkit.datasets.shards import read_index

    root, model_dir = make_300wlp_fixture(tmp_path / "fixture", n=6)
    run = tmp_path / "run"
    run.mkdir()
    nb, _ = run_notebook(ROOT / "notebooks" / "01_synthfaces.ipynb", run, monkeypatch,
                         VRNKIT_REAL_DATA=root, VRNKIT_MORPHABLE_MODEL=model_dir)
    converted = run / "data" / "300wlp-cpu"
    index = read_index(converted)
    assert len(index) == 6 and set(index["source"]) == {"300w-lp"}
    assert not list((run / "data").glob("synth-300wlp-*")), "no synthetic set is made when real data is used"
    text = text_of(nb)
    assert "converting 300wlp" in text and "6 samples in 1 shard" in text
    assert (run / OUT / "01_gallery.png").is_file() and (run / OUT / "01_overlay.png").is_file()


def test_photo_notebook_reconstructs_a_photo_file(tmp_path, monkeypatch):
    """Notebook 07 with PHOTO set (through VRNKIT_PHOTO) to a JPEG stored sideways, as phones do:
    it reads the file upright, finds her face, and names its files after the photo."""
    from PIL import Image
    from skimage.data import astronaut

    pytest.importorskip("dlib", reason="the photos extra (pip install 'vrnkit[photos]') is part of `make test`")
    upright = astronaut()[:400]  # 512 wide, 400 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show": the pixels are stored turned counter-clockwise
    photo = tmp_path / "me.jpg"
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(photo, exif=exif, quality=95)
    run = tmp_path / "run"
    run.mkdir()
    # Then the upload button, as a click would work it: the photo's bytes as ipywidgets 8 delivers them.
    upload = (f"on_upload({{'new': ({{'name': 'upload.jpg', 'content': memoryview(open({str(photo)!r}, 'rb').read())}},)}})\n"
              "print('uploaded ->', UPLOADED, '|', result.outputs)")
    nb, _ = run_notebook(ROOT / "notebooks" / "07_your_own_photo.ipynb", run, monkeypatch, then=upload,
                         VRNKIT_PHOTO=photo)
    text = text_of(nb)
    assert f"uploaded -> {Path('out/notebooks/upload.jpg')}" in text, text[-2000:]
    assert (run / OUT / "upload.jpg").read_bytes() == photo.read_bytes()
    assert "me: 512 x 400 pixels" in text  # upright: the file's pixels are 400 wide and 512 high
    for ext in ("obj", "ply", "glb", "json", "png"):
        assert (run / OUT / f"07_me.{ext}").is_file(), f"07_me.{ext} was not written"
    assert not list((run / OUT).glob("07_astronaut.*")), "with a photo file, nothing is named after the astronaut"
    check_photo(text, run, name="me")
