"""The networks of VRN (Jackson et al., ICCV 2017) in one readable file.

Three models regress a face volume from a single image:

* ``VRN``          two stacked hourglasses, image -> volume logits.
* ``VRNMultitask`` three hourglasses: a shared one feeding a fork of two, one giving 68 landmark
  heatmaps, the other the volume.
* ``VRNGuided``    a stacked-hourglass landmark network whose 68 heatmaps are stacked with the
  RGB image (3 + 68 = 71 channels) as the input of a VRN.

Every model returns the same kind of output, so the trainer needs one code path::

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

``python -m vrnkit.models`` prints the parameters and multiply-accumulates of every preset.
"""
from __future__ import annotations

import copy
import io
import os
import pickle
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .files import atomic_write

KINDS = ("vrn", "multitask", "guided")

# Bump when the layout of the checkpoint dict or of the networks changes, so that an old file
# fails loudly instead of loading into the wrong network.
CHECKPOINT_VERSION = 1
CHECKPOINT_FORMAT = "vrnkit.model"  # marks a file as a vrnkit model checkpoint

# The released VRN (Torch7) has about 19M parameters (a layer listing of the released file).
PAPER_VRN_PARAMS = 19e6


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

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError with a clear message if the numbers cannot build a network."""
        if self.kind not in KINDS:
            raise ValueError(f"ModelConfig.kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("features", "image_size", "depth", "num_landmarks", "hourglass_depth",
                     "residuals", "stacks", "landmark_stacks", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
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
        """Plain dict (ints and strings), safe for torch.load(weights_only=True)."""
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
    # Quick mode on 2 CPU cores (matches VolumeSpec.preset("quick"): 64x64x64 volumes).
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


def build_model(config: ModelConfig) -> nn.Module:
    """The network for ``config.kind``; ``model.config`` holds the config."""
    config.validate()
    return {"vrn": VRN, "multitask": VRNMultitask, "guided": VRNGuided}[config.kind](config)


# ----------------------------------------------------------------------------------------------
# Counting parameters and multiply-accumulates


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(config_or_model: ModelConfig | nn.Module, image_size: int | None = None) -> int:
    """Multiply-accumulates of the convs and linear layers for ONE image (inference path).

    A conv counts Cout * Cin/groups * kh * kw * Hout * Wout, a linear layer in * out per output
    row; BN, ReLU, pooling, upsampling and additions are not counted (they are cheap in MACs,
    though not in memory traffic). The count is exact: forward hooks record every layer's output
    shape during one forward pass of a (1, Cin, size, size) image on the "meta" device (shapes
    only: no memory, no compute), so even the paper preset is counted in a fraction of a second.
    ``image_size`` defaults to the config's; a plain module (no ``.config``) needs it, and its
    first registered Conv2d must be the one that takes the input (that gives Cin).
    """
    if isinstance(config_or_model, ModelConfig):
        config = config_or_model
        with torch.device("meta"):
            model = build_model(config)
    else:
        config = getattr(config_or_model, "config", None)
        # A weightless copy: the caller's model (weights, device, train/eval mode) is untouched.
        model = copy.deepcopy(config_or_model).to("meta")
    size = image_size or (config.image_size if config is not None else None)
    if size is None:
        raise ValueError("count_macs needs image_size for a module without a .config")
    cin = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
    model.eval()  # BatchNorm in training mode refuses a batch of one at a 1x1 bottom

    total = 0

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_pixel = module.in_channels // module.groups * kh * kw
            total += output[0].numel() * per_pixel  # output[0]: Cout x Hout x Wout of image 0
        elif isinstance(module, nn.Linear):
            total += output[0].numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, cin, size, size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return total


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of the tensors in the state_dict (a checkpoint is this plus a few kB)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def model_summary(config: ModelConfig) -> dict:
    """One row: kind, sizes, parameters (M), GMACs per image and float32 checkpoint MB."""
    with torch.device("meta"):
        model = build_model(config)
    params = count_parameters(model)
    return {
        "kind": config.kind,
        "features": config.features,
        "image": config.image_size,
        "depth": config.depth,
        "params_M": params / 1e6,
        "GMACs": count_macs(config) / 1e9,
        "checkpoint_MB": state_dict_bytes(model) / 1e6,
        "params": params,
    }


def summary_table() -> list[dict]:
    """model_summary of every preset for every kind (a list of rows: pandas.DataFrame(rows))."""
    return [{"preset": name, **model_summary(ModelConfig.preset(name, kind=kind))}
            for name in MODEL_PRESETS for kind in KINDS]


def format_table(rows: list[dict], columns: list[str]) -> str:
    """Plain-text table (no pandas needed)."""
    cells = [[f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in columns]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Checkpoints


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded; the message names the file and the fix."""


def save_checkpoint(path: str | os.PathLike, model: nn.Module, config: ModelConfig, *,
                    extra: dict | None = None, half: bool = False) -> Path:
    """Write {format, format_version, config, state_dict, extra} to ``path`` atomically.

    The file is first written to a temporary file in the same folder and then renamed over
    ``path`` (os.replace), so a crash never leaves a half-written checkpoint behind. ``extra``
    holds anything else the trainer wants back (optimizer state, epoch, metrics...): plain
    dicts, lists, numbers, strings and tensors only, so torch.load(weights_only=True) reads it
    (checked here, so a bad value fails now rather than when you try to resume).
    """
    path = Path(path)
    model = getattr(model, "_orig_mod", model)  # torch.compile wraps the model: save the original
    if getattr(model, "config", config) != config:
        raise ValueError(f"save_checkpoint: the model was built from {model.config}, not from the "
                         f"config passed ({config}); pass model.config")
    extra = dict(extra or {})
    _check_loadable(extra)
    state = model.state_dict()
    if half:  # shipped weights: float16 halves the file; load_state_dict casts back to float32
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "state_dict": state,
        "extra": extra,
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def _check_loadable(extra: dict) -> None:
    """Raise ValueError if torch.load(weights_only=True) would refuse something in ``extra``."""
    buffer = io.BytesIO()
    torch.save(extra, buffer)
    buffer.seek(0)
    try:
        torch.load(buffer, weights_only=True)
    except pickle.UnpicklingError as e:
        why = next((line.strip() for line in str(e).splitlines() if "Unsupported" in line), str(e))
        raise ValueError(f"save_checkpoint: extra holds a value that torch.load(weights_only=True) "
                         f"refuses ({why[:200]}); store only dicts, lists, numbers, strings and "
                         f"tensors (e.g. float(x) for a NumPy number, torch.as_tensor(a) for an "
                         f"array)") from e


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu",
                    expect: ModelConfig | str | None = None) -> tuple[nn.Module, ModelConfig, dict]:
    """Rebuild the model stored by save_checkpoint: returns (model in eval mode, config, extra).

    ``map_location``: the device the model and the tensors in ``extra`` end up on ("cpu", "cuda").
    ``expect`` (optional): a ModelConfig that the stored one must equal, a kind ("vrn",
    "multitask", "guided") or a preset name ("paper", "colab", "cpu") it must match.
    Raises CheckpointError (a ValueError) naming the file and the fix when the file is missing,
    corrupt, not a vrnkit checkpoint, of another format version, not what ``expect`` says, or
    when its weights do not fit the network its config describes. Call model.train() to resume.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; check the path, or train "
                              f"a model first (save_checkpoint writes it)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, garbage bytes, unpickling errors...
        raise CheckpointError(f"checkpoint {str(path)!r} could not be read ({type(e).__name__}: "
                              f"{str(e)[:200]}); the file is truncated or corrupt: delete it and "
                              f"save or copy it again") from e
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a vrnkit model checkpoint (no "
                              f"format={CHECKPOINT_FORMAT!r} entry); write one with "
                              f"vrnkit.models.save_checkpoint")
    version = payload.get("format_version")
    if version != CHECKPOINT_VERSION:
        newer = isinstance(version, int) and version > CHECKPOINT_VERSION
        fix = "upgrade vrnkit to read it" if newer else "re-train or re-save it with this vrnkit"
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {version!r} but this "
                              f"vrnkit reads version {CHECKPOINT_VERSION}; {fix}")
    try:
        config = ModelConfig.from_dict(payload["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} has an invalid config ({e}); "
                              f"re-save it with vrnkit.models.save_checkpoint") from e
    if expect is not None:
        _check_expected(path, config, expect)

    model = build_model(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r}: state_dict does not fit the "
                              f"{config.kind} network its config describes ({str(e)[:300]}); the "
                              f"file was edited or written by other code: re-save it with "
                              f"save_checkpoint") from e
    model.to(map_location)
    return model.eval(), config, payload.get("extra", {})


def _check_expected(path: Path, config: ModelConfig, expect: ModelConfig | str) -> None:
    """Raise CheckpointError if ``config`` is not what the caller expected."""
    if isinstance(expect, str) and expect in KINDS:
        if config.kind != expect:
            raise CheckpointError(f"checkpoint {str(path)!r} holds a {config.kind!r} model, "
                                  f"expected {expect!r}; load a {expect} checkpoint or pass "
                                  f"expect={config.kind!r}")
        return
    if isinstance(expect, str):
        if expect not in MODEL_PRESETS:
            raise ValueError(f"expect must be a ModelConfig, a kind {KINDS} or a preset "
                             f"{tuple(MODEL_PRESETS)}, got {expect!r}")
        expect = ModelConfig.preset(expect, kind=config.kind)
    diff = {f.name: (getattr(config, f.name), getattr(expect, f.name))
            for f in fields(ModelConfig) if getattr(config, f.name) != getattr(expect, f.name)}
    if diff:
        listed = ", ".join(f"{k}={got!r} (expected {want!r})" for k, (got, want) in diff.items())
        raise CheckpointError(f"checkpoint {str(path)!r} does not match the expected config: "
                              f"{listed}; load the matching checkpoint, or change what you expect")


if __name__ == "__main__":
    rows = summary_table()
    print(format_table(rows, ["preset", "kind", "features", "image", "depth", "params_M", "GMACs",
                              "checkpoint_MB"]))
    paper = next(r for r in rows if r["preset"] == "paper" and r["kind"] == "vrn")
    print(f"\npaper preset VRN: {paper['params_M']:.1f}M parameters; the released VRN has about "
          f"{PAPER_VRN_PARAMS / 1e6:.0f}M")
