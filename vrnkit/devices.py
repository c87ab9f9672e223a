"""Where the networks run: device names checked once, mixed precision, and the processes of a
multi-GPU run (torchrun). Used by training and by inference alike.

>>> check_device("cpu")
>>> pick_device("cpu")
device(type='cpu')
>>> amp_dtype("auto", pick_device("cpu")) is None      # no autocast on the CPU
True
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def setup_distributed():
    """(rank, world, local_rank, started); starts the process group when launched by torchrun
    (env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0, False
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", init_method="env://")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), started


def check_device(name: str) -> None:
    """Raise ValueError unless ``name`` is "auto" or a device this machine has."""
    if name == "auto":
        return
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device (--device) {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device (--device) {name!r}: this machine has no CUDA GPU that PyTorch can use; "
                         "use --device cpu (or auto)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device (--device) {name!r}: this machine has {torch.cuda.device_count()} CUDA GPUs "
                         f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device (--device) {name!r}: vrnkit trains on cpu or cuda; use auto, cpu, cuda or cuda:N")


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # so NCCL and the caching allocator use this GPU
    return device


def amp_dtype(amp: str, device: torch.device):
    """The autocast dtype for ``amp`` on ``device`` (None: full float32)."""
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'off'; got {amp!r}")
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]
