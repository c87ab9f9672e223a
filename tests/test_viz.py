"""vrnkit.viz: slices, slice widget, overlays, k3d plots and snapshots, matplotlib mesh pictures.

References are analytic (boxes, flat squares with a known light), the SynthFaces renderer's own
landmarks, and a real browser (headless Chromium) for the k3d snapshot.
"""
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vrnkit import meshviz, viz  # noqa: E402
from vrnkit.metrics import front_surface  # noqa: E402
from vrnkit.config import VolumeSpec  # noqa: E402

SPEC = VolumeSpec(depth=16, height=8, width=10, depth_scale=2.0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def box_volume():
    """Inside: d in [4, 12), y in [2, 6), x in [3, 8)."""
    vol = np.zeros(SPEC.shape, bool)
    vol[4:12, 2:6, 3:8] = True
    return vol


def last_image(ax):
    return np.asarray(ax.images[-1].get_array())


# ---------------------------------------------------------------------------------------------
# Slices

def test_default_slices_cut_through_the_middle_of_the_solid():
    # d: (4 + 11) // 2; rows 2..5 have their centroid at y = 4.0 (cell 4), columns 3..7 at x = 5.5 (cell 5).
    assert viz.default_slices(box_volume()) == (7, 4, 5)
    assert viz.default_slices(np.zeros(SPEC.shape)) == (8, 4, 5)  # empty: the centre


def test_volume_slices_shows_the_three_cuts_with_depth_to_scale():
    vol = box_volume()
    fig = viz.volume_slices(vol, spec=SPEC, slices=(5, 3, 4))
    axes = fig.axes
    assert len(axes) == 3
    np.testing.assert_array_equal(last_image(axes[0]), vol[5])  # (H, W): the image plane
    np.testing.assert_array_equal(last_image(axes[1]), vol[:, 3, :])  # (D, W): from above
    np.testing.assert_array_equal(last_image(axes[2]), vol[:, :, 4].T)  # (H, D): from the side
    # A slice is 1 / depth_scale pixel deep: the d axis is drawn at that scale.
    assert axes[0].get_aspect() == 1.0
    assert axes[1].get_aspect() == pytest.approx(1 / SPEC.depth_scale)
    assert axes[2].get_aspect() == pytest.approx(SPEC.depth_scale)
    # Front of the face (high d) is up in the view from above, right in the view from the side.
    assert axes[1].images[-1].origin == "lower"
    x0, x1, y0, y1 = axes[2].images[-1].get_extent()
    assert (x0, x1) == (0, SPEC.depth) and y0 > y1


def test_volume_slices_draws_the_crop_under_the_image_plane():
    image = np.random.default_rng(0).integers(0, 255, (8, 10, 3), dtype=np.uint8)
    soft = box_volume() * 0.8
    fig = viz.volume_slices(soft, image=image, spec=SPEC)
    ax = fig.axes[0]
    assert len(ax.images) == 2
    np.testing.assert_array_equal(ax.images[0].get_array(), image)
    np.testing.assert_allclose(last_image(ax), soft[7])  # default: d = 7
    alpha = np.asarray(ax.images[-1].get_alpha())
    assert alpha.shape == (8, 10) and alpha.max() > 0 and alpha[soft[7] == 0].max() == 0  # see-through outside


def test_volume_slices_accepts_torch_and_checks_shapes():
    torch = pytest.importorskip("torch")
    fig = viz.volume_slices(torch.from_numpy(box_volume()), spec=SPEC)
    assert len(fig.axes) == 3
    with pytest.raises(ValueError, match="does not match the spec"):
        viz.volume_slices(np.zeros((4, 4, 4)), spec=SPEC)
    with pytest.raises(ValueError, match=r"\(D, H, W\)"):
        viz.volume_slices(np.zeros((1, 1, 4, 4, 4)))
    with pytest.raises(ValueError, match="image is 4x4"):
        viz.volume_slices(box_volume(), image=np.zeros((4, 4, 3)), spec=SPEC)
    with pytest.raises(ValueError, match="inside the volume"):
        viz.volume_slices(box_volume(), slices=(16, 0, 0), spec=SPEC)


def test_slice_widget_redraws_the_slice_the_slider_picks():
    pytest.importorskip("ipywidgets")
    vol = np.random.default_rng(1).random(SPEC.shape).astype(np.float32)
    w = viz.slice_widget(vol, spec=SPEC, axis="d", index=2)
    ax = w.figure.axes[0]
    np.testing.assert_array_equal(last_image(ax), vol[2])
    w.index_slider.value = 9
    np.testing.assert_array_equal(last_image(w.figure.axes[0]), vol[9])
    assert w.index_slider.max == SPEC.depth - 1
    w.axis_buttons.value = 1  # y: seen from above
    assert w.index_slider.max == SPEC.height - 1
    y = w.index_slider.value
    np.testing.assert_array_equal(last_image(w.figure.axes[0]), vol[:, y, :])
    w.index_slider.value = 0 if y else 1
    np.testing.assert_array_equal(last_image(w.figure.axes[0]), vol[:, w.index_slider.value, :])
    w.axis_buttons.value = 2  # x: seen from the side
    np.testing.assert_array_equal(last_image(w.figure.axes[0]), vol[:, :, w.index_slider.value].T)
    w.axis_buttons.value = 0  # back to d: the slider remembers the slice it was on
    assert w.index_slider.value == 9
    assert len(w.output.outputs) <= 1  # each redraw replaces the picture


def test_slice_widget_names_a_missing_ipywidgets(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    with pytest.raises(ImportError, match="pip install ipywidgets"):
        viz.slice_widget(box_volume(), spec=SPEC)


# ---------------------------------------------------------------------------------------------
# Overlays

def test_front_surface_is_the_front_face_of_the_frontmost_inside_voxel():
    z = front_surface(box_volume(), SPEC).numpy()
    assert z.shape == (8, 10) and z.dtype == np.float32
    inside = np.zeros((8, 10), bool)
    inside[2:6, 3:8] = True
    np.testing.assert_array_equal(np.isnan(z), ~inside)
    np.testing.assert_allclose(z[inside], 12 / 2.0)  # slice 11's front face: (11 + 1) / depth_scale


def test_overlay_volume_outlines_the_footprint_and_shows_depth():
    image = np.full((8, 10, 3), 128, np.uint8)
    fig = viz.overlay_volume(image, box_volume(), spec=SPEC)
    a, b = fig.axes[:2]
    assert len(fig.axes) == 3  # two panels and the depth colour bar
    assert "20 of 80 pixels" in a.get_title()  # 4 rows x 5 columns
    assert len(a.collections) >= 1  # the footprint's outline
    depth = b.images[-1].get_array()
    np.testing.assert_allclose(depth.filled(np.nan), front_surface(box_volume(), SPEC).numpy())


def test_a_synthfaces_target_sits_on_its_face():
    """The slab's volume covers the face's visible landmarks at their depth (the renderer's own
    landmarks are the reference): what overlay_volume shows a student is the real alignment."""
    from vrnkit.synthfaces.dataset import make_sample
    from vrnkit.voxel import Slab, slab_to_volume

    spec = VolumeSpec.preset("cpu")
    sample, _ = make_sample("synth-florence", 2, spec=spec)  # frontal, neutral
    vol = slab_to_volume(Slab(sample["front"], sample["mask"], sample["back"], sample["affine"]), spec)
    z = front_surface(vol, spec).numpy()
    lm = sample["landmarks"]
    x, y = np.floor(lm[:, 0]).astype(int), np.floor(lm[:, 1]).astype(int)
    inner = np.arange(17, 68)  # brows, nose, eyes, mouth (the jaw line is on the outline)
    assert np.isfinite(z[y[inner], x[inner]]).all()
    err = np.abs(z[y[inner], x[inner]] - lm[inner, 2])
    assert np.median(err) < 1.0, np.median(err)  # crop pixels; a slice is 0.5 px
    fig = viz.overlay_volume(sample["image"], vol, spec=spec)
    assert len(fig.axes) == 3


# ---------------------------------------------------------------------------------------------
# Meshes

def square(n=2, z=5.0, size=10.0):
    """A flat (n x n cells) square in the z = const plane, facing the viewer, image space."""
    g = np.linspace(0, size, n + 1)
    xx, yy = np.meshgrid(g, g)
    v = np.column_stack([xx.ravel(), yy.ravel(), np.full(xx.size, z)])
    f = []
    for i in range(n):
        for j in range(n):
            a = i * (n + 1) + j
            f += [[a, a + 1, a + n + 1], [a + 1, a + n + 2, a + n + 1]]
    return v, np.array(f)


def tetrahedron():
    v = np.array([[0, 0, 0], [4, 0, 0], [0, 4, 0], [0, 0, 4]], float)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])  # outward in image space (y down)
    return v, f


def test_pack_colours_makes_0xRRGGBB():
    c8 = np.array([[255, 0, 0], [0, 128, 255], [1, 2, 3]], np.uint8)
    packed = meshviz.pack_colours(c8, 3)
    assert packed.dtype == np.uint32
    assert packed.tolist() == [0xFF0000, 0x0080FF, 0x010203]
    np.testing.assert_array_equal(meshviz.pack_colours(c8 / 255.0, 3), packed)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        meshviz.pack_colours(c8[:2], 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        meshviz.pack_colours(c8 * 2.0, 3)


def test_mesh_k3d_holds_float32_vertices_y_up_and_uint32_faces():
    pytest.importorskip("k3d")
    v, f = tetrahedron()
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], np.uint8)
    plot = meshviz.mesh_k3d(v, f, colours=colours, name="tet")
    assert type(plot).__name__ == "Plot" and len(plot.objects) == 1
    mesh = plot.objects[0]
    verts, idx, cols = np.asarray(mesh.vertices), np.asarray(mesh.indices), np.asarray(mesh.colors)
    assert verts.dtype == np.float32 and idx.dtype == np.uint32 and cols.dtype == np.uint32
    np.testing.assert_array_equal(verts, (v * [1, -1, 1]).astype(np.float32))  # y down -> y up
    np.testing.assert_array_equal(idx, f[:, ::-1])  # a mirror: winding reversed
    assert cols.tolist() == [0xFF0000, 0x00FF00, 0x0000FF, 0x0A141E]
    assert mesh.name == "tet"
    # Normals still point out of the solid in the y-up frame (signed volume > 0).
    a, b, c = (verts[idx[:, k]].astype(float) for k in range(3))
    assert np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6 > 0
    # The camera looks at the mesh from the viewer's side (+z), y up.
    cam = np.asarray(plot.camera, float)
    eye, target, up = cam[:3], cam[3:6], cam[6:]
    assert eye[2] > verts[:, 2].max() and np.allclose(eye[:2], target[:2]) and np.allclose(up, [0, 1, 0])
    # Added to an existing plot.
    assert len(meshviz.mesh_k3d(v, f, plot=plot).objects) == 2


def test_mesh_k3d_colours_values_with_a_colour_bar_and_frames_several_meshes():
    pytest.importorskip("k3d")
    v, f = tetrahedron()
    plot = meshviz.mesh_k3d(v, f, values=[0.0, 1.0, 2.0, 3.0], value_range=(0, 2), opacity=0.5)
    mesh = plot.objects[0]
    assert np.allclose(mesh.attribute, [0, 1, 2, 3]) and list(mesh.color_range) == [0.0, 2.0]
    assert plot.colorbar_object_id == mesh.id and mesh.opacity == 0.5
    with pytest.raises(ValueError, match="one finite number per vertex"):
        meshviz.mesh_k3d(v, f, values=[0.0, np.nan, 1.0, 2.0])
    far = v + [100.0, 0.0, 0.0]
    meshviz.mesh_k3d(far, f, plot=plot)
    meshviz.frame_k3d(plot, np.vstack([v, far]))
    target = np.asarray(plot.camera, float)[3:6]
    assert np.isclose(target[0], (v[:, 0].min() + far[:, 0].max()) / 2)  # between the two meshes


def test_mesh_k3d_names_a_missing_k3d(monkeypatch):
    monkeypatch.setitem(sys.modules, "k3d", None)
    with pytest.raises(ImportError, match="pip install k3d"):
        meshviz.mesh_k3d(*tetrahedron())


def test_save_k3d_html_writes_a_self_contained_snapshot(tmp_path):
    pytest.importorskip("k3d")
    plot = meshviz.mesh_k3d(*tetrahedron())
    path = meshviz.save_k3d_html(plot, tmp_path / "sub" / "tet.html")
    text = Path(path).read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html>") and "CreateK3DAndLoadBinarySnapshot" in text
    assert "http://" not in text.split("<script", 1)[0]  # nothing fetched before the inlined scripts
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["tet.html"]  # no temporary file left
    assert os.stat(path).st_mode & 0o044  # readable by others, like any file the user writes


def test_render_mesh_shades_a_flat_square_as_lambert_predicts():
    v, f = square()
    colour = np.array([200, 100, 50], np.uint8)
    light = np.array([0.0, 0.0, 1.0])
    img = meshviz.render_mesh(v, f, colours=np.tile(colour, (len(v), 1)), size=64, light=light)
    assert img.shape == (64, 64, 3) and img.dtype == np.float32
    # Facing the light: full Lambert, colour * (0.25 + 0.75 * 1).
    np.testing.assert_allclose(img[32, 32], colour / 255.0, atol=1e-3)
    np.testing.assert_allclose(img[0, 0], 1.0)  # the margin is background
    tilted = meshviz.render_mesh(v, f, size=64, light=[0.0, 1.0, 1.0])  # 45 degrees: cos = 0.707
    np.testing.assert_allclose(tilted[32, 32], 0.78 * (0.25 + 0.75 * np.sqrt(0.5)), atol=1e-3)
    # Turned by 60 degrees about the vertical axis, the square looks half as wide.
    side = meshviz.render_mesh(v, f, size=64, yaw=60, margin=0.0)
    cols = np.nonzero((side < 0.99).any((0, 2)))[0]
    rows = np.nonzero((side < 0.99).any((1, 2)))[0]
    assert len(cols) == pytest.approx(len(rows) * 0.5, abs=2)


def test_mesh_picture_has_one_panel_per_yaw():
    v, f = tetrahedron()
    fig = meshviz.mesh_picture(v, f, size=32, yaws=(0, 30, -30, 90))
    assert len(fig.axes) == 4
    assert all(ax.images[0].get_array().shape == (32, 32, 3) for ax in fig.axes)


def test_overlay_mesh_blends_the_mesh_where_it_covers_the_image():
    v, f = square(size=5.0)  # covers pixels 0..4 of a 10 x 10 image
    image = np.zeros((10, 10, 3), np.uint8)
    fig = meshviz.overlay_mesh(image, v + [2, 3, 0], f, colours=np.ones((len(v), 3)), alpha=0.5, light=[0, 0, 1])
    out = np.asarray(fig.axes[0].images[-1].get_array())
    covered = (out > 0).any(-1)
    expect = np.zeros((10, 10), bool)
    expect[3:8, 2:7] = True  # pixel centres inside [2, 7) x [3, 8)
    np.testing.assert_array_equal(covered, expect)
    np.testing.assert_allclose(out[5, 4], 0.5)  # half image (0), half lit white (1)


# ---------------------------------------------------------------------------------------------
# A real browser: does the k3d snapshot of a face show the face?

def test_k3d_snapshot_of_a_face_renders_in_headless_chromium(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    import browser_check

    pytest.importorskip("k3d")
    chromium = browser_check.find_chromium()
    if chromium is None:
        message = "Chromium is not installed (apt-get install -y chromium); the browser check needs it"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs it, so CI must have it")
        pytest.skip(message)
    face = browser_check.face_snapshot(tmp_path)
    shot = browser_check.screenshot(face["html"], tmp_path / "face.png", chromium=chromium)
    stats = browser_check.analyse(shot["png"], colours=face["colours"])
    assert shot["state"].startswith("ready"), (shot["state"], shot["console"])
    assert browser_check.face_is_visible(stats), stats
    # The screenshot's face pixels have the mesh's colours (skin, shaded), not a grey default.
    assert stats["mean_colour"][0] > stats["mean_colour"][2] + 20, stats
