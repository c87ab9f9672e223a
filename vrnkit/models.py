"""The networks of VRN (Jackson et al., ICCV 2017) in one readable file.

Three models regress a face volume from a single image:

* ``VRN``          two stacked hourglasses, image -> volume logits.
* ``VRNMultitask`` three hourglasses: a shared one feeding a fork of two, one giving 68 landmark
  heatmaps, the other the volume.
* ``VRNGuided``    a stacked-hourglass landmark network whose 68 heatmaps are stacked with the
  RGB image (3 + 68 = 71 channels) as the input of a VRN.

and one, ``DirectRegression``, is the paper's foil: VRN's stem and hourglasses regressing the 3D
positions of a sparse face mesh with an L2 loss, instead of a volume
(``out["vertices"]``: (B, num_vertices, 3) crop pixels).

Every volume model returns the same kind of output, so the trainer needs one code path::

    out = model(image)             # image: (B, 3, H, W) float in [0, 1]
    out["volume"]                  # (B, D, H, W) logits; sigmoid -> P(voxel inside the face)
    out.get("heatmaps")            # list of (B, 68, H/4, W/4) raw heatmaps, or absent (VRN)

Channel d of pixel (y, x) of ``out["volume"]`` is voxel (d, y, x) of the volume (front of the
face = high d), so ``torch.sigmoid(out["volume"][b])`` is the (D, H, W) soft volume of image b.
Heatmaps are linear outputs (no sigmoid), meant to be regressed with MSE onto Gaussians whose peak
is 1; "heatmaps" is a list (one entry per supervised stack: train on all of them; the last one is
the prediction).

Example (the "cpu" preset runs in well under a second on a laptop):

>>> import torch
>>> from vrnkit.models import ModelConfig, build_model, count_parameters
>>> config = ModelConfig.preset("cpu", kind="vrn")
>>> model = build_model(config).eval()
>>> with torch.no_grad():
...     out = model(torch.rand(2, 3, config.image_size, config.image_size))
>>> tuple(out["volume"].shape)
(2, 64, 64, 64)
>>> count_parameters(model) < 1_000_000
True

Their sizes (parameters, multiply-accumulates, bytes) are counted in :mod:`vrnkit.modelsize`
(``vrnkit models`` prints the table); files are written and read in :mod:`vrnkit.checkpoint`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("vrn", "multitask", "guided", "direct")
VOLUME_KINDS = ("vrn", "multitask", "guided")  # "direct" regresses vertices, not a volume
TARGETS = ("aligned", "frontal")  # what the volume shows: the face as posed in the image, or frontal



# ----------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network; stored inside every checkpoint."""

    kind: str = "vrn"  # "vrn" | "multitask" | "guided"
    features: int = 256  # channels inside the hourglasses (paper: 256)
    image_size: int = 192  # side of the square input crop in pixels (paper: 192)
    depth: int = 200  # D: number of output volume slices (paper: 200)
    num_landmarks: int = 68  # heatmap channels of the multitask / guided models (iBUG 68)
    hourglass_depth: int = 4  # down-sampling steps in each hourglass (48 -> 24 -> 12 -> 6 -> 3)
    residuals: int = 3  # residual modules per hourglass branch and scale (Newell's nModules)
    stacks: int = 2  # hourglasses of the volumetric network (paper: 2; multitask uses 1 + fork)
    landmark_stacks: int = 2  # hourglasses of the guided model's landmark network
    in_channels: int = 3  # RGB; the guided model's VRN part adds num_landmarks to this
    heatmap_sigma: float = 1.0  # Gaussian sigma of the landmark heatmaps in heatmap pixels (paper: 1; ablation: 2)
    target: str = "aligned"  # "aligned": the volume is posed like the face in the image (VRN); "frontal": the
    #                          frontal face at the same place and size (the paper's spatial-alignment ablation)
    num_vertices: int = 591  # direct: vertices regressed (SynthFaces' sparse mesh, FaceModel.sparse_region)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError with a clear message if the numbers cannot build a network."""
        if self.kind not in KINDS:
            raise ValueError(f"ModelConfig.kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("features", "image_size", "depth", "num_landmarks", "hourglass_depth",
                     "residuals", "stacks", "landmark_stacks", "in_channels", "num_vertices"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if isinstance(self.heatmap_sigma, bool) or not isinstance(self.heatmap_sigma, (int, float)) \
                or not 0 < self.heatmap_sigma <= 16:
            raise ValueError(f"ModelConfig.heatmap_sigma must be a number in (0, 16] heatmap pixels, got {self.heatmap_sigma!r}")
        if self.target not in TARGETS:
            raise ValueError(f"ModelConfig.target must be one of {TARGETS}, got {self.target!r}")
        if self.features % 2:
            raise ValueError(f"ModelConfig.features must be even (bottlenecks use half width), "
                             f"got {self.features}")
        check_image_size(self.image_size, self.hourglass_depth)

    @staticmethod
    def preset(name: str, *, kind: str = "vrn") -> "ModelConfig":
        """Named presets "paper", "colab", "cpu" (see MODEL_PRESETS) for a model kind."""
        if name not in MODEL_PRESETS:
            raise ValueError(f"unknown model preset {name!r}; "
                             f"choose one of {sorted(MODEL_PRESETS)}")
        return replace(MODEL_PRESETS[name], kind=kind)

    def to_dict(self) -> dict:
        """Plain dict (ints, floats and strings), safe for torch.load(weights_only=True)."""
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "ModelConfig":
        known = {f.name for f in fields(ModelConfig)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}; known fields: {sorted(known)}")
        return ModelConfig(**d)


def check_image_size(size: int, hourglass_depth: int) -> None:
    """The stem divides by 4 and each hourglass level halves again: size % (4 * 2**depth) == 0."""
    step = 4 * 2**hourglass_depth
    if size % step:
        raise ValueError(f"image size {size} must be a multiple of 4 * 2**hourglass_depth = {step} "
                         f"(e.g. {max(step, size // step * step)}); pick another size or a "
                         f"smaller hourglass_depth")


MODEL_PRESETS = {
    # The paper: 256 features, 192x192 input, 200x192x192 output. Three residuals per hourglass
    # branch (Newell's nModules=3) give the VRN 17.7M parameters (8.5 GMACs per image), close to
    # the ~19M of the released model. With one residual it would have only 6.5M. (A
    # layer listing of the released file, dezmoanded/vrn-torch-to-keras list.txt, shows ~45
    # residual modules per stack, nested a little differently; we keep Newell's plain hourglass.)
    "paper": ModelConfig(),  # the defaults above
    # Colab (one 16 GB T4, a few hours on 300W-LP's 61k faces). Time, not memory, is the limit:
    # even the paper VRN keeps only ~0.3 GB of float32 activations per image for backward. Width
    # is the knob: hourglass cost grows with features**2, so 128 features and one residual per
    # branch give the VRN 1.7M parameters and 1.7 GMACs per image, 5x less compute than the paper
    # preset (the 96x96 stem and the 200-channel head do not shrink, so not 16x). Estimated (not
    # measured here: no GPU) at 150-300 images/s with fp16 autocast on a T4: 4-7 minutes per
    # epoch, ~20-30 epochs in 2-3 hours; batch 32 keeps ~3.5 GB of fp32 activations. Input and
    # output sizes stay at the paper's 192 / 200 so results compare with the paper's tables.
    "colab": ModelConfig(features=128, image_size=192, depth=200, residuals=1),
    # Quick mode on 2 CPU cores (matches VolumeSpec.preset("cpu"): 64x64x64 volumes).
    # 64 features: the VRN has 0.46M parameters (1.9 MB float32 checkpoint, guided 3.9 MB) and
    # 0.11 GMACs per image; a training step at batch 8 takes ~55 ms (VRN) to ~110 ms (guided) on
    # 2 cores. Wider is barely slower (128: ~70 ms, the fixed-width stem dominates) but gives 3x
    # bigger checkpoints for no gain on a few thousand synthetic faces.
    # hourglass_depth 3: the trunk is 16x16, so 4 levels would end at 1x1 where the 3x3 convs see
    # only zero padding; 3 levels end at 2x2, close to the paper's 3x3 bottom.
    "cpu": ModelConfig(features=64, image_size=64, depth=64, hourglass_depth=3, residuals=1,
                       landmark_stacks=1),
}


# ----------------------------------------------------------------------------------------------
# Building blocks


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1 (half width), BN-ReLU-3x3, BN-ReLU-1x1 (full width).

    The skip is the identity, or a 1x1 conv when the widths differ.
    (B, cin, H, W) -> (B, cout, H, W).
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cout // 2
        # Convs followed by a BatchNorm need no bias: the BN's mean subtraction would cancel it.
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(mid), nn.Conv2d(mid, mid, 3, padding=1, bias=False)
        self.bn3, self.conv3 = nn.BatchNorm2d(mid), nn.Conv2d(mid, cout, 1)
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.bn1(x)))
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        return y + self.skip(x)


class Hourglass(nn.Module):
    """Newell et al.'s hourglass, written recursively: (B, f, H, W) -> (B, f, H, W).

    At each of ``depth`` levels: residuals on the skip branch at this scale; max-pool, residuals,
    the inner hourglass (plain residuals at the bottom), residuals, nearest upsample x2; add.
    Each "residuals" is a chain of ``residuals`` modules (1 in Newell's default).
    """

    def __init__(self, features: int, depth: int, *, residuals: int = 1):
        super().__init__()

        def chain() -> nn.Sequential:
            return nn.Sequential(*(Residual(features, features) for _ in range(residuals)))

        self.skip = chain()
        self.down = chain()
        self.inner = Hourglass(features, depth - 1, residuals=residuals) if depth > 1 else chain()
        self.up = chain()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(x)
        y = self.down(F.max_pool2d(x, 2))
        y = self.up(self.inner(y))
        return skip + F.interpolate(y, scale_factor=2, mode="nearest")


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """1x1 conv + BN + ReLU (Newell's 'lin' layer after each hourglass)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Stack(nn.Module):
    """One stack: hourglass, residual, 1x1 conv-BN-ReLU. (B, f, h, w) -> (B, f, h, w).

    The caller adds the result to the stack's input (x = x + stack(x)), as the released VRN does.
    """

    def __init__(self, features: int, hourglass_depth: int, *, residuals: int = 1):
        super().__init__()
        self.hourglass = Hourglass(features, hourglass_depth, residuals=residuals)
        self.residual = Residual(features, features)
        self.lin = conv_bn_relu(features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.residual(self.hourglass(x)))


class Stem(nn.Module):
    """7x7/2 conv to 64, residual to 128, 2x2 max-pool, residuals to ``features``.

    (B, cin, H, W) -> (B, features, H/4, W/4); 192 -> 48 in the paper.
    """

    def __init__(self, cin: int, features: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, 64, 7, stride=2, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(64)
        self.res1 = Residual(64, 128)
        self.res2 = Residual(128, 128)
        self.res3 = Residual(128, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.res1(F.relu(self.bn(self.conv(x))))
        return self.res3(self.res2(F.max_pool2d(x, 2)))


class Head(nn.Module):
    """BN-ReLU-1x1 conv from the (pre-activation) trunk to ``cout`` output channels."""

    def __init__(self, features: int, cout: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(features)
        self.conv = nn.Conv2d(features, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(self.bn(x)))


def upsample4(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x4: (B, C, h, w) -> (B, C, 4h, 4w)."""
    return F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)


def check_input(image: torch.Tensor, cin: int, hourglass_depth: int) -> None:
    """Shape check at the boundary, with a message that says what was expected."""
    if image.ndim != 4 or image.shape[1] != cin:
        raise ValueError(f"expected an image batch (B, {cin}, H, W), "
                         f"got shape {tuple(image.shape)}")
    check_image_size(image.shape[2], hourglass_depth)
    check_image_size(image.shape[3], hourglass_depth)


# ----------------------------------------------------------------------------------------------
# The three models (and the landmark network of VRN-Guided)


class VRN(nn.Module):
    """Volumetric Regression Network: stem, ``stacks`` hourglasses, head, bilinear x4.

    forward(image (B, cin, H, W)) -> {"volume": (B, depth, H, W) logits}.
    No intermediate supervision: each stack adds its output to its input.
    """

    def __init__(self, config: ModelConfig, *, in_channels: int | None = None):
        super().__init__()
        self.config = config
        self.in_channels = in_channels or config.in_channels
        self.stem = Stem(self.in_channels, config.features)
        self.stacks = nn.ModuleList(Stack(config.features, config.hourglass_depth,
                                          residuals=config.residuals) for _ in range(config.stacks))
        self.head = Head(config.features, config.depth)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(image, self.in_channels, self.config.hourglass_depth)
        x = self.stem(image)
        for stack in self.stacks:
            x = x + stack(x)
        return {"volume": upsample4(self.head(x))}


class VRNMultitask(nn.Module):
    """VRN-Multitask: a shared hourglass feeding a fork of two (landmarks / volume).

    forward(image (B, 3, H, W)) -> {"volume": (B, depth, H, W) logits,
                                    "heatmaps": [(B, 68, H/4, W/4)]}.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        f, hd, r = config.features, config.hourglass_depth, config.residuals
        self.stem = Stem(config.in_channels, f)
        self.shared = Stack(f, hd, residuals=r)
        self.landmark_branch = Stack(f, hd, residuals=r)
        self.landmark_head = Head(f, config.num_landmarks)
        self.volume_branch = Stack(f, hd, residuals=r)
        self.volume_head = Head(f, config.depth)

    def forward(self, image: torch.Tensor) -> dict:
        check_input(image, self.config.in_channels, self.config.hourglass_depth)
        x = self.stem(image)
        x = x + self.shared(x)
        heatmaps = self.landmark_head(x + self.landmark_branch(x))
        volume = upsample4(self.volume_head(x + self.volume_branch(x)))
        return {"volume": volume, "heatmaps": [heatmaps]}


class LandmarkNet(nn.Module):
    """Stacked hourglasses with intermediate supervision (Newell et al. 2016 / FAN).

    forward(image (B, 3, H, W)) -> list of ``stacks`` heatmaps (B, 68, H/4, W/4); train on all,
    use the last. Between stacks the heatmaps are mapped back to features and added to the trunk.
    """

    def __init__(self, config: ModelConfig, *, stacks: int):
        super().__init__()
        self.config = config
        f, k = config.features, config.num_landmarks
        self.stem = Stem(config.in_channels, f)
        self.stacks = nn.ModuleList(Stack(f, config.hourglass_depth, residuals=config.residuals)
                                    for _ in range(stacks))
        self.heads = nn.ModuleList(nn.Conv2d(f, k, 1) for _ in range(stacks))
        # Re-injection layers exist only between stacks (the last stack's output is final).
        self.merge_features = nn.ModuleList(nn.Conv2d(f, f, 1) for _ in range(stacks - 1))
        self.merge_heatmaps = nn.ModuleList(nn.Conv2d(k, f, 1) for _ in range(stacks - 1))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        check_input(image, self.config.in_channels, self.config.hourglass_depth)
        x = self.stem(image)
        outputs = []
        for i, stack in enumerate(self.stacks):
            y = stack(x)
            heatmaps = self.heads[i](y)
            outputs.append(heatmaps)
            if i < len(self.stacks) - 1:
                x = x + self.merge_features[i](y) + self.merge_heatmaps[i](heatmaps)
        return outputs


class VRNGuided(nn.Module):
    """VRN-Guided: landmark network + a VRN whose input is RGB + 68 upsampled heatmaps.

    forward(image (B, 3, H, W), heatmaps=None) -> {"volume": (B, depth, H, W) logits,
        "heatmaps": [landmark_stacks x (B, 68, H/4, W/4)]}.
    ``heatmaps`` (B, 68, H/4, W/4): ground truth while training; when None, the landmark
    network's last prediction is used, detached (the volume loss does not train the landmarks).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.landmarks = LandmarkNet(config, stacks=config.landmark_stacks)
        self.vrn = VRN(config, in_channels=config.in_channels + config.num_landmarks)

    def forward(self, image: torch.Tensor, heatmaps: torch.Tensor | None = None) -> dict:
        predicted = self.landmarks(image)
        if heatmaps is None:
            heatmaps = predicted[-1].detach()
        b, _, h, w = image.shape
        expected = (b, self.config.num_landmarks, h // 4, w // 4)
        if tuple(heatmaps.shape) != expected:
            raise ValueError(f"heatmaps must have shape (B, K, H/4, W/4) = {expected}, "
                             f"got {tuple(heatmaps.shape)}")
        guided_input = torch.cat([image, upsample4(heatmaps.to(image.dtype))], dim=1)
        return {"volume": self.vrn(guided_input)["volume"], "heatmaps": predicted}


class DirectRegression(nn.Module):
    """VRN's stem and stacked hourglasses, then a fully connected head regressing the 3D positions
    of ``num_vertices`` face vertices, trained with an L2 loss (the paper's Section 3 argument:
    regressing vertices directly is harder than regressing a volume aligned with the image).

    forward(image (B, 3, H, W)) -> {"vertices": (B, num_vertices, 3)} in crop pixels (x, y, and z
    in crop pixels from the volume's back); the head's outputs are offsets from the crop's centre
    in units of the crop size, so that a zero output is a point in the middle of the crop.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.stem = Stem(config.in_channels, config.features)
        self.stacks = nn.ModuleList(Stack(config.features, config.hourglass_depth,
                                          residuals=config.residuals) for _ in range(config.stacks))
        self.reduce = nn.Sequential(nn.BatchNorm2d(config.features), nn.ReLU(), nn.Conv2d(config.features, 32, 1))
        self.fc = nn.Linear(32 * 4 * 4, 3 * config.num_vertices)
        nn.init.normal_(self.fc.weight, std=1e-3)  # start with every vertex near the crop's centre
        nn.init.zeros_(self.fc.bias)
        depth_span = config.depth / 2  # depth_scale 2 in every preset
        centre = torch.tensor([config.image_size / 2, config.image_size / 2, depth_span / 2])
        self.register_buffer("centre", centre, persistent=False)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(image, self.config.in_channels, self.config.hourglass_depth)
        x = self.stem(image)
        for stack in self.stacks:
            x = x + stack(x)
        x = F.adaptive_avg_pool2d(self.reduce(x), 4).flatten(1)  # (B, 512): where things are, coarsely
        offsets = self.fc(x).view(len(x), self.config.num_vertices, 3)
        return {"vertices": self.centre + offsets * self.config.image_size}


def build_model(config: ModelConfig) -> nn.Module:
    """The network for ``config.kind``; ``model.config`` holds the config."""
    config.validate()
    return {"vrn": VRN, "multitask": VRNMultitask, "guided": VRNGuided, "direct": DirectRegression}[config.kind](config)


# ----------------------------------------------------------------------------------------------
# Counting parameters and multiply-accumulates


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
