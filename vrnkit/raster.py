"""A triangle rasteriser in NumPy, shared by the renderer and the voxelisers.

Pixels are sampled at their centres (x + 0.5, y + 0.5). Coverage follows the top-left rule,
so a pixel centre that lies exactly on an edge shared by two triangles is counted once: this
is what makes the even-odd fill of a watertight mesh exact.

The work is vectorised over (triangle, pixel) pairs: each triangle lists the pixel centres in
its bounding box, and the pairs that pass the three edge tests are its fragments. Face meshes
have many small triangles, so that list stays short (a few per triangle).

>>> import numpy as np
>>> v = np.array([[0, 0, 1], [4, 0, 1], [0, 4, 1]], float)
>>> r = rasterize(v, np.array([[0, 1, 2]]), 4, 4)
>>> r.mask.astype(int)
array([[1, 1, 1, 1],
       [1, 1, 1, 0],
       [1, 1, 0, 0],
       [1, 0, 0, 0]])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Upper bound on (triangle, pixel) candidate pairs handled at once, to bound memory.
_CHUNK_PAIRS = 4_000_000


@dataclass
class Fragments:
    """Every (pixel, triangle) pair whose pixel centre the triangle covers.

    pixel: (K,) int64 flat pixel index y * width + x
    triangle: (K,) int64 triangle index
    bary: (K, 3) float64 barycentric weights of the triangle's vertices at the pixel centre
    z: (K,) float64 interpolated depth at the pixel centre
    """

    pixel: np.ndarray
    triangle: np.ndarray
    bary: np.ndarray
    z: np.ndarray


@dataclass
class Raster:
    """The visible surface per pixel (a z-buffer; larger z = closer to the camera).

    depth: (H, W) float32, -inf where no triangle covers the pixel centre
    triangle: (H, W) int32, -1 where empty
    bary: (H, W, 3) float32 barycentric weights of the visible triangle's vertices
    """

    depth: np.ndarray
    triangle: np.ndarray
    bary: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: pixels covered by the mesh."""
        return self.triangle >= 0

    def interpolate(self, values, faces) -> np.ndarray:
        """Interpolate per-vertex ``values`` (N, C) over the visible triangles -> (H, W, C); 0 where empty."""
        values = np.asarray(values)
        tri = np.maximum(self.triangle, 0)
        corner = values[np.asarray(faces)[tri]]  # (H, W, 3, C)
        out = np.einsum("hwk,hwkc->hwc", self.bary, corner)
        out[~self.mask] = 0
        return out


def check_mesh(vertices, faces, *, name: str = "mesh") -> tuple[np.ndarray, np.ndarray]:
    """Validate a triangle mesh; return (vertices float64 (N, 3), faces int64 (M, 3)).

    Raises ValueError for a wrong shape, non-finite vertices, no faces or out-of-range indices.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"{name} vertices must have shape (N, 3); got {v.shape}")
    if not np.all(np.isfinite(v)):
        bad = int((~np.isfinite(v).all(1)).sum())
        raise ValueError(f"{name} has {bad} vertices with NaN or infinite coordinates; expected finite values")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"{name} faces must have shape (M, 3) (triangles); got {f.shape}")
    if len(f) == 0:
        raise ValueError(f"{name} has no faces; expected at least one triangle")
    if not np.issubdtype(f.dtype, np.integer):
        if not np.all(np.equal(np.mod(f, 1), 0)):
            raise ValueError(f"{name} faces must hold integer vertex indices; got dtype {f.dtype}")
    f = f.astype(np.int64)
    if f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"{name} faces index vertices 0..{len(v) - 1}; got indices in [{f.min()}, {f.max()}]")
    return v, f


def fragments(vertices, faces, height: int, width: int) -> Fragments:
    """All covered pixel centres of all triangles (no depth test).

    vertices: (N, 3) image-space points (x right, y down, pixels; z toward viewer).
    faces: (M, 3) vertex indices. Triangles of either winding are drawn; degenerate ones
    (zero area on screen) cover nothing.
    """
    v, f = check_mesh(vertices, faces)
    tri = v[f]  # (M, 3, 3)
    # Make every triangle counter-clockwise in (x, y) so one edge test fits all.
    area = _cross2(tri[:, 1, :2] - tri[:, 0, :2], tri[:, 2, :2] - tri[:, 0, :2])
    flip = area < 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    order = np.where(flip[:, None], [0, 2, 1], [0, 1, 2])
    keep = area != 0
    tri, order, ids = tri[keep], order[keep], np.nonzero(keep)[0]

    # Pixel-centre bounding box of each triangle: centres c = i + 0.5 with lo <= c <= hi.
    # (np.minimum over the three corners is faster than .min(axis=1) on (M, 3, 2) arrays.)
    xy = tri[:, :, :2]
    lo = np.ceil(np.minimum(np.minimum(xy[:, 0], xy[:, 1]), xy[:, 2]) - 0.5).astype(np.int64)
    hi = np.floor(np.maximum(np.maximum(xy[:, 0], xy[:, 1]), xy[:, 2]) - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    nx = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0)
    ny = np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
    count = nx * ny

    parts = []
    start = 0
    cum = np.cumsum(count)
    while start < len(tri):
        # Take as many triangles as fit in one chunk (at least one).
        base = cum[start - 1] if start else 0
        stop = max(int(np.searchsorted(cum, base + _CHUNK_PAIRS, side="right")), start + 1)
        parts.append(_fragments_chunk(tri[start:stop], order[start:stop], ids[start:stop],
                                      lo[start:stop], nx[start:stop], count[start:stop], width))
        start = stop
    if not parts:
        empty = np.zeros(0, np.int64)
        return Fragments(empty, empty, np.zeros((0, 3)), np.zeros(0))
    return Fragments(*(np.concatenate(p) for p in zip(*parts)))


def _cross2(a, b):
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _fragments_chunk(tri, order, ids, lo, nx, count, width):
    k = np.repeat(np.arange(len(tri)), count)
    local = np.arange(len(k)) - np.repeat(np.cumsum(count) - count, count)
    px = lo[k, 0] + local % nx[k]
    py = lo[k, 1] + local // nx[k]
    cx, cy = px + 0.5, py + 0.5

    a, b, c = tri[k, 0], tri[k, 1], tri[k, 2]
    # Edge functions: w0 is opposite vertex a (edge b->c), etc. Positive inside (CCW).
    w0 = (c[:, 0] - b[:, 0]) * (cy - b[:, 1]) - (c[:, 1] - b[:, 1]) * (cx - b[:, 0])
    w1 = (a[:, 0] - c[:, 0]) * (cy - c[:, 1]) - (a[:, 1] - c[:, 1]) * (cx - c[:, 0])
    w2 = (b[:, 0] - a[:, 0]) * (cy - a[:, 1]) - (b[:, 1] - a[:, 1]) * (cx - a[:, 0])
    inside = _covers(w0, b, c) & _covers(w1, c, a) & _covers(w2, a, b)

    k, w0, w1, w2 = k[inside], w0[inside], w1[inside], w2[inside]  # a, b, c still full length
    total = w0 + w1 + w2
    b0, b1, b2 = w0 / total, w1 / total, w2 / total
    z = b0 * a[inside, 2] + b1 * b[inside, 2] + b2 * c[inside, 2]
    bary = np.stack([b0, b1, b2], 1)
    # Return weights in the triangle's original vertex order.
    bary_orig = np.empty_like(bary)
    np.put_along_axis(bary_orig, order[k], bary, axis=1)
    pixel = py[inside] * width + px[inside]
    return pixel, ids[k], bary_orig, z


def _covers(w, p, q):
    """Edge test with the top-left rule: strictly inside, or on a top or left edge.

    With counter-clockwise triangles in a y-down frame, an edge p->q is "top" when it is
    horizontal going left (dy == 0, dx < 0) and "left" when it goes down (dy > 0).
    """
    dx, dy = q[:, 0] - p[:, 0], q[:, 1] - p[:, 1]
    top_left = (dy > 0) | ((dy == 0) & (dx < 0))
    return (w > 0) | ((w == 0) & top_left)


def rasterize(vertices, faces, height: int, width: int) -> Raster:
    """Z-buffer a triangle mesh: the nearest surface (largest z) at each pixel centre.

    vertices: (N, 3) image-space points; faces: (M, 3) indices. Returns a :class:`Raster`.
    Ties in depth go to the lower triangle index, so the result does not depend on luck.
    """
    fr = fragments(vertices, faces, height, width)
    depth = np.full(height * width, -np.inf, np.float32)
    triangle = np.full(height * width, -1, np.int32)
    bary = np.zeros((height * width, 3), np.float32)
    if len(fr.pixel):
        # Sort by pixel, then depth descending, then triangle: the first of each pixel wins.
        order = np.lexsort((fr.triangle, -fr.z, fr.pixel))
        pix = fr.pixel[order]
        first = np.ones(len(pix), bool)
        first[1:] = pix[1:] != pix[:-1]
        win = order[first]
        depth[fr.pixel[win]] = fr.z[win]
        triangle[fr.pixel[win]] = fr.triangle[win]
        bary[fr.pixel[win]] = fr.bary[win]
    return Raster(depth.reshape(height, width), triangle.reshape(height, width), bary.reshape(height, width, 3))
