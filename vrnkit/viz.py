"""Pictures of images and volumes: galleries, volume slices and widgets, overlays, training curves.
Meshes have their own module, :mod:`vrnkit.meshviz`.

Everything here takes NumPy arrays in vrnkit's conventions (README, "Conventions"): images (H, W, 3) in
crop pixels (x right, y down); volumes (D, H, W) with voxel (d, y, x) centred at crop
coordinates (x + 0.5, y + 0.5, (d + 0.5) / depth_scale), front of the face = high d; meshes
(N, 3) vertices in image space (y down, z toward the viewer) and (M, 3) faces.

- :func:`gallery`, :func:`save_gallery`: face crops with their 68 landmarks.
- :func:`volume_slices`: three orthogonal cuts through a volume; :func:`slice_widget`: the same
  with sliders (ipywidgets). :func:`overlay_volume`: the volume's footprint and front depth over
  the image, to check that the two are aligned.
- :func:`training_curve`: a run's loss and validation curves, from its metrics.csv.

ipywidgets is imported only by the functions that need it
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
    from .synthfaces.model import EXPRESSIONS, FaceModel
    from .synthfaces.render import random_pose, render_face

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
                 size: float = 7.0):
    """Browse a volume slice by slice: buttons pick the axis (d, y, x), a slider the index.

    Returns an ipywidgets VBox; display it (a notebook shows the last expression of a cell).
    It also carries ``.axis_buttons`` (ToggleButtons, values 0, 1, 2), ``.index_slider``
    (IntSlider), ``.output`` (the Output widget the picture goes to) and ``.figure`` (the
    matplotlib Figure, redrawn on every change; ``.figure.axes[0].images[-1].get_array()`` is
    the slice shown). Arguments as :func:`volume_slices`; ``axis`` and ``index`` choose the
    first slice (default: the middle of the face). ``size``: inches at 80 dpi (7: 560 px, large
    enough to read single voxels of a 64^3 volume).
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
                               continuous_update=True, layout=widgets.Layout(width=f"{int(80 * size)}px"))
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


def overlay_volume(image, volume, *, spec=None, level: float = 0.5, size: float = 3.6):
    """The volume over its image, to check alignment -> Figure with two axes.

    Left: the image with the volume's footprint (pixels with any voxel inside) outlined.
    Right: the image under the front depth (:func:`vrnkit.metrics.front_surface`, crop pixels,
    nearer = brighter).
    A well-aligned target covers the face and nothing else; its depth is highest at the nose.
    """
    import matplotlib.pyplot as plt

    vol = _volume(volume)
    H, W = vol.shape[1:]
    img = _image(image, (H, W))
    from .config import VolumeSpec
    from .metrics import front_surface

    _depth_scale(vol, spec)  # a spec must match the volume
    z = front_surface(vol, spec or VolumeSpec(*vol.shape), level=level).numpy()
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


def training_curve(metrics_csv, path) -> None:
    """Plot loss per step and validation IoU / NME estimate per epoch from a run's metrics.csv."""
    import pandas as pd
    from matplotlib.figure import Figure  # not pyplot: a notebook's backend is left alone

    df = pd.read_csv(metrics_csv)
    steps, epochs = df[df["kind"] == "step"], df[df["kind"] == "epoch"]
    fig = Figure(figsize=(10, 3.6))
    ax = fig.subplots(1, 2)
    smooth = steps["loss"].rolling(50, min_periods=1).mean()
    ax[0].plot(steps["step"], steps["loss"], alpha=0.25, lw=0.5, label="per step")
    ax[0].plot(steps["step"], smooth, label="mean of 50 steps")
    ax[0].set(xlabel="step", ylabel="volume loss (BCE)", yscale="log", title="training loss")
    ax[0].legend()
    ax[1].plot(epochs["epoch"] + 1, epochs["val_iou"], "o-", label="val IoU")
    ax[1].set(xlabel="epoch", ylabel="IoU", title="validation (held-out SynthFaces)")
    twin = ax[1].twinx()
    twin.plot(epochs["epoch"] + 1, epochs["val_nme"], "s--", color="C3", label="val NME estimate")
    twin.set_ylabel("NME estimate", color="C3")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
