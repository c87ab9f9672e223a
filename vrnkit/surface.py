"""From a volume back to a mesh: iso-surface, photo mapping, colours, export, discretisation error.

VRN's output is a soft volume (D, H, W); the face is its 0.5 iso-surface. This module turns a
volume into a triangle mesh in crop coordinates (x right, y down, z toward the viewer, pixels;
voxel (d, y, x) has its centre at (x + 0.5, y + 0.5, (d + 0.5) / depth_scale)), maps it onto the
photo, colours it from the image, writes it to OBJ / PLY / GLB in a y-up right-handed frame, and
measures how much the voxel grid itself costs (the discretisation error).

Orientation: faces are wound so that the plain cross product (v1 - v0) x (v2 - v0) of the
numbers points out of the solid, i.e. ``trimesh.Trimesh(vertices, faces).volume > 0``. The
export flips y (a mirror) and reverses the winding, so that stays true in the y-up frame.

>>> import numpy as np
>>> from vrnkit.config import VolumeSpec
>>> spec = VolumeSpec(depth=32, height=16, width=16, depth_scale=2.0)
>>> d, y, x = np.mgrid[:32, :16, :16]
>>> ball = (x + 0.5 - 8) ** 2 + (y + 0.5 - 8) ** 2 + ((d + 0.5) / 2 - 8) ** 2 < 5 ** 2
>>> vertices, faces = volume_to_mesh(ball, spec)
>>> vertices.dtype, faces.dtype
(dtype('float32'), dtype('int32'))
>>> r = np.linalg.norm(vertices - 8, axis=1)
>>> bool(abs(r.mean() - 5) < 0.5)
True
>>> import trimesh
>>> bool(mesh_to_trimesh(vertices, faces).volume > 0)  # outward normals in the y-up frame
True
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .config import VolumeSpec
from .geometry import CropFrame, as_points
from .raster import check_mesh

EXPORT_FORMATS = (".obj", ".ply", ".glb")


# ---------------------------------------------------------------------------------------------
# Volume -> mesh

# Gaussian smoothing (in voxels) of a network's soft volume before its iso-surface. The networks
# predict the volume at 1/4 of the crop's resolution and upsample it bilinearly, which leaves a faint
# 4-voxel grid of ridges on the surface of briefly trained models; sigma 1.5 removes them and keeps
# the nose, lips and eye sockets (compared by eye on held-out SynthFaces).
SMOOTH = 1.5


def volume_to_mesh(volume, spec: VolumeSpec | None = None, *, level: float = 0.5,
                   depth_scale: float | None = None, smooth: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Iso-surface of a volume at ``level`` (marching cubes), in crop coordinates.

    volume: (D, H, W) soft (float, e.g. sigmoid output) or binary (bool / int) array; voxels
        above ``level`` are inside. A torch tensor is accepted (moved to the CPU).
    spec: the :class:`VolumeSpec` the volume was made with (gives ``depth_scale``; its shape
        must match). Without a spec, ``depth_scale`` (default 2, the paper's) is used.
    smooth: Gaussian sigma in voxels applied to the volume first (0: none; ``SMOOTH`` suits the
        shipped networks' soft volumes).
    Returns vertices (N, 3) float32 crop coordinates (x = col + 0.5, y = row + 0.5,
    z = (slice + 0.5) / depth_scale) and faces (M, 3) int32, wound so that normals point
    out of the solid (see the module docstring). Where the solid touches the volume border the
    mesh is closed there, so it is always watertight.

    Speed: marching cubes (scikit-image, Lewiner) runs only on the bounding box of the voxels
    above the level, padded by one voxel, and only on the cubes that the surface crosses
    (``mask``); the result is the same mesh as on the whole volume, shifted. Zero-area triangles
    (from voxels exactly at the level) are removed, as ``allow_degenerate=False`` does.
    """
    from skimage.measure import marching_cubes

    vol = _as_volume(volume)
    ds = _depth_scale(vol.shape, spec, depth_scale)
    if smooth:
        if not (np.isfinite(smooth) and smooth > 0):
            raise ValueError(f"smooth must be a Gaussian sigma >= 0 in voxels; got {smooth}")
        from scipy.ndimage import gaussian_filter

        vol = gaussian_filter(vol.astype(np.float32), float(smooth))
    level = float(level)
    if not np.isfinite(level):
        raise ValueError(f"level must be a finite number; got {level}")
    vmin, vmax = vol.min(), vol.max()  # NaN propagates through min/max; inf shows as +-inf
    if vol.dtype.kind == "f" and not (np.isfinite(vmin) and np.isfinite(vmax)):
        bad = int(np.count_nonzero(~np.isfinite(vol)))
        raise ValueError(f"expected a (D, H, W) real array of finite values; got {bad} NaN or infinite voxels")
    if not vmax > level:
        raise ValueError(f"the volume has no voxel above the level {level} (its maximum is {float(vmax):.4g}): "
                         "nothing to mesh; try a lower level, or check the prediction (an empty or failed one)")

    inside = vol > level
    # Bounding box of the inside voxels, padded by one voxel (possibly beyond the volume).
    lo, hi = [], []
    for axis in range(3):
        profile = inside.any(axis=tuple(a for a in range(3) if a != axis))
        idx = np.flatnonzero(profile)
        lo.append(int(idx[0]) - 1)
        hi.append(int(idx[-1]) + 2)
    shape = tuple(h - l for l, h in zip(lo, hi))
    src = tuple(slice(max(l, 0), min(h, n)) for l, h, n in zip(lo, hi, vol.shape))
    dst = tuple(slice(s.start - l, s.stop - l) for s, l in zip(src, lo))
    # Outside the volume, pad with a value below the level so the surface closes at the border
    # (0 for binary and sigmoid volumes, which puts the cap on the volume's boundary).
    pad = float(vmin) if vmin < level else level - 1.0
    box = np.full(shape, pad, np.float32)
    box[dst] = vol[src]

    # Only cubes with some corners above and some not can hold surface. scikit-image checks the
    # mask at a cube's far corner (z+1, y+1, x+1), hence the shift by one.
    b = box > level
    any_ = b[1:] | b[:-1]
    any_ = any_[:, 1:] | any_[:, :-1]
    any_ = any_[:, :, 1:] | any_[:, :, :-1]
    all_ = b[1:] & b[:-1]
    all_ = all_[:, 1:] & all_[:, :-1]
    all_ = all_[:, :, 1:] & all_[:, :, :-1]
    mask = np.zeros(shape, bool)
    mask[1:, 1:, 1:] = any_ & ~all_

    # Zero-area triangles appear only where voxels equal the level exactly; removing them costs
    # ~10 ms at paper size, so it is done only when such voxels exist.
    exact = bool(np.any(box == level))
    verts, faces, _, _ = marching_cubes(box, level, mask=mask, allow_degenerate=not exact)
    # (slice, row, col) in the box -> (x, y, z) crop coordinates.
    out = np.empty_like(verts, dtype=np.float32)
    out[:, 0] = verts[:, 2] + (lo[2] + 0.5)
    out[:, 1] = verts[:, 1] + (lo[1] + 0.5)
    out[:, 2] = (verts[:, 0] + (lo[0] + 0.5)) / ds
    # skimage's faces (gradient "descent") are inward for (slice, row, col) axes; taking the
    # axes in the order (col, row, slice) is a mirror, which makes them outward as they are.
    faces = np.ascontiguousarray(faces, dtype=np.int32)
    return out, faces


def _as_volume(volume) -> np.ndarray:
    if hasattr(volume, "detach") and hasattr(volume, "cpu"):  # a torch tensor
        volume = volume.detach().cpu().numpy()
    vol = np.asarray(volume)
    if vol.ndim != 3 or vol.dtype.kind not in "biuf":
        hint = " (drop the batch / channel axes first, e.g. volume[0])" if vol.ndim > 3 else ""
        raise ValueError(f"expected a (D, H, W) real array (bool, integer or float); "
                         f"got shape {vol.shape} dtype {vol.dtype}{hint}")
    if min(vol.shape) < 1:
        raise ValueError(f"expected a non-empty (D, H, W) real array; got shape {vol.shape}")
    return vol


def _depth_scale(shape, spec, depth_scale) -> float:
    if spec is not None:
        if tuple(shape) != tuple(spec.shape):
            raise ValueError(f"volume shape {tuple(shape)} does not match the spec's (D, H, W) = {spec.shape}")
        if depth_scale is not None and float(depth_scale) != float(spec.depth_scale):
            raise ValueError(f"depth_scale={depth_scale} contradicts spec.depth_scale={spec.depth_scale}; give one")
        depth_scale = spec.depth_scale
    if depth_scale is None:
        depth_scale = VolumeSpec().depth_scale
    depth_scale = float(depth_scale)
    if not (np.isfinite(depth_scale) and depth_scale > 0):
        raise ValueError(f"depth_scale must be a positive number (slices per pixel); got {depth_scale}")
    return depth_scale


# ---------------------------------------------------------------------------------------------
# Crop -> photo, colours

def mesh_crop_to_photo(vertices, frame: CropFrame) -> np.ndarray:
    """Map mesh vertices (N, 3) from crop coordinates to the original photo -> (N, 3) float32."""
    return frame.crop_to_photo(as_points(vertices, name="vertices", dims=(3,))).astype(np.float32)


def sample_vertex_colours(vertices, image) -> np.ndarray:
    """Colour each vertex from the image under it -> (N, 3) uint8.

    vertices: (N, 2) or (N, 3) image coordinates (x right, y down, pixels; z is ignored).
    image: (H, W, 3) uint8, or float in [0, 1]. Sampling is bilinear between pixel centres
    (vertex (x, y) reads pixel position (x - 0.5, y - 0.5)), clamped at the image border.
    """
    v = as_points(vertices, name="vertices")
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image must have shape (H, W, 3) (RGB); got {img.shape}")
    if img.dtype == np.uint8:
        img = img.astype(np.float32)
    elif img.dtype.kind == "f":
        if not np.all(np.isfinite(img)):
            raise ValueError("image contains NaN or infinite values; expected floats in [0, 1]")
        lo, hi = float(img.min()), float(img.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(f"a float image must hold values in [0, 1]; got values in [{lo:.4g}, {hi:.4g}] "
                             "(for 0..255 values pass a uint8 image)")
        img = np.clip(img, 0, 1).astype(np.float32) * 255
    else:
        raise ValueError(f"image must be uint8 or float in [0, 1]; got dtype {img.dtype}")
    H, W = img.shape[:2]
    px = np.clip(v[:, 0] - 0.5, 0, W - 1)
    py = np.clip(v[:, 1] - 0.5, 0, H - 1)
    x0 = np.floor(px).astype(np.intp)
    y0 = np.floor(py).astype(np.intp)
    x1 = np.minimum(x0 + 1, W - 1)
    y1 = np.minimum(y0 + 1, H - 1)
    fx = (px - x0)[:, None]
    fy = (py - y0)[:, None]
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    out = top * (1 - fy) + bottom * fy
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Export

def mesh_to_trimesh(vertices, faces, *, colours=None):
    """A ``trimesh.Trimesh`` in the export frame (x right, y up, z toward the viewer).

    vertices: (N, 3) image-space coordinates (y down); faces: (M, 3).
    colours: optional (N, 3) or (N, 4) per-vertex colours, uint8 or float in [0, 1].
    y -> -y is a mirror, so the winding is reversed to keep the normals pointing outward.
    The mesh is built with ``process=False``: vertices and faces keep their order.
    """
    import trimesh

    v, f = check_mesh(vertices, faces)
    v = v * np.array([1.0, -1.0, 1.0])
    f = f[:, ::-1]
    c = None if colours is None else check_colours(colours, len(v))
    return trimesh.Trimesh(vertices=v, faces=f, vertex_colors=c, process=False)


def vertex_normals(vertices, faces) -> np.ndarray:
    """(N, 3) unit normals of a mesh's vertices: the area-weighted sum of their triangles' normals
    (outward for vrnkit's winding)."""
    v, f = np.asarray(vertices, np.float64), np.asarray(faces)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # length = twice the area
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], n)
    return vn / (np.linalg.norm(vn, axis=1, keepdims=True) + 1e-12)


def check_colours(colours, n) -> np.ndarray:
    """Per-vertex colours, (N, 3|4) uint8 or float in [0, 1] -> (N, 3|4) uint8, or ValueError."""
    c = np.asarray(colours)
    if c.ndim != 2 or c.shape[0] != n or c.shape[1] not in (3, 4):
        raise ValueError(f"colours must have shape ({n}, 3) or ({n}, 4), one per vertex; got {c.shape}")
    if c.dtype == np.uint8:
        return c
    if c.dtype.kind == "f":
        if not np.all(np.isfinite(c)) or c.min() < 0 or c.max() > 1:
            raise ValueError("float colours must be finite values in [0, 1]; for 0..255 pass uint8")
        return np.rint(c * 255).astype(np.uint8)
    raise ValueError(f"colours must be uint8 or float in [0, 1]; got dtype {c.dtype}")


def export_mesh(path, vertices, faces, *, colours=None) -> str:
    """Write a mesh (image-space vertices) to .obj, .ply or .glb in the y-up export frame.

    The file is written to a temporary file in the same folder and then renamed, so a reader
    never sees half a file. OBJ vertex colours are written as ``v x y z r g b`` with floats in
    [0, 1] (read by trimesh, MeshLab and Blender). Returns the path as a string.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXPORT_FORMATS:
        raise ValueError(f"unsupported mesh format {ext or '(no extension)'!r} for {path!r}; "
                         f"supported: {', '.join(EXPORT_FORMATS)}")
    mesh = mesh_to_trimesh(vertices, faces, colours=colours)
    if ext == ".obj":
        data = _obj_bytes(mesh.vertices, mesh.faces, None if colours is None else mesh.visual.vertex_colors)
    else:
        data = mesh.export(file_type=ext[1:])
        if isinstance(data, str):
            data = data.encode()
    _write_atomic(path, data)
    return path


def _obj_bytes(vertices, faces, colours) -> bytes:
    head = "# vrnkit mesh: x right, y up, z toward the viewer (right-handed)\n"
    if colours is None:
        vs = np.asarray(vertices, np.float64)
        vtext = ("v %.6f %.6f %.6f\n" * len(vs)) % tuple(vs.ravel())
    else:
        rgb = np.asarray(colours)[:, :3].astype(np.float64) / 255.0
        vs = np.hstack([np.asarray(vertices, np.float64), rgb])
        vtext = ("v %.6f %.6f %.6f %.6f %.6f %.6f\n" * len(vs)) % tuple(vs.ravel())
    f = np.asarray(faces, np.int64) + 1
    ftext = ("f %d %d %d\n" * len(f)) % tuple(f.ravel())
    return (head + vtext + ftext).encode("ascii")


def _write_atomic(path: str, data: bytes) -> None:
    from .files import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), parents=False)


# ---------------------------------------------------------------------------------------------
# Point-to-mesh distance and the discretisation error

def point_to_mesh_distance(points, vertices, faces) -> np.ndarray:
    """Exact Euclidean distance from each point to the nearest point of a triangle mesh.

    points: (P, 3); vertices: (N, 3); faces: (M, 3). Returns (P,) float64, same units.
    Candidates are the k triangles with the nearest centroids (scipy cKDTree); the answer is
    accepted only when no other triangle can be closer: every triangle lies within R (its
    largest centroid-to-corner distance) of its centroid, so if the best distance found is
    <= (distance to the k-th centroid) - R_max it is exact. Points that fail get a larger k,
    up to all triangles.
    """
    from scipy.spatial import cKDTree

    p = as_points(points, name="points", dims=(3,))
    v, f = check_mesh(vertices, faces)
    tri = v[f]  # (M, 3, 3)
    centroid = tri.mean(1)
    rmax = float(np.sqrt(((tri - centroid[:, None]) ** 2).sum(-1)).max())
    tree = cKDTree(centroid)
    m = len(f)
    out = np.full(len(p), np.inf)
    todo = np.arange(len(p))
    k = min(16, m)
    while len(todo):
        chunk = max(1, 2_000_000 // (9 * k))  # bound the (points, k, 3, 3) temporaries
        failed = []
        for s in range(0, len(todo), chunk):
            ids = todo[s:s + chunk]
            dc, ti = tree.query(p[ids], k=k)
            dc, ti = dc.reshape(len(ids), k), ti.reshape(len(ids), k)
            t = tri[ti]  # (n, k, 3, 3)
            d2 = _point_triangle_sqdist(p[ids][:, None, :], t[..., 0, :], t[..., 1, :], t[..., 2, :])
            best = np.sqrt(d2.min(1))
            out[ids] = best
            if k < m:
                failed.append(ids[best > dc[:, -1] - rmax])
        todo = np.concatenate(failed) if failed else np.zeros(0, int)
        k = min(4 * k, m)
    return out


def _point_triangle_sqdist(p, a, b, c) -> np.ndarray:
    """Squared distance from points p to triangles (a, b, c); all (..., 3) float64 -> (...)."""
    ab, bc, ca = b - a, c - b, a - c
    n = np.cross(ab, c - a)
    nn = (n * n).sum(-1)
    # The projection of p falls inside the triangle iff p is on the inner side of all 3 edges.
    inside = ((np.cross(ab, p - a) * n).sum(-1) >= 0) & ((np.cross(bc, p - b) * n).sum(-1) >= 0) \
        & ((np.cross(ca, p - c) * n).sum(-1) >= 0) & (nn > 0)
    plane = ((p - a) * n).sum(-1) ** 2 / np.where(nn > 0, nn, 1.0)
    edges = np.minimum(np.minimum(_point_segment_sqdist(p, a, ab), _point_segment_sqdist(p, b, bc)),
                       _point_segment_sqdist(p, c, ca))
    return np.where(inside, plane, edges)


def _point_segment_sqdist(p, a, ab) -> np.ndarray:
    ll = (ab * ab).sum(-1)
    t = np.clip(((p - a) * ab).sum(-1) / np.where(ll > 0, ll, 1.0), 0.0, 1.0)
    d = p - (a + t[..., None] * ab)
    return (d * d).sum(-1)


def discretisation_error(vertices, faces, spec: VolumeSpec, *, fill: str = "even-odd", back=None,
                         landmarks=None) -> dict:
    """How far the voxel grid moves a surface: voxelise, take the 0.5 iso-surface back, measure.

    vertices: (N, 3) crop coordinates; faces: (M, 3). ``fill`` and ``back`` go to
    :func:`vrnkit.voxel.mesh_to_volume` ("even-odd" for watertight meshes; "front" fills from the
    visible surface back to depth ``back``, and then only the front of the mesh is meaningful).
    landmarks: optional 68 landmarks, (68, 3) crop coordinates or (68,) vertex indices; when
    given, the errors are also divided by the 3D outer interocular distance (landmarks 36, 45).

    Returns a dict: mean, median, max (distance from each original vertex to the recovered
    surface, crop pixels), distances (N,) float64, n_vertices / n_faces of the recovered mesh,
    shape, and with landmarks also interocular and mean_normalised, median_normalised,
    max_normalised.
    """
    from .voxel import mesh_to_volume

    v, f = check_mesh(vertices, faces)
    kw = {} if back is None else {"back": back}
    vol = mesh_to_volume(v, f, spec, fill=fill, **kw)
    rv, rf = volume_to_mesh(vol, spec)
    d = point_to_mesh_distance(v, rv, rf)
    out = {"mean": float(d.mean()), "median": float(np.median(d)), "max": float(d.max()), "distances": d,
           "n_vertices": len(rv), "n_faces": len(rf), "shape": spec.shape}
    if landmarks is not None:
        lm = np.asarray(landmarks)
        if lm.shape == (68,) and np.issubdtype(lm.dtype, np.integer):
            if lm.min() < 0 or lm.max() >= len(v):
                raise ValueError(f"landmark indices must lie in 0..{len(v) - 1}; got [{lm.min()}, {lm.max()}]")
            lm = v[lm]
        lm = as_points(lm, name="landmarks", dims=(3,))
        if len(lm) != 68:
            raise ValueError(f"landmarks must be the 68 iBUG points, (68, 3) or (68,) indices; got {lm.shape}")
        from .metrics import interocular_distance

        iod = interocular_distance(lm)
        out.update(interocular=iod, mean_normalised=out["mean"] / iod,
                   median_normalised=out["median"] / iod, max_normalised=out["max"] / iod)
    return out
