"""Make the pictures in docs/images/ (run from the repository root, ~2 minutes on two CPU cores).

    python docs/make_figures.py

- contact_sheet.png: 8 held-out paper-size SynthFaces (synth-aflw2000 protocol: held-out
  identities, clutter, occluders): the input with its true landmarks (pixel centres where
  vrnkit puts them, see show_input), then for vrn-cpu, vrn-192 and vrn-guided-192 the mesh
  over the input and the mesh turned 60 degrees to each side. vrn-guided-192 is guided by the
  true landmarks here; vrn-cpu sees the same face rendered at its 64 px.
- astronaut.png: `vrnkit reconstruct` on scikit-image's astronaut (what `make demo` writes).
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vrnkit.reconstruct import load_model, predict_volume, reconstruct  # noqa: E402
from vrnkit.surface import SMOOTH, volume_to_mesh  # noqa: E402
from vrnkit.synthfaces.dataset import make_sample  # noqa: E402
from vrnkit.meshviz import overlay_mesh, render_mesh  # noqa: E402

OUT = ROOT / "docs" / "images"
MODELS = ("vrn-cpu", "vrn-192", "vrn-guided-192")
FACES = (27, 9, 13, 26, 11, 10, 4, 2)  # held-out faces from frontal (yaw 2) to 46 degrees


def contact_sheet(path: Path) -> None:
    nets = {name: load_model(name, device="cpu") for name in MODELS}
    cols = 1 + 3 * len(MODELS)
    fig, axes = plt.subplots(len(FACES), cols, figsize=(cols * 1.25, len(FACES) * 1.3))
    for r, index in enumerate(FACES):
        for c0, name in enumerate(MODELS):
            net, spec, _ = nets[name]
            sample, meta = make_sample("synth-aflw2000", index, spec=spec)
            probs = predict_volume(net, sample["image"], landmarks=sample["landmarks"])
            v, f = volume_to_mesh(probs, spec, smooth=SMOOTH)
            if c0 == len(MODELS) - 1:
                show_input(axes[r, 0], sample["image"], sample["landmarks"])
                axes[r, 0].set_ylabel(f"yaw {meta['yaw']:+.0f}", fontsize=7)
            overlay_mesh(sample["image"], v, f, alpha=0.75, ax=axes[r, 1 + 3 * c0], title=" ")
            for k, yaw in enumerate((-60.0, 60.0)):
                axes[r, 2 + 3 * c0 + k].imshow(render_mesh(v, f, size=128, yaw=yaw))
    for a in axes.flat:
        a.set_xticks([]), a.set_yticks([])
        for side in a.spines.values():
            side.set_visible(False)
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, 0.97))
    axes[0, 0].set_title("input", fontsize=8)
    for c0, name in enumerate(MODELS):  # one title over each model's three columns
        left, right = axes[0, 1 + 3 * c0].get_position(), axes[0, 3 + 3 * c0].get_position()
        fig.text((left.x0 + right.x1) / 2, 0.985, f"{name}: over the input, turned -60 and +60 deg",
                 ha="center", va="top", fontsize=8)
    save_small_png(fig, path, dpi=60)


def show_input(ax, image, landmarks) -> None:
    """The input crop with its 68 landmarks. vrnkit's landmarks are in pixel-corner
    coordinates (pixel (i, j) covers [i, i + 1) x [j, j + 1), its centre at i + 0.5), while
    imshow puts pixel centres on whole numbers; extent=(0, W, H, 0) makes them agree, so the
    dots land on the features (plain imshow would shift them half a pixel)."""
    H, W = image.shape[:2]
    ax.imshow(image, extent=(0, W, H, 0))
    ax.scatter(landmarks[:, 0], landmarks[:, 1], s=1.2, c="#39ff14", linewidths=0)


def save_small_png(fig, path: Path, *, dpi: int) -> None:
    """Save a figure as a 256-colour PNG (a third of the bytes; these pictures live in git)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    plt.close(fig)
    buffer.seek(0)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)


def astronaut(path: Path) -> None:
    from skimage.data import astronaut as photo

    rec = reconstruct(photo(), device="cpu")
    save_small_png(rec.picture(photo=photo()), path, dpi=60)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    contact_sheet(OUT / "contact_sheet.png")
    astronaut(OUT / "astronaut.png")
    for p in sorted(OUT.glob("*.png")):
        print(f"wrote {p} ({p.stat().st_size / 1e3:.0f} kB)")
