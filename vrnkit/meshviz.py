"""Pictures of meshes: an interactive WebGL view (k3d), shaded pictures through vrnkit's own
z-buffer, and a mesh shaded over its image or photo.

Meshes are (N, 3) vertices in image space (x right, y down, z toward the viewer) and (M, 3)
faces, as everywhere in vrnkit (README, "Conventions").

- :func:`mesh_k3d`: an interactive WebGL view (k3d) and :func:`save_k3d_html`, a self-contained
  HTML file of it that opens offline.
- :func:`render_mesh` / :func:`mesh_picture`: a shaded picture, for where k3d shows nothing
  (Colab can); :func:`overlay_mesh`: a mesh shaded over its image or photo.

k3d is imported only by the functions that need it (``pip install "vrnkit[notebooks]"``).

>>> import trimesh
>>> ball = trimesh.creation.icosphere(subdivisions=3)
>>> render_mesh(ball.vertices * 30, ball.faces, size=64).shape
(64, 64, 3)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .surface import check_colours, vertex_normals
from .viz import _image, _require  # the same checks as the other pictures


def _mesh(vertices, faces):
    from .raster import check_mesh

    return check_mesh(vertices, faces)


def pack_colours(colours, n: int) -> np.ndarray:
    """(N, 3) uint8 or float [0, 1] colours -> (N,) uint32 0xRRGGBB, as k3d wants them."""
    c = check_colours(colours, n)[:, :3].astype(np.uint32)
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


def mesh_k3d(vertices, faces, *, colours=None, name: str = "face", color: int = 0xD9B8A0, plot=None,
             height: int = 480, values=None, value_range=None, opacity: float = 1.0, **plot_kw):
    """An interactive WebGL view of a mesh (k3d) -> the k3d Plot (display it; a notebook shows
    the last expression of a cell). Drag to rotate, scroll to zoom.

    vertices: (N, 3) image space (y down, z toward the viewer); shown y-up (y -> -y, with the
    winding reversed so the normals still point out), camera in front of the face.
    faces: (M, 3). colours: optional (N, 3) per-vertex RGB (uint8 or float [0, 1]), e.g. from
    :func:`vrnkit.surface.sample_vertex_colours`; without them the mesh is one ``color``.
    values: optional (N,) numbers (e.g. per-vertex errors) shown through a colour map (magma,
    reversed: dark is high) over ``value_range`` (default their range), with k3d's colour bar.
    opacity: below 1 to see one mesh through another.
    plot: add to an existing k3d Plot instead of making one. Other keywords go to ``k3d.plot``.
    On Colab, k3d needs ``from google.colab import output; output.enable_custom_widget_manager()``
    and can still show an empty scene: use :func:`mesh_picture` there, or :func:`save_k3d_html`.
    """
    k3d = _require("k3d", "mesh_k3d")
    v, f = _mesh(vertices, faces)
    v_up = np.asarray(v * [1.0, -1.0, 1.0], np.float32)
    f_up = np.asarray(f[:, ::-1], np.uint32)
    kw = {}
    if colours is not None:
        kw["colors"] = pack_colours(colours, len(v))
    if values is not None:
        values = np.asarray(values, np.float32).reshape(-1)
        if values.shape != (len(v),) or not np.all(np.isfinite(values)):
            raise ValueError(f"values must be one finite number per vertex ({len(v)}); got shape {values.shape}")
        lo, hi = value_range if value_range is not None else (float(values.min()), float(values.max()))
        kw.update(attribute=values, color_range=[float(lo), float(hi)],
                  color_map=k3d.colormaps.matplotlib_color_maps.Magma_r)
    mesh = k3d.mesh(v_up, f_up, color=int(color), name=name, flat_shading=False, side="double",
                    opacity=float(opacity), **kw)
    if plot is None:
        opts = dict(height=height, grid_visible=False, camera_auto_fit=False, axes_helper=0.0,
                    background_color=0xFFFFFF)
        opts.update(plot_kw)
        plot = k3d.plot(**opts)
        frame_k3d(plot, v)
    plot += mesh
    if values is not None:
        plot.colorbar_object_id = mesh.id  # k3d draws the colour bar of this mesh's values
    return plot


def frame_k3d(plot, vertices) -> None:
    """Point a k3d plot's camera at (N, 3) image-space points from the front, so that they fill
    about two thirds of the view (camera_fov 60 deg): e.g. all the meshes of a side-by-side view."""
    v_up = np.asarray(vertices, np.float64).reshape(-1, 3) * [1.0, -1.0, 1.0]
    lo, hi = v_up.min(0), v_up.max(0)
    centre, extent = (lo + hi) / 2, float(max(hi[:2] - lo[:2]))
    eye = centre + [0.0, 0.0, 1.15 * extent + (hi[2] - centre[2])]
    plot.camera = [*eye.tolist(), *centre.tolist(), 0.0, 1.0, 0.0]


def save_k3d_html(plot, path) -> str:
    """Write ``plot.get_snapshot()`` to ``path``: one self-contained HTML file (no server, no
    internet) that shows the interactive plot in any browser. Written to a temporary file in
    the same folder and renamed, so a reader never sees half a file. Returns the path."""
    from .files import atomic_write

    path = os.fspath(path)
    html = plot.get_snapshot()
    atomic_write(path, lambda tmp: Path(tmp).write_text(html, encoding="utf-8"))
    return path


def _shade(points, faces, normals, colours, height: int, width: int, light):
    """Z-buffer ``points`` (image space) -> (rgb (H, W, 3) float, mask (H, W) bool): per-vertex
    colours times two-sided Lambert shading of the interpolated normals, plus ambient."""
    from .raster import rasterize

    r = rasterize(points, faces, height, width)
    nn = r.interpolate(normals, faces)
    nn /= np.linalg.norm(nn, axis=-1, keepdims=True) + 1e-12
    light = np.asarray(light, float) / np.linalg.norm(light)
    lam = np.abs(nn @ light)  # two-sided: open shells and either winding look right
    rgb = r.interpolate(colours, faces) * (0.25 + 0.75 * lam)[..., None]
    return np.clip(rgb, 0, 1), r.mask


def _rgb01(colours, n: int) -> np.ndarray:
    if colours is None:
        return np.full((n, 3), 0.78)
    return check_colours(colours, n)[:, :3] / 255.0


def render_mesh(vertices, faces, *, colours=None, size: int = 256, yaw: float = 0.0, margin: float = 0.06,
                light=(-0.4, -0.5, 1.0), background=1.0, supersample: int = 2, centre=None,
                extent: float | None = None) -> np.ndarray:
    """A shaded picture of a mesh through vrnkit's z-buffer -> (size, size, 3) float32 in [0, 1].

    vertices: (N, 3) image space (y down, z toward the viewer); faces: (M, 3).
    colours: optional (N, 3) per-vertex RGB (uint8 or float [0, 1]); default light grey.
    yaw: degrees; the mesh is turned about the vertical axis through its centre (positive:
    the part at image right, a face's own left side, turns toward the camera) before it is drawn.
    The mesh is scaled to fill the picture (``margin`` on each side); or, to compare meshes of
    different sizes at one scale, the picture spans ``extent`` units around ``centre`` (default:
    the centre of the mesh's box). Shading: two-sided Lambert with smooth vertex normals (a light
    from the upper left front), plus ambient light.
    """
    v, f = _mesh(vertices, faces)
    c = _rgb01(colours, len(v))
    centre = (v.min(0) + v.max(0)) / 2 if centre is None else np.asarray(centre, np.float64)
    t = np.radians(yaw)
    rot = np.array([[np.cos(t), 0, -np.sin(t)], [0, 1, 0], [np.sin(t), 0, np.cos(t)]])
    p = (v - centre) @ rot.T
    S = int(size) * int(supersample)
    span = max(float(np.ptp(p[:, 0])), float(np.ptp(p[:, 1])), 1e-9) if extent is None else float(extent)
    k = S * (1 - 2 * margin) / span
    rgb, mask = _shade(p * k + [S / 2, S / 2, 0.0], f, vertex_normals(p, f), c, S, S, light)
    img = np.where(mask[..., None], rgb, background)
    img = img.reshape(size, supersample, size, supersample, 3).mean((1, 3))
    return img.astype(np.float32)


def overlay_mesh(image, vertices, faces, *, colours=None, alpha: float = 0.7, light=(-0.4, -0.5, 1.0),
                 title: str | None = None, size: float = 4.0, ax=None):
    """A mesh drawn over the image it belongs to -> Figure with one axes.

    vertices: (N, 3) in this image's pixels (x right, y down, z toward the viewer): a mesh in
    crop coordinates over the crop, or one mapped back with
    :func:`vrnkit.surface.mesh_crop_to_photo` over the photo. Shaded (z-buffer, Lambert) in
    ``colours`` (default light blue) and blended with ``alpha``: where it lands shows whether
    the reconstruction is aligned with the face. ``fig.axes[0].images[-1]`` is the blend.
    ax: draw on these matplotlib axes instead of a new figure (returns their figure).
    """
    import matplotlib.pyplot as plt

    img = _image(image)
    img = img[..., :3].astype(np.float32) / (255.0 if img.dtype == np.uint8 else 1.0)
    v, f = _mesh(vertices, faces)
    c = np.tile([[0.55, 0.8, 1.0]], (len(v), 1)) if colours is None else _rgb01(colours, len(v))
    H, W = img.shape[:2]
    rgb, mask = _shade(v, f, vertex_normals(v, f), c, H, W, light)
    out = np.where(mask[..., None], (1 - alpha) * img + alpha * rgb, img)
    if ax is None:
        fig, ax = plt.subplots(figsize=(size, size * H / W + 0.3), layout="constrained")
    ax.imshow(np.clip(out, 0, 1), extent=(0, W, H, 0))
    ax.set_title(title or f"mesh over the image ({int(mask.sum())} pixels covered)", fontsize=9)
    ax.axis("off")
    return ax.figure


def mesh_picture(vertices, faces, *, colours=None, size: int = 256, yaws=(0.0, -60.0, 60.0), titles=None,
                 inches: float = 3.0):
    """Shaded pictures of a mesh from a few yaw angles -> Figure (one axes per angle).

    The matplotlib fallback for :func:`mesh_k3d`: it works wherever matplotlib does (Colab,
    nbconvert, a PDF). Arguments as :func:`render_mesh`; ``yaws`` in degrees.
    """
    import matplotlib.pyplot as plt

    yaws = list(np.atleast_1d(yaws))
    fig, axes = plt.subplots(1, len(yaws), figsize=(inches * len(yaws), inches + 0.3), squeeze=False)
    for i, (ax, yaw) in enumerate(zip(axes[0], yaws)):
        ax.imshow(render_mesh(vertices, faces, colours=colours, size=size, yaw=float(yaw)))
        ax.set_title(titles[i] if titles is not None else f"yaw {float(yaw):+.0f} deg", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig
