"""Pictures: a gallery of face crops with their 68 landmarks.

>>> import numpy as np
>>> fig = gallery(np.zeros((2, 64, 64, 3), np.uint8), np.full((2, 68, 2), 32.0), cols=2)
>>> len(fig.axes)
2
"""
from __future__ import annotations

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
        ax.imshow(images[k])
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
