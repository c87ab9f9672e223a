import numpy as np
import pytest

from vrnkit.raster import check_mesh, fragments, rasterize, rasterize_numpy


def brute_force_cover(v, f, h, w):
    """Reference: per pixel centre and triangle, a float64 barycentric inside test."""
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    depth = np.full((h, w), -np.inf)
    count = np.zeros((h, w), int)
    for tri in f:
        a, b, c = v[tri]
        m = np.array([[b[0] - a[0], c[0] - a[0]], [b[1] - a[1], c[1] - a[1]]])
        if abs(np.linalg.det(m)) < 1e-12:
            continue
        inv = np.linalg.inv(m)
        l1 = inv[0, 0] * (xs - a[0]) + inv[0, 1] * (ys - a[1])
        l2 = inv[1, 0] * (xs - a[0]) + inv[1, 1] * (ys - a[1])
        inside = (l1 > 1e-9) & (l2 > 1e-9) & (l1 + l2 < 1 - 1e-9)
        z = a[2] + l1 * (b[2] - a[2]) + l2 * (c[2] - a[2])
        count += inside
        depth = np.where(inside & (z > depth), z, depth)
    return depth, count


def test_zbuffer_matches_brute_force_on_random_triangles():
    rng = np.random.default_rng(0)
    v = np.c_[rng.uniform(-5, 37, (60, 2)), rng.uniform(-10, 10, 60)]
    f = rng.integers(0, 60, (40, 3))
    r = rasterize(v, f, 32, 32)
    ref, count = brute_force_cover(v, f, 32, 32)
    # Compare where the reference is unambiguous (not within 1e-9 of an edge).
    strict = np.isfinite(ref)
    assert np.allclose(r.depth[strict], ref[strict], atol=1e-4)
    # Pixels the rasteriser covers but the strict reference does not lie on edges only.
    assert (r.mask & ~strict).sum() <= 3


def test_shared_edges_through_pixel_centres_are_covered_once():
    # A grid of squares with corners at pixel centres, split into two triangles each: every
    # interior pixel centre lies on edges or vertices, and must be covered exactly once.
    n = 8
    ys, xs = np.mgrid[0:n + 1, 0:n + 1]
    v = np.c_[xs.ravel() * 2 + 0.5, ys.ravel() * 2 + 0.5, np.zeros(xs.size)]
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    f = []
    for i in range(n):
        for j in range(n):
            a, b, c, d = idx[i, j], idx[i, j + 1], idx[i + 1, j], idx[i + 1, j + 1]
            f += [[a, b, d], [a, d, c]] if (i + j) % 2 else [[a, b, c], [b, d, c]]
    fr = fragments(v, np.array(f), 20, 20)
    counts = np.bincount(fr.pixel, minlength=400).reshape(20, 20)
    # Centres strictly inside the square [0.5, 16.5]^2 are covered exactly once.
    assert np.all(counts[1:16, 1:16] == 1)
    assert counts.max() == 1


def test_barycentrics_interpolate_vertex_values():
    v = np.array([[1.0, 1.0, 0.0], [30.0, 4.0, 10.0], [6.0, 28.0, 20.0]])
    r = rasterize(v, [[0, 1, 2]], 32, 32)
    ys, xs = np.mgrid[0:32, 0:32] + 0.5
    pos = r.interpolate(v[:, :2], [[0, 1, 2]])
    assert np.allclose(pos[r.mask], np.c_[xs[r.mask], ys[r.mask]], atol=1e-4)
    assert np.allclose(r.bary[r.mask].sum(-1), 1, atol=1e-6)


def test_winding_does_not_matter():
    v = np.array([[2.0, 2.0, 1.0], [20.0, 3.0, 2.0], [5.0, 25.0, 3.0]])
    a = rasterize(v, [[0, 1, 2]], 30, 30)
    b = rasterize(v, [[0, 2, 1]], 30, 30)
    assert np.array_equal(a.mask, b.mask) and np.allclose(a.depth, b.depth)


@pytest.mark.parametrize("vertices, faces, message", [
    (np.array([[0, 0, np.nan], [1, 0, 0], [0, 1, 0]]), [[0, 1, 2]], "NaN"),
    (np.zeros((3, 3)), np.zeros((0, 3), int), "no faces"),
    (np.zeros((3, 3)), [[0, 1, 3]], "index vertices"),
    (np.zeros((3, 2)), [[0, 1, 2]], r"\(N, 3\)"),
    (np.zeros((3, 3)), [[0, 1]], r"\(M, 3\)"),
])
def test_bad_meshes_are_refused(vertices, faces, message):
    with pytest.raises(ValueError, match=message):
        check_mesh(vertices, faces)


def test_equal_depths_go_to_the_lower_triangle_and_fragments_agree_with_the_zbuffer():
    rng = np.random.default_rng(3)
    v = np.c_[rng.uniform(0, 24, (30, 2)), rng.integers(0, 3, 30).astype(float)]  # many equal depths
    f = rng.integers(0, 30, (40, 3))
    f = np.concatenate([f, f])  # every triangle twice: the first copy must win
    r = rasterize(v, f, 24, 24)
    fr = fragments(v, f, 24, 24)
    assert np.all(r.triangle[r.mask] < 40)
    # Per pixel, the z-buffer keeps the nearest fragment, and the first among equals.
    for pixel in np.unique(fr.pixel):
        here = fr.pixel == pixel
        best = fr.z[here].max()
        first = fr.triangle[here][fr.z[here] == best].min()
        y, x = divmod(int(pixel), 24)
        assert r.triangle[y, x] == first and r.depth[y, x] == np.float32(best)
        assert np.allclose(r.bary[y, x], fr.bary[here][fr.triangle[here] == first][0], atol=1e-6)
    assert r.mask.sum() == len(np.unique(fr.pixel))


def test_compiled_zbuffer_equals_the_numpy_reference_bit_for_bit():
    # Random meshes of every kind of trouble: corners on pixel centres and edges (top-left rule),
    # equal depths (tie to the lower index), both windings, degenerate and off-screen triangles.
    rng = np.random.default_rng(7)
    for trial in range(24):
        n = int(rng.integers(3, 200))
        v = rng.uniform(-8, 60, (n, 3))
        if trial % 3 == 0:
            v[:, :2] = np.round(v[:, :2] * 2) / 2
        if trial % 4 == 0:
            v[:, 2] = 1.0
        f = rng.integers(0, n, (int(rng.integers(1, 400)), 3))
        for bary in (True, False):
            a, b = rasterize(v, f, 40, 52, bary=bary), rasterize_numpy(v, f, 40, 52, bary=bary)
            assert a.mask.any()
            for field in ("depth", "triangle", "bary"):
                x, y = getattr(a, field), getattr(b, field)
                assert x.dtype == y.dtype and np.array_equal(x, y), (trial, field)
