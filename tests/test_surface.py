"""Tests for vrnkit.surface against references: analytic volumes, scikit-image on the whole
volume, trimesh (reloading, volumes, closest points) and brute force over all triangles."""
import os

import numpy as np
import pytest

trimesh = pytest.importorskip("trimesh")
from skimage.measure import marching_cubes  # noqa: E402

from vrnkit.config import VolumeSpec  # noqa: E402
from vrnkit.geometry import CropFrame  # noqa: E402
from vrnkit.surface import (  # noqa: E402
    discretisation_error,
    export_mesh,
    mesh_crop_to_photo,
    mesh_to_trimesh,
    point_to_mesh_distance,
    sample_vertex_colours,
    volume_to_mesh,
)

PAPER = VolumeSpec.preset("paper")


def voxel_centres(spec):
    """Crop coordinates (x, y, z) of all voxel centres, each (D, H, W) float64."""
    D, H, W = spec.shape
    z = ((np.arange(D) + 0.5) / spec.depth_scale)[:, None, None]
    y = (np.arange(H) + 0.5)[None, :, None]
    x = (np.arange(W) + 0.5)[None, None, :]
    return x, y, z


def ellipsoid_radius(spec, centre, axes):
    """Normalised ellipsoid 'radius' at every voxel centre: < 1 inside."""
    x, y, z = voxel_centres(spec)
    return np.sqrt(((x - centre[0]) / axes[0]) ** 2 + ((y - centre[1]) / axes[1]) ** 2
                   + ((z - centre[2]) / axes[2]) ** 2)


def skimage_in_crop(volume, level, depth_scale):
    """scikit-image on the whole volume, mapped to crop coordinates by the README's convention."""
    v, f, _, _ = marching_cubes(np.asarray(volume, np.float32), level)
    return np.stack([v[:, 2] + 0.5, v[:, 1] + 0.5, (v[:, 0] + 0.5) / depth_scale], 1), f


def sorted_rows(a):
    """Rows of an integer array sorted lexicographically."""
    a = np.asarray(a)
    return a[np.lexsort(a.T[::-1])]


# ---------------------------------------------------------------------------------------------
# volume_to_mesh

def test_sphere_at_paper_resolution_lies_on_the_true_surface():
    centre, radius = np.array([90.0, 100.0, 50.0]), 40.0
    vol = ellipsoid_radius(PAPER, centre, (radius,) * 3) < 1
    v, f = volume_to_mesh(vol, PAPER)
    assert v.dtype == np.float32 and f.dtype == np.int32 and v.shape[1] == 3 and f.shape[1] == 3
    err = np.abs(np.linalg.norm(v - centre, axis=1) - radius)
    assert err.max() < 1.0  # within one voxel (1 px in x, y; 0.5 px in z)
    assert err.mean() < 0.3
    mesh = trimesh.Trimesh(v, f, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward normals
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * radius ** 3, rel=0.02)


@pytest.mark.parametrize("soft", [False, True])
def test_bounding_box_path_equals_skimage_on_whole_volume(soft):
    r = ellipsoid_radius(PAPER, (80.3, 110.7, 47.1), (50.0, 65.0, 30.0))
    vol = 1 / (1 + np.exp((r - 1) * 25)) if soft else (r < 1)
    vol = vol.astype(np.float32)
    v, f = volume_to_mesh(vol, PAPER)
    ref_v, ref_f = skimage_in_crop(vol, 0.5, PAPER.depth_scale)
    assert v.shape == ref_v.shape and f.shape == ref_f.shape
    # Match every reference vertex to ours (a one-to-one map), then compare the triangles.
    from scipy.spatial import cKDTree

    dist, match = cKDTree(v).query(ref_v)
    assert dist.max() < 1e-4
    assert len(np.unique(match)) == len(v)
    # Same triangles with the same winding: skimage's (slice, row, col) faces, read in (x, y, z)
    # order (a mirror), are outward, and we keep them as they are.
    np.testing.assert_array_equal(sorted_rows(cyclic_min_first(f)), sorted_rows(cyclic_min_first(match[ref_f])))


def cyclic_min_first(faces):
    """Rotate each triangle (keeping its winding) so that its smallest index comes first."""
    faces = np.asarray(faces)
    k = faces.argmin(1)
    idx = (k[:, None] + np.arange(3)) % 3
    return np.take_along_axis(faces, idx, 1)


def test_level_of_a_distance_field():
    # A signed distance field R - |p - c| (in crop pixels): the iso-surface at level t is the
    # sphere of radius R - t, whatever t.
    spec = VolumeSpec(depth=64, height=40, width=40, depth_scale=2.0)
    x, y, z = voxel_centres(spec)
    c = np.array([20.0, 20.0, 16.0])
    sdf = 12.0 - np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)
    for level, radius in ((0.0, 12.0), (-3.0, 15.0), (4.0, 8.0)):
        v, f = volume_to_mesh(sdf, spec, level=level)
        r = np.linalg.norm(v - c, axis=1)
        assert np.abs(r - radius).max() < 0.1, level


def test_voxels_exactly_at_the_level_give_no_degenerate_triangles():
    spec = VolumeSpec(depth=40, height=30, width=30, depth_scale=2.0)
    x, y, z = voxel_centres(spec)
    vol = np.round(10 - np.sqrt((x - 15) ** 2 + (y - 15) ** 2 + (z - 10) ** 2))  # many voxels == 3
    assert (vol == 3).sum() > 100
    v, f = volume_to_mesh(vol, spec, level=3)
    assert trimesh.Trimesh(v, f, process=False).area_faces.min() > 0
    ref_v, _, _, _ = marching_cubes(vol.astype(np.float32), 3, allow_degenerate=False)
    assert len(v) == len(ref_v)


def test_depth_scale_maps_slices():
    vol = np.zeros((40, 20, 20), bool)
    vol[10:30, 5:15, 5:15] = True
    for ds in (1.0, 2.0, 4.0):
        v, _ = volume_to_mesh(vol, depth_scale=ds)
        # Binary faces lie halfway between inside and outside centres: x, y in [5, 15], slices 9.5..29.5
        np.testing.assert_allclose([v[:, 0].min(), v[:, 0].max()], [5.0, 15.0], atol=1e-5)
        np.testing.assert_allclose([v[:, 2].min(), v[:, 2].max()], [10.0 / ds, 30.0 / ds], atol=1e-5)
    v_default, _ = volume_to_mesh(vol)
    np.testing.assert_allclose([v_default[:, 2].min(), v_default[:, 2].max()], [5.0, 15.0], atol=1e-5)


def test_solid_touching_the_border_is_closed():
    spec = VolumeSpec(depth=30, height=20, width=20, depth_scale=2.0)
    vol = np.zeros(spec.shape, np.float32)
    vol[:, 4:12, :] = 1.0  # touches the front, back, left and right of the volume
    vol[20:, :, 15:] = 1.0  # and a corner block touching three borders
    v, f = volume_to_mesh(vol, spec)
    mesh = trimesh.Trimesh(v, f, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    # The caps lie on the volume's faces (padding with 0 puts them there).
    assert v[:, 0].min() == pytest.approx(0.0) and v[:, 0].max() == pytest.approx(20.0)
    assert v[:, 2].min() == pytest.approx(0.0) and v[:, 2].max() == pytest.approx(15.0)


def test_whole_volume_inside_is_closed():
    v, f = volume_to_mesh(np.ones((6, 5, 4)), depth_scale=1.0)
    mesh = trimesh.Trimesh(v, f, process=False)
    assert mesh.is_watertight and mesh.volume > 0


def test_torch_tensor_input():
    torch = pytest.importorskip("torch")
    vol = ellipsoid_radius(VolumeSpec(depth=20, height=12, width=12), (6, 6, 5), (4, 4, 3)) < 1
    v1, f1 = volume_to_mesh(torch.from_numpy(vol.astype(np.float32)), depth_scale=2.0)
    v2, f2 = volume_to_mesh(vol, depth_scale=2.0)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(f1, f2)


@pytest.mark.parametrize("volume, match", [
    (np.zeros((8, 8, 8)), "no voxel above the level"),
    (np.full((8, 8, 8), 0.5), "no voxel above the level"),
    (np.ones((8, 8)), r"expected a \(D, H, W\) real array.*shape \(8, 8\)"),
    (np.ones((1, 8, 8, 8)), r"expected a \(D, H, W\) real array.*shape \(1, 8, 8, 8\).*batch"),
    (np.ones((8, 8, 8), complex), r"expected a \(D, H, W\) real array.*complex"),
    (np.ones((8, 8, 8), object), r"expected a \(D, H, W\) real array.*object"),
    (np.ones((0, 8, 8)), "non-empty"),
])
def test_bad_volumes(volume, match):
    with pytest.raises(ValueError, match=match):
        volume_to_mesh(volume)


def test_non_finite_and_mismatched_volumes():
    vol = np.zeros((8, 8, 8), np.float32)
    vol[2:5, 2:5, 2:5] = 1
    for bad in (np.nan, np.inf, -np.inf):
        v = vol.copy()
        v[0, 0, 0] = bad
        with pytest.raises(ValueError, match="finite"):
            volume_to_mesh(v)
    with pytest.raises(ValueError, match=r"does not match the spec"):
        volume_to_mesh(vol, PAPER)
    with pytest.raises(ValueError, match="depth_scale"):
        volume_to_mesh(vol, depth_scale=0)
    with pytest.raises(ValueError, match="no voxel above the level 2"):
        volume_to_mesh(vol, level=2)


# ---------------------------------------------------------------------------------------------
# Photo mapping and colours

def test_mesh_crop_to_photo_inverts_the_frame():
    frame = CropFrame(scale=0.6, tx=-12.0, ty=7.5, tz=30.0)
    photo = np.random.default_rng(0).uniform(0, 300, (50, 3))
    crop = frame.photo_to_crop(photo).astype(np.float32)
    out = mesh_crop_to_photo(crop, frame)
    assert out.dtype == np.float32 and out.shape == (50, 3)
    np.testing.assert_allclose(out, photo, rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        mesh_crop_to_photo(crop[:, :2], frame)


def test_sample_vertex_colours_is_bilinear_at_pixel_centres():
    H, W = 40, 60
    rows, cols = np.mgrid[:H, :W]
    img = np.stack([cols * 4, rows * 6, np.full_like(rows, 100)], -1).astype(np.uint8)  # linear in (col, row)
    rng = np.random.default_rng(1)
    pts = np.column_stack([rng.uniform(0.5, W - 0.5, 200), rng.uniform(0.5, H - 0.5, 200), rng.normal(size=200)])
    out = sample_vertex_colours(pts, img)
    assert out.dtype == np.uint8 and out.shape == (200, 3)
    expect = np.column_stack([4 * (pts[:, 0] - 0.5), 6 * (pts[:, 1] - 0.5), np.full(200, 100.0)])
    assert np.abs(out - expect).max() <= 0.5 + 1e-9
    # Exactly at a pixel centre: that pixel. Outside: clamped to the border pixel.
    np.testing.assert_array_equal(sample_vertex_colours([[3.5, 7.5]], img)[0], img[7, 3])
    np.testing.assert_array_equal(sample_vertex_colours([[-20.0, 1000.0, 0]], img)[0], img[H - 1, 0])
    # A float image in [0, 1] gives the same colours.
    np.testing.assert_array_equal(sample_vertex_colours(pts, img / 255.0), out)


def test_sample_vertex_colours_checks_inputs():
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(H, W, 3\).*\(10, 10\)"):
        sample_vertex_colours([[1.0, 1.0]], img[..., 0])
    with pytest.raises(ValueError, match=r"\[0, 1\].*255"):
        sample_vertex_colours([[1.0, 1.0]], img.astype(np.float32) + 200)
    with pytest.raises(ValueError, match="NaN"):
        sample_vertex_colours([[np.nan, 1.0]], img)


# ---------------------------------------------------------------------------------------------
# Export

@pytest.fixture(scope="module")
def sphere():
    spec = VolumeSpec(depth=40, height=20, width=20, depth_scale=2.0)
    vol = ellipsoid_radius(spec, (10, 10, 10), (7, 7, 7)) < 1
    v, f = volume_to_mesh(vol, spec)
    colours = np.random.default_rng(2).integers(0, 256, (len(v), 3)).astype(np.uint8)
    return v, f, colours


def test_mesh_to_trimesh_flips_y_and_keeps_normals_outward(sphere):
    v, f, c = sphere
    m = mesh_to_trimesh(v, f, colours=c)
    np.testing.assert_allclose(m.vertices, v * np.array([1, -1, 1]), atol=1e-6)
    np.testing.assert_array_equal(m.faces, f[:, ::-1])
    assert m.volume > 0 and m.is_winding_consistent and m.is_watertight
    # Outward: each face normal points away from the centre (10, -10, 10) in the y-up frame.
    out = ((m.triangles_center - [10, -10, 10]) * m.face_normals).sum(1)
    assert (out > 0).all()
    np.testing.assert_array_equal(m.visual.vertex_colors[:, :3], c)


@pytest.mark.parametrize("ext", [".obj", ".ply", ".glb"])
def test_export_reloads_with_same_geometry_and_colours(tmp_path, sphere, ext):
    v, f, c = sphere
    path = export_mesh(tmp_path / f"face{ext}", v, f, colours=c)
    assert os.listdir(tmp_path) == [f"face{ext}"]  # no temporary file left behind
    m = trimesh.load(path, force="mesh", process=False)
    np.testing.assert_allclose(m.vertices * [1, -1, 1], v, atol=1e-5)  # undo the y flip
    np.testing.assert_array_equal(m.faces, f[:, ::-1])
    np.testing.assert_array_equal(m.visual.vertex_colors[:, :3], c)
    assert m.volume > 0 and m.is_winding_consistent


def test_obj_vertex_colours_are_unit_floats(tmp_path, sphere):
    v, f, c = sphere
    export_mesh(tmp_path / "m.obj", v, f, colours=c)
    rows = [ln.split() for ln in (tmp_path / "m.obj").read_text().splitlines() if ln.startswith("v ")]
    assert len(rows) == len(v) and all(len(r) == 7 for r in rows)
    rgb = np.array([r[4:] for r in rows], float)
    assert rgb.min() >= 0 and rgb.max() <= 1
    np.testing.assert_allclose(rgb * 255, c, atol=1e-3)
    export_mesh(tmp_path / "plain.obj", v, f)  # no colours: "v x y z"
    first = next(ln for ln in (tmp_path / "plain.obj").read_text().splitlines() if ln.startswith("v "))
    assert len(first.split()) == 4


def test_export_errors(tmp_path, sphere):
    v, f, c = sphere
    with pytest.raises(ValueError, match=r"unsupported.*\.stl.*\.obj, \.ply, \.glb"):
        export_mesh(tmp_path / "m.stl", v, f)
    with pytest.raises(ValueError, match=r"colours must have shape"):
        export_mesh(tmp_path / "m.ply", v, f, colours=c[:-1])
    with pytest.raises(FileNotFoundError):
        export_mesh(tmp_path / "missing" / "m.ply", v, f)
    assert os.listdir(tmp_path) == []


def test_bad_meshes_are_refused(tmp_path, sphere):
    v, f, _ = sphere
    bad_v = v.copy()
    bad_v[3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite.*expected finite"):
        export_mesh(tmp_path / "m.obj", bad_v, f)
    with pytest.raises(ValueError, match=rf"index vertices 0..{len(v) - 1}; got indices in \[0, {len(v)}\]"):
        mesh_to_trimesh(v, np.vstack([f, [0, 1, len(v)]]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        point_to_mesh_distance(v[:3], bad_v, f)
    with pytest.raises(ValueError, match=r"points must have shape \(N, 3\); got shape \(3, 2\)"):
        point_to_mesh_distance(v[:3, :2], v, f)
    with pytest.raises(ValueError, match=r"faces index vertices"):
        point_to_mesh_distance(v[:3], v, f + 1)


# ---------------------------------------------------------------------------------------------
# Point-to-mesh distance

def brute_force_trimesh(points, vertices, faces):
    """Reference: trimesh's closest point on every triangle, minimum over all triangles."""
    tri = np.asarray(vertices, float)[faces]
    P = np.repeat(points, len(faces), 0)
    T = np.tile(tri, (len(points), 1, 1))
    cp = trimesh.triangles.closest_point(T, P)
    return np.linalg.norm(cp - P, axis=1).reshape(len(points), len(faces)).min(1)


def test_point_to_mesh_distance_equals_brute_force():
    s = trimesh.creation.icosphere(2)
    v = s.vertices * [10, 12, 8] + 20
    rng = np.random.default_rng(3)
    pts = np.vstack([rng.uniform(0, 40, (300, 3)), v[:20] + rng.normal(0, 0.3, (20, 3)), v[:5],
                     [[500.0, -300.0, 20.0]]])  # near, on, and far from the surface
    d = point_to_mesh_distance(pts, v, s.faces)
    assert d.dtype == np.float64 and d.shape == (len(pts),)
    np.testing.assert_allclose(d, brute_force_trimesh(pts, v, s.faces), atol=1e-9)
    np.testing.assert_allclose(d[-6:-1], 0, atol=1e-12)


def test_point_to_mesh_distance_with_uneven_triangles():
    # One huge triangle among small ones: k-nearest centroids alone would miss it.
    rng = np.random.default_rng(4)
    small = trimesh.creation.icosphere(1)
    v = np.vstack([small.vertices * 0.5 + [50, 0, 5], [[-100, -100, 0], [100, -100, 0], [0, 100, 0]]])
    f = np.vstack([small.faces, [[len(small.vertices), len(small.vertices) + 1, len(small.vertices) + 2]]])
    pts = rng.uniform(-60, 60, (200, 3))
    np.testing.assert_allclose(point_to_mesh_distance(pts, v, f), brute_force_trimesh(pts, v, f), atol=1e-9)


def test_point_triangle_cases():
    tri = np.array([[0.0, 0, 0], [4, 0, 0], [0, 4, 0]])
    f = np.array([[0, 1, 2]])
    pts = np.array([[1, 1, 3], [2, -2, 0], [-3, -4, 0], [3, 3, 1], [6, 0, 0]], float)
    expect = [3.0, 2.0, 5.0, np.sqrt(2 + 1), 2.0]  # above, beside an edge, past a vertex, past the hypotenuse
    np.testing.assert_allclose(point_to_mesh_distance(pts, tri, f), expect, atol=1e-12)
    # A degenerate (zero-area) triangle behaves as its longest edge.
    line = np.array([[0.0, 0, 0], [2, 0, 0], [4, 0, 0]])
    np.testing.assert_allclose(point_to_mesh_distance([[1, 3, 4]], line, f), [5.0], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Discretisation error

def sphere_in_spec(n, subdivisions=4):
    """A sphere of radius 0.25 n in the middle of an n x n x (200/192 n) volume, and the spec."""
    spec = VolumeSpec(depth=int(round(n * 200 / 192)), height=n, width=n, depth_scale=2.0)
    s = trimesh.creation.icosphere(subdivisions)
    centre = np.array([n / 2, n / 2, spec.depth_span / 2])
    return s.vertices * (0.25 * n) + centre, s.faces, spec, centre


def test_discretisation_error_shrinks_with_resolution():
    errors = []
    for n in (48, 96, 192):
        v, f, spec, centre = sphere_in_spec(n)
        # Landmark-like points: 36 and 45 on the equator, one diameter apart.
        lm = np.tile(centre, (68, 1))
        lm[36], lm[45] = centre - [0.25 * n, 0, 0], centre + [0.25 * n, 0, 0]
        e = discretisation_error(v, f, spec, landmarks=lm)
        assert e["interocular"] == pytest.approx(0.5 * n)
        assert e["mean"] < 0.35 and e["max"] < 1.0  # crop pixels: within a voxel
        assert e["distances"].shape == (len(v),)
        errors.append(e["mean_normalised"])
    assert errors[0] > 1.5 * errors[1] > 1.5 * 1.5 * errors[2]
    assert errors[2] < 0.002  # negligible next to VRN's NME (~0.06)


def test_discretisation_error_matches_an_analytic_voxelisation():
    # Same chain as discretisation_error, with the sphere voxelised analytically at voxel centres.
    v, f, spec, centre = sphere_in_spec(64)
    vol = ellipsoid_radius(spec, centre, (16.0,) * 3) < 1
    rv, rf = volume_to_mesh(vol, spec)
    d = point_to_mesh_distance(v, rv, rf)
    e = discretisation_error(v, f, spec)
    assert e["mean"] == pytest.approx(d.mean(), abs=0.05)


def test_discretisation_error_front_fill_and_landmark_indices():
    v, f, spec, centre = sphere_in_spec(64, subdivisions=3)
    idx = np.zeros(68, int)
    idx[36], idx[45] = np.argmin(v[:, 0]), np.argmax(v[:, 0])
    e = discretisation_error(v, f, spec, fill="front", back=centre[2] - 20, landmarks=idx)
    assert e["interocular"] == pytest.approx(np.ptp(v[:, 0]))
    front = (v[:, 2] - centre[2]) > 0.3 * 16  # front-facing part of the sphere
    assert e["distances"][front].max() < 1.0
    with pytest.raises(ValueError, match="68"):
        discretisation_error(v, f, spec, landmarks=v[:10])
