"""Configuration in one place: the quick/full switch, the seed, and volume presets.

One preset vocabulary for everything that has a size: "cpu" (64 px crops, 64^3 volumes: two CPU
cores), "colab" and "paper" (the paper's 192 px crops and 200x192x192 volumes; they differ in
network size and training length, see vrnkit.models and vrnkit.train). Quick mode uses "cpu",
full mode "paper".

Everything that depends on "how big" reads it from here, so a notebook can print the
configuration it resolved and a student can see every knob in one file.

>>> from vrnkit.config import VolumeSpec, resolve_mode
>>> VolumeSpec.preset("paper").shape
(200, 192, 192)
"""
from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass

import numpy as np

# The one seed every generator and trainer starts from unless told otherwise.
SEED = 0

# Where vrnkit lives. Each notebook's setup cell clones it on Colab before vrnkit can be imported, so
# it carries a copy; tests/test_notebooks.py keeps every copy (and the README's Colab links) equal.
REPO_URL = "https://github.com/vrnkit/vrnkit"
# A notebook's Open-in-Colab link is COLAB_URL + its file name: Colab opens it straight from GitHub.
COLAB_URL = "https://colab.research.google.com/github/" + REPO_URL.removeprefix("https://github.com/") + "/blob/main/notebooks/"

MODES = ("quick", "full")


def resolve_mode(mode: str | None = None) -> str:
    """Return "quick" or "full".

    Order: the argument, then the VRNKIT_MODE environment variable, then "full" when CUDA
    is available and "quick" otherwise. Quick mode uses tiny presets that run on two CPU
    cores in minutes (CI uses it); full mode uses the paper's sizes on a GPU.
    """
    mode = mode or os.environ.get("VRNKIT_MODE") or None
    if mode is None:
        try:
            import torch

            mode = "full" if torch.cuda.is_available() else "quick"
        except ImportError:  # NumPy-only use of the package
            mode = "quick"
    mode = mode.strip().lower()
    if mode not in MODES:
        raise ValueError(f"VRNKIT_MODE must be one of {MODES}, got {mode!r}")
    return mode


def seed_everything(seed: int = SEED) -> None:
    """Seed Python, NumPy and PyTorch (if installed) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


@dataclass(frozen=True)
class VolumeSpec:
    """Size of the crop and of the volume aligned with it.

    A volume is an array (depth, height, width); voxel (d, y, x) has its centre at crop
    coordinates (x + 0.5, y + 0.5, (d + 0.5) / depth_scale). Front of the face = high d.
    """

    depth: int = 200  # D: number of depth slices
    height: int = 192  # H: crop height in pixels (= volume height)
    width: int = 192  # W: crop width in pixels (= volume width)
    depth_scale: float = 2.0  # slices per pixel of depth: 200 slices span 100 px
    face_size: float = 90.0  # sqrt(w*h) of the 68-landmark box after cropping (paper: 90 px)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.depth, self.height, self.width)

    @property
    def depth_span(self) -> float:
        """Depth covered by the volume, in crop pixels."""
        return self.depth / self.depth_scale

    @staticmethod
    def preset(name: str) -> "VolumeSpec":
        """Named presets: "paper" and "colab" (200x192x192), "cpu" (64x64x64, same proportions)."""
        try:
            return VOLUME_PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown volume preset {name!r}; choose one of {sorted(VOLUME_PRESETS)}") from None

    def to_dict(self) -> dict:
        return asdict(self)


VOLUME_PRESETS = {
    # The paper: 192x192 crops, 200 slices at 2 slices per pixel.
    "paper": VolumeSpec(),
    # A Colab GPU trains a smaller network on the paper's volumes.
    "colab": VolumeSpec(),
    # Quick mode, two CPU cores: a third of the paper's size in x and y; 64 slices at 2 per pixel
    # span 32 px of depth, as 200 span 100 px at 192 (ratio kept within 4 %).
    "cpu": VolumeSpec(depth=64, height=64, width=64, depth_scale=2.0, face_size=30.0),
}


def preset_for_mode(mode: str | None = None) -> str:
    """The preset a mode uses, for data, volumes, networks and training: "paper" for full, "cpu"
    for quick."""
    return "paper" if resolve_mode(mode) == "full" else "cpu"


def resolve_volume_spec(preset: str | None = None, mode: str | None = None) -> VolumeSpec:
    """The named volume preset; None: the one the mode uses (:func:`preset_for_mode`)."""
    return VolumeSpec.preset(preset or preset_for_mode(mode))
