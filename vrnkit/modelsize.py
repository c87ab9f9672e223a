"""How big each network is: parameters, multiply-accumulates per image, bytes.

``vrnkit models`` prints the table of every preset and kind; bench_models.py compares it with
the released VRN.

>>> from vrnkit.models import ModelConfig
>>> row = model_summary(ModelConfig.preset("cpu"))
>>> row["kind"], row["params_M"] < 1
('vrn', True)
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .models import KINDS, MODEL_PRESETS, ModelConfig, build_model, count_parameters

# The released VRN (Torch7) has about 19M parameters (a layer listing of the released file).
PAPER_VRN_PARAMS = 19e6
TABLE_COLUMNS = ["preset", "kind", "features", "image", "depth", "params_M", "GMACs", "checkpoint_MB"]


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
