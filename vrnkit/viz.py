"""Pictures and viewers: galleries, volume slices, overlays, and 3D meshes (k3d or matplotlib).

Everything here takes NumPy arrays in vrnkit's conventions (README, "Conventions"): images (H, W, 3) in
crop pixels (x right, y down); volumes (D, H, W) with voxel (d, y, x) centred at crop
coordinates (x + 0.5, y + 0.5, (d + 0.5) / depth_scale), front of the face = high d; meshes
(N, 3) vertices in image space (y down, z toward the viewer) and (M, 3) faces.

- :func:`gallery`, :func:`save_gallery`: face crops with their 68 landmarks.
- :func:`volume_slices`: three orthogonal cuts through a volume; :func:`slice_widget`: the same
  with sliders (ipywidgets). :func:`overlay_volume`: the volume's footprint and front depth over
  the image, to check that the two are aligned; :func:`front_depth` gives that depth map.
- :func:`mesh_k3d`: an interactive WebGL view (k3d) and :func:`save_k3d_html`, a self-contained
  HTML file of it that opens offline; :func:`mesh_picture` / :func:`render_mesh`: a shaded
  picture through vrnkit's own z-buffer, for where k3d shows nothing (Colab can);
  :func:`overlay_mesh`: a mesh shaded over its image or photo.

ipywidgets and k3d are imported only by the functions that need them
(``pip install "vrnkit[notebooks]"``).

>>> import numpy as np
>>> fig = gallery(np.zeros((2, 64, 64, 3), np.uint8), np.full((2, 68, 2), 32.0), cols=2)
>>> len(fig.axes)
2
>>> vol = np.zeros((16, 8, 8), bool); vol[4:12, 2:6, 2:6] = True
>>> fig = volume_slices(vol)
>>> [ax.images[-1].get_array().shape for ax in fig.axes[:3]]
[(8, 8), (16, 8), (8, 16)]
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np

from .geometry import LANDMARK_GROUPS

# One colour per landmark group (jaw, brows, nose, eyes, lips).
GROUP_COLOURS = {
    "jaw": "#f4d03f", "right_brow": "#e67e22", "left_brow": "#e67e22", "nose_bridge": "#5dade2",
    "nose_base": "#5dade2", "right_eye": "#58d68d", "left_eye": "#58d68d", "outer_lips": "#ec7063",
    "inner_lips": "#f5b7b1",
}


def gallery(images, landmarks=None, *, cols: int = 6, titles=None, visible=None, size: float = 2.0):
    """A grid of images with their landmarks drawn, coloured by group -> matplotlib Figure.

    images: (B, H, W, 3) uint8 or float in [0, 1] (or a list of such images).
    landmarks: optional (B, 68, 2+) pixel coordinates (x right, y down), as the renderer returns.
    visible: optional (B, 68) bool; hidden landmarks are drawn hollow.
    titles: optional list of B strings. size: inches per panel.
    """
    import matplotlib.pyplot as plt

    images = list(images)
    n = len(images)
    if n == 0:
        raise ValueError("gallery needs at least one image; got none")
    if landmarks is not None and len(landmarks) != n:
        raise ValueError(f"expected one (68, 2+) landmark array per image ({n}); got {len(landmarks)}")
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= n:
            ax.remove()
            continue
        h, w = images[k].shape[:2]
        ax.imshow(images[k], extent=(0, w, h, 0))  # pixel (i, j) covers [i, i+1): landmarks on centres
        if titles is not None:
            ax.set_title(titles[k], fontsize=7, pad=2)
        if landmarks is not None:
            lm = np.asarray(landmarks[k])
            vis = np.ones(len(lm), bool) if visible is None else np.asarray(visible[k], bool)
            for group, idx in LANDMARK_GROUPS.items():
                idx = np.asarray(idx)
                c = GROUP_COLOURS[group]
                on, off = idx[vis[idx]], idx[~vis[idx]]
                ax.scatter(lm[on, 0], lm[on, 1], s=2.5, c=c, linewidths=0)
                ax.scatter(lm[off, 0], lm[off, 1], s=3, facecolors="none", edgecolors=c, linewidths=0.3)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.99 if titles is None else 0.96,
                        wspace=0.03, hspace=0.03 if titles is None else 0.15)
    return fig


def save_gallery(path, *, n: int = 24, seed: int = 0, cols: int = 6, colours: int = 256):
    """Render ``n`` random SynthFaces (yaw spread from profile to profile, every expression)
    at the paper's crop size and save their gallery as a palette PNG (small enough for a
    README). Returns the Figure."""
    from PIL import Image
    import io

    from .config import VolumeSpec
    from .facegen import EXPRESSIONS, FaceModel
    from .render import random_pose, render_face

    model, rng = FaceModel.default(), np.random.default_rng(seed)
    labels = list(EXPRESSIONS)
    yaws = np.linspace(-np.pi / 2, np.pi / 2, n)[rng.permutation(n)]  # every pose, in random order
    samples = []
    for k in range(n):
        _, pitch, roll = random_pose(rng)
        samples.append(render_face(model, model.sample_identity(rng), model.sample_expression(rng, labels[k % 7]),
                                   yaw=float(yaws[k]), pitch=pitch, roll=roll, spec=VolumeSpec.preset("paper"),
                                   rng=rng, occluders=k % 4 == 3, lighting="strong" if k % 5 == 4 else "normal"))
    titles = [f"{labels[k % 7]}, yaw {np.degrees(yaws[k]):+.0f}" for k in range(n)]
    fig = gallery([s["image"] for s in samples], [s["landmarks"] for s in samples], cols=cols, titles=titles,
                  visible=[s["landmark_visible"] for s in samples], size=1.8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    Image.open(buf).convert("RGB").quantize(colours).save(path, optimize=True)
    return fig


# ---------------------------------------------------------------------------------------------
# Helpers

def _require(module: str, what: str):
    """Import an optional dependency, or say what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{what} needs the {module} package: pip install {module} "
                          f"(or pip install \"vrnkit[notebooks]\" for every notebook extra)") from e


def _volume(volume) -> np.ndarray:
    """A (D, H, W) real array (torch tensors are moved to the CPU)."""
    if hasattr(volume, "detach") and hasattr(volume, "cpu"):
        volume = volume.detach().cpu().numpy()
    vol = np.asarray(volume)
    if vol.ndim != 3 or vol.dtype.kind not in "biuf" or min(vol.shape) < 1:
        hint = " (drop the batch / channel axes first, e.g. volume[0])" if vol.ndim > 3 else ""
        raise ValueError(f"expected a (D, H, W) volume (bool or soft values in [0, 1]); "
                         f"got shape {vol.shape} dtype {vol.dtype}{hint}")
    return vol


def _depth_scale(vol: np.ndarray, spec) -> float:
    if spec is None:
        from .config import VolumeSpec

        return VolumeSpec().depth_scale  # the paper's 2 slices per pixel
    if tuple(vol.shape) != tuple(spec.shape):
        raise ValueError(f"volume shape {vol.shape} does not match the spec's (D, H, W) = {spec.shape}")
    return float(spec.depth_scale)


def _image(image, shape=None) -> np.ndarray:
    """(H, W, 3) uint8 or float [0, 1] image, checked against the volume's (H, W)."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"image must have shape (H, W, 3); got {img.shape}")
    if shape is not None and img.shape[:2] != tuple(shape):
        raise ValueError(f"image is {img.shape[0]}x{img.shape[1]} but the volume's (H, W) is {tuple(shape)}; "
                         "the volume is aligned with the crop, so they must match")
    return img


def _soft(vol: np.ndarray) -> np.ndarray:
    return vol.astype(np.float32) if vol.dtype != np.float32 else vol


def default_slices(volume, *, level: float = 0.5) -> tuple[int, int, int]:
    """(d, y, x) through the middle of the occupied part of a volume (its centre if empty):
    d halfway between the deepest and the frontmost occupied slice, y and x at the centroid."""
    vol = _volume(volume)
    inside = vol > level
    if not inside.any():
        return tuple(int(n // 2) for n in vol.shape)
    d = np.flatnonzero(inside.any((1, 2)))
    y, x = np.nonzero(inside.any(0))
    # The voxel whose cell holds the centroid (crop position mean index + 0.5).
    return int((d[0] + d[-1]) // 2), int(np.floor(y.mean() + 0.5)), int(np.floor(x.mean() + 0.5))


# One colour for "inside" wherever a slice is drawn over the image.
INSIDE_RGB = (0.0, 0.85, 1.0)


def _draw_slice(ax, vol, axis: int, k: int, ds: float, image=None, cross=None):
    """Draw slice ``k`` along ``axis`` (0 = d, 1 = y, 2 = x) of ``vol`` on ``ax``.

    The slice itself is always the last image of the axes (``ax.images[-1]``), as a 2-D array:
    d -> (H, W) rows y, columns x (as the camera sees it); y -> (D, W) rows d (front at the
    top), columns x (seen from above); x -> (H, D) rows y, columns d (front to the right, seen
    from the side). Axis units are voxels; aspect is in crop pixels (a slice is 1/ds px deep).
    ``cross``: optional (d, y, x) whose other two coordinates are marked with dashed lines.
    """
    from matplotlib.colors import ListedColormap

    D, H, W = vol.shape
    soft = _soft(vol)
    if axis == 0:
        data, extent, aspect = soft[k], (0, W, H, 0), 1.0
        labels = ("x (pixels)", "y (pixels)")
        title = f"d = {k}: image plane\n(as the camera sees it)"
    elif axis == 1:
        data, extent, aspect = soft[:, k, :], (0, W, 0, D), 1.0 / ds
        labels = ("x (pixels)", "d (slices, front up)")
        title = f"y = {k}: horizontal cut\n(seen from above)"
    elif axis == 2:
        data, extent, aspect = soft[:, :, k].T, (0, D, H, 0), ds
        labels = ("d (slices, front right)", "y (pixels)")
        title = f"x = {k}: vertical cut\n(seen from the side)"
    else:
        raise ValueError(f"axis must be 0 (d), 1 (y) or 2 (x); got {axis}")
    origin = "lower" if axis == 1 else "upper"
    if axis == 0 and image is not None:
        ax.imshow(image, extent=extent, interpolation="nearest")
        cmap = ListedColormap([INSIDE_RGB])
        ax.imshow(data, extent=extent, cmap=cmap, vmin=0, vmax=1, interpolation="nearest",
                  alpha=0.55 * np.clip(data, 0, 1))
    else:
        ax.imshow(data, extent=extent, origin=origin, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    ax.set_aspect(aspect)
    ax.set_xlabel(labels[0], fontsize=8)
    ax.set_ylabel(labels[1], fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    if cross is not None:
        d, y, x = cross
        kw = dict(color="#7fdbff", lw=0.8, ls="--", alpha=0.8)
        if axis == 0:
            ax.axhline(y + 0.5, **kw), ax.axvline(x + 0.5, **kw)
        elif axis == 1:
            ax.axhline(d + 0.5, **kw), ax.axvline(x + 0.5, **kw)
        else:
            ax.axhline(y + 0.5, **kw), ax.axvline(d + 0.5, **kw)


# ---------------------------------------------------------------------------------------------
# Volumes

def volume_slices(volume, *, image=None, spec=None, slices=None, level: float = 0.5, size: float = 3.6):
    """Three orthogonal cuts through a volume -> matplotlib Figure with three axes.

    volume: (D, H, W) bool, or soft values in [0, 1] (e.g. the network's sigmoid output); a
        torch tensor is fine. spec: its VolumeSpec (for depth_scale; default the paper's 2).
    image: optional (H, W, 3) crop; it is drawn under the image-plane cut, with the inside
        voxels in translucent cyan, so you can see that the volume sits on the face.
    slices: (d, y, x) indices of the cuts; default :func:`default_slices` (middle of the face).
    Panels, left to right: fixed d (the image plane; anatomically a coronal cut), fixed y (a
    horizontal cut seen from above, front of the face up; anatomically axial), fixed x (a
    vertical cut seen from the side, front to the right; sagittal). Depth is drawn to scale:
    a slice is 1 / depth_scale pixel deep. Dashed lines mark where the other two cuts are.
    ``fig.axes[i].images[-1].get_array()`` is the i-th cut.
    """
    import matplotlib.pyplot as plt

    vol = _volume(volume)
    ds = _depth_scale(vol, spec)
    D, H, W = vol.shape
    img = None if image is None else _image(image, (H, W))
    if slices is None:
        slices = default_slices(vol, level=level)
    slices = tuple(int(s) for s in slices)
    if len(slices) != 3 or not all(0 <= s < n for s, n in zip(slices, vol.shape)):
        raise ValueError(f"slices must be (d, y, x) indices inside the volume {vol.shape}; got {slices}")
    widths = [W, W, D / ds]
    fig, axes = plt.subplots(1, 3, figsize=(size * sum(widths) / W + 1.2, size + 0.6),
                             gridspec_kw=dict(width_ratios=widths), layout="constrained")
    for axis, ax in enumerate(axes):
        _draw_slice(ax, vol, axis, slices[axis], ds, image=img, cross=slices)
    return fig


def slice_widget(volume, *, image=None, spec=None, axis: str = "d", index: int | None = None,
                 size: float = 4.5):
    """Browse a volume slice by slice: buttons pick the axis (d, y, x), a slider the index.

    Returns an ipywidgets VBox; display it (a notebook shows the last expression of a cell).
    It also carries ``.axis_buttons`` (ToggleButtons, values 0, 1, 2), ``.index_slider``
    (IntSlider), ``.output`` (the Output widget the picture goes to) and ``.figure`` (the
    matplotlib Figure, redrawn on every change; ``.figure.axes[0].images[-1].get_array()`` is
    the slice shown). Arguments as :func:`volume_slices`; ``axis`` and ``index`` choose the
    first slice (default: the middle of the face).
    """
    widgets = _require("ipywidgets", "slice_widget")
    import io

    from IPython.display import Image, display
    from matplotlib.figure import Figure

    vol = _volume(volume)
    ds = _depth_scale(vol, spec)
    img = None if image is None else _image(image, vol.shape[1:])
    axes_named = {"d": 0, "y": 1, "x": 2}
    if axis not in axes_named:
        raise ValueError(f"axis must be 'd', 'y' or 'x'; got {axis!r}")
    start = list(default_slices(vol))
    a0 = axes_named[axis]
    if index is not None:
        if not 0 <= int(index) < vol.shape[a0]:
            raise ValueError(f"index {index} is outside axis {axis} (size {vol.shape[a0]})")
        start[a0] = int(index)

    buttons = widgets.ToggleButtons(options=[("d: image plane", 0), ("y: from above", 1), ("x: from the side", 2)],
                                    value=a0, description="cut at")
    slider = widgets.IntSlider(value=start[a0], min=0, max=vol.shape[a0] - 1, description="index",
                               continuous_update=True, layout=widgets.Layout(width="420px"))
    out = widgets.Output()
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot()
    state = {"busy": False}

    def redraw(*_):
        if state["busy"]:
            return
        ax.clear()
        _draw_slice(ax, vol, buttons.value, slider.value, ds, image=img)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        with out:
            out.clear_output(wait=True)
            display(Image(buf.getvalue()))

    def new_axis(change):
        state["busy"] = True  # one redraw for the pair of changes
        try:
            start[change["old"]] = slider.value
            slider.max = vol.shape[change["new"]] - 1
            slider.value = start[change["new"]]
        finally:
            state["busy"] = False
        redraw()

    buttons.observe(new_axis, names="value")
    slider.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([buttons, slider, out])
    box.axis_buttons, box.index_slider, box.output, box.figure = buttons, slider, out, fig
    return box


def front_depth(volume, *, spec=None, level: float = 0.5) -> np.ndarray:
    """Depth of the front surface per pixel -> (H, W) float32 crop pixels (z toward the viewer),
    NaN where no voxel is inside: z = (d + 1) / depth_scale for the frontmost inside slice d
    (the front face of that voxel)."""
    vol = _volume(volume)
    ds = _depth_scale(vol, spec)
    inside = vol > level
    D = vol.shape[0]
    top = D - 1 - np.argmax(inside[::-1], axis=0)  # frontmost inside slice (high d = front)
    z = (top + 1).astype(np.float32) / np.float32(ds)
    z[~inside.any(0)] = np.nan
    return z


def overlay_volume(image, volume, *, spec=None, level: float = 0.5, size: float = 3.6):
    """The volume over its image, to check alignment -> Figure with two axes.

    Left: the image with the volume's footprint (pixels with any voxel inside) outlined.
    Right: the image under the front depth (:func:`front_depth`, crop pixels, nearer = brighter).
    A well-aligned target covers the face and nothing else; its depth is highest at the nose.
    """
    import matplotlib.pyplot as plt

    vol = _volume(volume)
    H, W = vol.shape[1:]
    img = _image(image, (H, W))
    z = front_depth(vol, spec=spec, level=level)
    footprint = np.isfinite(z)
    fig, (a, b) = plt.subplots(1, 2, figsize=(2 * size + 1.0, size + 0.3))
    a.imshow(img, extent=(0, W, H, 0))
    if footprint.any() and not footprint.all():
        a.contour(np.arange(W) + 0.5, np.arange(H) + 0.5, footprint.astype(float), levels=[0.5],
                  colors=[INSIDE_RGB], linewidths=1.2)
    a.set_title(f"footprint: {int(footprint.sum())} of {H * W} pixels", fontsize=9)
    b.imshow(img, extent=(0, W, H, 0))
    im = b.imshow(np.ma.masked_invalid(z), extent=(0, W, H, 0), cmap="viridis", alpha=0.7, interpolation="nearest")
    fig.colorbar(im, ax=b, fraction=0.046, pad=0.03, label="front depth z (crop pixels)")
    b.set_title("front depth (nearer = brighter)", fontsize=9)
    for ax in (a, b):
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Meshes

def _mesh(vertices, faces):
    from .raster import check_mesh

    return check_mesh(vertices, faces)


def pack_colours(colours, n: int) -> np.ndarray:
    """(N, 3) uint8 or float [0, 1] colours -> (N,) uint32 0xRRGGBB, as k3d wants them."""
    c = np.asarray(colours)
    if c.ndim != 2 or c.shape[0] != n or c.shape[1] not in (3, 4):
        raise ValueError(f"colours must have shape ({n}, 3), one RGB per vertex; got {c.shape}")
    if c.dtype.kind == "f":
        if not np.all(np.isfinite(c)) or c.min() < 0 or c.max() > 1:
            raise ValueError("float colours must be finite values in [0, 1]; for 0..255 pass uint8")
        c = np.rint(c * 255)
    elif c.dtype != np.uint8:
        raise ValueError(f"colours must be uint8 or float in [0, 1]; got dtype {c.dtype}")
    c = c[:, :3].astype(np.uint32)
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


def mesh_k3d(vertices, faces, *, colours=None, name: str = "face", color: int = 0xD9B8A0, plot=None,
             height: int = 480, **plot_kw):
    """An interactive WebGL view of a mesh (k3d) -> the k3d Plot (display it; a notebook shows
    the last expression of a cell). Drag to rotate, scroll to zoom.

    vertices: (N, 3) image space (y down, z toward the viewer); shown y-up (y -> -y, with the
    winding reversed so the normals still point out), camera in front of the face.
    faces: (M, 3). colours: optional (N, 3) per-vertex RGB (uint8 or float [0, 1]), e.g. from
    :func:`vrnkit.surface.sample_vertex_colours`; without them the mesh is one ``color``.
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
    mesh = k3d.mesh(v_up, f_up, color=int(color), name=name, flat_shading=False, side="double", **kw)
    if plot is None:
        opts = dict(height=height, grid_visible=False, camera_auto_fit=False, axes_helper=0.0,
                    background_color=0xFFFFFF)
        opts.update(plot_kw)
        plot = k3d.plot(**opts)
        lo, hi = v_up.min(0).astype(float), v_up.max(0).astype(float)
        centre, extent = (lo + hi) / 2, float(max(hi[:2] - lo[:2]))
        # camera_fov 60 deg: the face fills about two thirds of the view from this distance.
        eye = centre + [0.0, 0.0, 1.15 * extent + (hi[2] - centre[2])]
        plot.camera = [*eye, *centre, 0.0, 1.0, 0.0]
    plot += mesh
    return plot


def save_k3d_html(plot, path) -> str:
    """Write ``plot.get_snapshot()`` to ``path``: one self-contained HTML file (no server, no
    internet) that shows the interactive plot in any browser. Written to a temporary file in
    the same folder and renamed, so a reader never sees half a file. Returns the path."""
    from .files import atomic_write

    path = os.fspath(path)
    html = plot.get_snapshot()
    atomic_write(path, lambda tmp: Path(tmp).write_text(html, encoding="utf-8"))
    return path


def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # area-weighted
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], n)
    return vn / (np.linalg.norm(vn, axis=1, keepdims=True) + 1e-12)


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
    c = pack_colours(colours, n)
    return np.stack([(c >> 16) & 255, (c >> 8) & 255, c & 255], 1) / 255.0


def render_mesh(vertices, faces, *, colours=None, size: int = 256, yaw: float = 0.0, margin: float = 0.06,
                light=(-0.4, -0.5, 1.0), background=1.0, supersample: int = 2) -> np.ndarray:
    """A shaded picture of a mesh through vrnkit's z-buffer -> (size, size, 3) float32 in [0, 1].

    vertices: (N, 3) image space (y down, z toward the viewer); faces: (M, 3).
    colours: optional (N, 3) per-vertex RGB (uint8 or float [0, 1]); default light grey.
    yaw: degrees; the mesh is turned about the vertical axis through its centre (positive:
    the part at image right, a face's own left side, turns toward the camera) before it is drawn.
    The mesh is scaled to fill the picture (``margin`` on each side). Shading: two-sided Lambert
    with smooth vertex normals (a light from the upper left front), plus ambient light.
    """
    v, f = _mesh(vertices, faces)
    c = _rgb01(colours, len(v))
    centre = (v.min(0) + v.max(0)) / 2
    t = np.radians(yaw)
    rot = np.array([[np.cos(t), 0, -np.sin(t)], [0, 1, 0], [np.sin(t), 0, np.cos(t)]])
    p = (v - centre) @ rot.T
    S = int(size) * int(supersample)
    k = S * (1 - 2 * margin) / max(float(np.ptp(p[:, 0])), float(np.ptp(p[:, 1])), 1e-9)
    rgb, mask = _shade(p * k + [S / 2, S / 2, 0.0], f, _vertex_normals(p, f), c, S, S, light)
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
    rgb, mask = _shade(v, f, _vertex_normals(v, f), c, H, W, light)
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
