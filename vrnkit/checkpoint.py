"""Model files: a checkpoint carries its weights, its model config and whatever the trainer adds
(the volume spec, the training config, metrics, optimiser state), so a file alone rebuilds its model.

>>> import tempfile, os
>>> from vrnkit.models import ModelConfig, build_model
>>> config = ModelConfig.preset("cpu")
>>> path = save_checkpoint(os.path.join(tempfile.mkdtemp(), "m.pt"), build_model(config), config)
>>> model, loaded, extra = load_checkpoint(path, expect="vrn")
>>> loaded == config
True
"""
from __future__ import annotations

import io
import os
import pickle
from dataclasses import fields
from pathlib import Path

import torch
from torch import nn

from .config import VolumeSpec
from .files import atomic_write
from .models import KINDS, MODEL_PRESETS, ModelConfig, build_model

# Bump when the layout of the checkpoint dict or of the networks changes, so that an old file
# fails loudly instead of loading into the wrong network.
CHECKPOINT_VERSION = 1
CHECKPOINT_FORMAT = "vrnkit.model"  # marks a file as a vrnkit model checkpoint


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


def volume_spec_of(config, extra: dict | None = None) -> VolumeSpec:
    """The VolumeSpec a model's output lives in: the one its checkpoint carries (``extra["volume"]``),
    else the paper's proportions (2 slices per pixel, face 90/192 of the crop)."""
    if extra and "volume" in extra:
        return VolumeSpec(**extra["volume"])
    return VolumeSpec(depth=config.depth, height=config.image_size, width=config.image_size,
                      depth_scale=2.0, face_size=90.0 * config.image_size / 192)
