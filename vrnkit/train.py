"""Training VRN: one plain loop, readable top to bottom (in the spirit of nanoGPT's train.py).

    shards -> batch (image, slab, landmarks) -> on the device: augment, build the target volume
    (voxel.slabs_to_volumes) and heatmaps -> model -> BCE on volumes + MSE on heatmaps -> RMSprop

Everything a run needs is one :class:`TrainConfig`; ``train(config)`` writes into ``config.out``:
``metrics.csv`` (one row per step and per epoch, pandas reads it), ``last.pt`` (model, optimiser,
random states and data position: a killed run resumes exactly where it stopped, bit for bit on
the CPU with num_workers=0) and, at the end, ``model.pt`` (weights + config, for inference).

Several GPUs: ``torchrun --nproc_per_node=4 -m vrnkit.train --data DIR --out DIR`` (DDP; each
process trains on its own slice of every global batch; only rank 0 writes files).

>>> cfg = TrainConfig.preset("cpu", epochs=2)  # doctest: +SKIP
>>> result = train(cfg)                                                          # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import socket
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import models
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint, volume_spec_of
from .augment import AugmentConfig, draw_params, jitter_landmarks, landmarks_to_heatmaps, make_targets
from .devices import amp_dtype, check_device, pick_device, setup_distributed
from .config import SEED, VolumeSpec, preset_for_mode, seed_everything
from .files import atomic_write, check_number, check_out_folder, remove_temp_files
from .metrics import nme_estimate, volume_iou
from .datasets.shards import ShardDataset, ShardSampler, collate, read_manifest


@dataclass
class TrainConfig:
    """One training run. Presets: TrainConfig.preset("cpu" | "colab" | "paper")."""

    # model
    model: str = "vrn"  # kind: "vrn" | "multitask" | "guided"
    model_preset: str = "cpu"  # model size (vrnkit.models presets): "paper" | "colab" | "cpu"
    model_options: dict = field(default_factory=dict)  # ModelConfig fields to override, e.g. {"features": 32}
    # data
    data: str = "data/synth-300wlp"  # folder of shards (`vrnkit synth` writes one)
    val: str | None = None  # validation folder; None: the data folder's val_split, if it has one
    train_split: str | None = "train"  # split of `data` to train on (None: every sample)
    val_split: str = "val"  # split of `data` or `val` used for validation, if present
    val_holdout: int = 256  # else: samples held out of the end of `data` for validation (0: none)
    max_val_samples: int = 256  # validation samples per epoch (caps its time)
    nme_samples: int = 32  # of those, how many get the NME estimate (CPU nearest neighbours)
    # schedule (the paper: RMSprop, lr 1e-4, 1e-5 after 40 of 50 epochs)
    batch_size: int = 8  # images per process per forward pass
    accumulate: int = 1  # forward passes per optimiser step (global batch = batch * accumulate * processes)
    epochs: int = 50  # passes over the training set
    steps: int | None = None  # total optimiser steps; overrides epochs when given
    time_limit: float | None = None  # seconds of training (validation included); the run ends then, and
    #                                  the lr drop comes at lr_drop of this time ("train for an hour")
    lr: float = 1e-4  # learning rate at the start
    lr_final: float = 1e-5  # learning rate after the drop
    lr_drop: float = 0.8  # fraction of the run after which lr -> lr_final (40 / 50 epochs)
    # loss
    volume_weight: float = 1.0  # weight of the per-voxel sigmoid cross entropy
    heatmap_weight: float = 1.0  # weight of the heatmap MSE (multitask, guided), summed over stacks
    guide_jitter: float = 0.0  # guided: noise on the landmarks that guide the volume, as a mean error over
    #                            sqrt(w*h) of their box (a real detector: ~0.045); 0 = the paper's exact ones
    augment: bool = True  # the paper's augmentations (rotation, shift, scale, flip, colour)
    # speed
    device: str = "auto"  # "auto" (CUDA if present), "cpu", "cuda", "cuda:1"...
    amp: str = "auto"  # "auto" (bf16 on CUDA if supported, else fp16; off on CPU) | "bf16" | "fp16" | "off"
    channels_last: bool = False  # NHWC memory layout (faster convolutions on tensor-core GPUs)
    compile: bool = False  # torch.compile the model (slow first steps, faster later; GPU)
    num_workers: int = 0  # DataLoader worker processes (0: load in the training process)
    # bookkeeping
    out: str = "runs/vrn"  # folder for metrics.csv, last.pt, model.pt
    checkpoint_every: int = 500  # steps between checkpoints (also at each epoch end and the end)
    log_every: int = 1  # steps between metrics.csv rows (each row syncs the GPU once)
    seed: int = SEED  # model initialisation, data order and augmentations
    init_from: str | None = None  # start from these weights (a model.pt of the same config): fine-tuning
    progress: bool = True  # tqdm progress bar

    def check(self) -> "TrainConfig":
        """Raise ValueError naming the first setting out of its range (see LIMITS), before any work."""
        for name, limits in LIMITS.items():
            option = f"{name} (--{name.replace('_', '-')})" if name in CLI_OPTIONS else name
            check_number(getattr(self, name), option, **limits)
        if self.model not in models.KINDS:
            raise ValueError(f"model (--model) must be one of {models.KINDS}; got {self.model!r}")
        models.ModelConfig.preset(self.model_preset)  # an unknown preset names the choices
        unknown = sorted(set(self.model_options) - set(models.ModelConfig.__dataclass_fields__))
        if unknown:
            raise ValueError(f"model_options has unknown fields {unknown}; ModelConfig has "
                             f"{sorted(models.ModelConfig.__dataclass_fields__)}")
        amp_dtype(self.amp, torch.device("cpu"))  # an unknown amp names the choices
        check_device(self.device)
        check_out_folder(self.out)
        return self

    @staticmethod
    def preset(name: str, **overrides) -> "TrainConfig":
        """Named presets ("cpu", "colab", "paper"), with any field overridden by keyword."""
        if name not in TRAIN_PRESETS:
            raise ValueError(f"unknown training preset {name!r}; choose one of {sorted(TRAIN_PRESETS)}")
        return replace(TRAIN_PRESETS[name], **overrides)

    @staticmethod
    def for_mode(mode: str | None = None, **overrides) -> "TrainConfig":
        """The preset of a mode (VRNKIT_MODE): quick -> "cpu", full -> "paper"."""
        return TrainConfig.preset(preset_for_mode(mode), **overrides)


TRAIN_PRESETS = {
    # Quick mode, 2 CPU cores: 64^3 volumes. Short runs learn faster with a larger lr (3 epochs of
    # 1024 SynthFaces: validation IoU 0.57 at lr 1e-3, 0.56 at 3e-3, 0.47 at the paper's 1e-4).
    "cpu": TrainConfig(model_preset="cpu", batch_size=8, epochs=10, lr=1e-3, lr_final=1e-4,
                       checkpoint_every=200, out="runs/cpu"),
    # One Colab GPU, a few hours (see vrnkit.models for the size estimate).
    "colab": TrainConfig(model_preset="colab", batch_size=32, epochs=20, channels_last=True, num_workers=2,
                         log_every=10, checkpoint_every=1000, out="runs/colab"),
    # The paper: 192x192 crops, 200 slices, 50 epochs.
    "paper": TrainConfig(model_preset="paper", batch_size=32, epochs=50, channels_last=True, num_workers=4,
                         log_every=10, checkpoint_every=1000, out="runs/paper"),
}

# The allowed range of every number in a TrainConfig (vrnkit.files.check_number's arguments).
LIMITS = {
    "batch_size": dict(low=1, high=65536, integer=True),
    "accumulate": dict(low=1, high=65536, integer=True),
    "epochs": dict(low=1, high=10**6, integer=True),
    "steps": dict(low=1, high=10**9, integer=True, optional=True),  # None: use epochs
    "time_limit": dict(low=0, above=True, high=10**7, optional=True),  # seconds; None: no limit
    "lr": dict(low=0, above=True, high=1),
    "lr_final": dict(low=0, above=True, high=1),
    "lr_drop": dict(low=0, high=1),
    "volume_weight": dict(low=0, high=1e6),
    "heatmap_weight": dict(low=0, high=1e6),
    "guide_jitter": dict(low=0, high=1),
    "val_holdout": dict(low=0, integer=True),
    "max_val_samples": dict(low=1, integer=True),
    "nme_samples": dict(low=0, integer=True),
    "num_workers": dict(low=0, high=256, integer=True),
    "checkpoint_every": dict(low=1, integer=True),
    "log_every": dict(low=1, integer=True),
    "seed": dict(low=0, high=2**32 - 1, integer=True),
}
CLI_OPTIONS = {"batch_size", "accumulate", "epochs", "steps", "time_limit", "lr", "guide_jitter", "num_workers",
               "checkpoint_every", "seed"}

METRIC_COLUMNS = ["kind", "step", "epoch", "loss", "volume_loss", "heatmap_loss", "lr", "images_per_s",
                  "val_iou", "val_nme", "time_s"]


def learning_rate(step: int, total_steps: int, config: TrainConfig, elapsed: float = 0.0) -> float:
    """The paper's step schedule, scaled to the run: lr, then lr_final from lr_drop * total.

    With a time_limit the drop comes at lr_drop of the time instead of the steps.
    """
    if config.time_limit:
        return config.lr if elapsed < config.lr_drop * config.time_limit else config.lr_final
    return config.lr if step < int(config.lr_drop * total_steps) else config.lr_final


# ---------------------------------------------------------------------------------------------
# Data: this process's share of every global batch (targets: augment.make_targets)

class RankBatches(torch.utils.data.Sampler):
    """This process's micro-batches, in ShardSampler order.

    Each global batch of G = batch * accumulate * world consecutive indices is cut into
    micro-batches of ``batch``; process r takes micro-batches r*accumulate ... r*accumulate +
    accumulate - 1. The last incomplete global batch of an epoch is dropped (every process must
    do the same number of steps). Resume: sampler.set_epoch(epoch, start=steps_done * G).
    """

    def __init__(self, sampler: ShardSampler, *, batch: int, accumulate: int = 1, rank: int = 0, world: int = 1):
        self.sampler, self.batch, self.accumulate, self.rank, self.world = sampler, batch, accumulate, rank, world
        self.global_batch = batch * accumulate * world

    def __iter__(self):
        order = list(self.sampler)
        G = self.global_batch
        for g in range(0, len(order) - G + 1, G):
            for m in range(self.accumulate):
                k = g + (self.rank * self.accumulate + m) * self.batch
                yield order[k:k + self.batch]

    def __len__(self) -> int:
        return len(self.sampler) // self.global_batch * self.accumulate


def compute_loss(out: dict, volume: torch.Tensor | None, heatmaps: torch.Tensor | None, config: TrainConfig,
                 vertices: torch.Tensor | None = None, size: int = 1):
    """Weighted sum of the volume BCE (on logits) and the heatmap MSE over every supervised stack;
    for direct regression, the L2 loss of the vertices in units of the crop size (logged as the
    loss, with zero volume and heatmap losses).

    Returns (loss, {"volume_loss", "heatmap_loss"} as detached tensors). Computed in float32.
    """
    if "vertices" in out:  # size: the crop's side, so that the loss does not grow with the preset
        loss = F.mse_loss(out["vertices"].float() / size, vertices.float() / size)
        zero = loss.new_zeros(())
        return loss, {"volume_loss": zero, "heatmap_loss": zero}
    vol_loss = F.binary_cross_entropy_with_logits(out["volume"].float(), volume)
    stacks = out.get("heatmaps") or []
    hm_loss = sum(F.mse_loss(h.float(), heatmaps) for h in stacks) if stacks and heatmaps is not None \
        else vol_loss.new_zeros(())
    loss = config.volume_weight * vol_loss + config.heatmap_weight * hm_loss
    return loss, {"volume_loss": vol_loss.detach(), "heatmap_loss": hm_loss.detach()}


def forward_loss(model, targets: dict, config: TrainConfig, *, kind: str, dtype=None, sigma: float = 1.0):
    """Forward pass (under autocast when ``dtype`` is set) and loss of one batch of targets.

    The guided model is fed the ground-truth heatmaps, as in the paper's training (drawn with
    ``sigma`` when they are jittered).
    """
    image = targets["image"]
    if config.channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    guide = targets["heatmaps"]
    if kind == "guided" and config.guide_jitter > 0:
        guide = landmarks_to_heatmaps(jitter_landmarks(targets["landmarks"], config.guide_jitter), guide.shape[-1],
                                      sigma=sigma)
    with torch.autocast(image.device.type, dtype=dtype, enabled=dtype is not None):
        out = model(image, heatmaps=guide) if kind == "guided" else model(image)
    return compute_loss(out, targets["volume"], targets["heatmaps"], config, vertices=targets.get("vertices"),
                        size=image.shape[-1])


def data_volume_spec(data, mcfg: models.ModelConfig) -> VolumeSpec:
    """The VolumeSpec of a dataset (its manifest says what made it), checked against the model's
    sizes; a folder without a manifest gets the paper's proportions at the model's size."""
    m = read_manifest(data) if Path(data).is_dir() else None
    spec = VolumeSpec(**m["spec"]) if m and m.get("spec") else volume_spec_of(mcfg)
    if (spec.height, spec.width, spec.depth) != (mcfg.image_size, mcfg.image_size, mcfg.depth):
        raise ValueError(f"the dataset {data} holds {spec.width}x{spec.height} crops with {spec.depth}-slice volumes "
                         f"but the model takes {mcfg.image_size}x{mcfg.image_size} -> {mcfg.depth} slices; make the "
                         "data with the same --preset as the model (vrnkit synth --preset ...)")
    return spec


def open_datasets(config: TrainConfig, size: int):
    """(train ShardDataset, validation ShardDataset or None), with errors that say what to do.

    Validation data: the ``val`` folder; else the data folder's ``val_split``; else the last
    ``val_holdout`` samples of the data folder (never more than half of it), kept out of training.
    """
    for path in [config.data] + ([config.val] if config.val else []):
        if not Path(path).is_dir():
            raise FileNotFoundError(f"no dataset folder {path}: create one with `vrnkit synth --out {path}` "
                                    f"(or `vrnkit prepare`), or pass the right --data / --val")
    train_set = ShardDataset(config.data, split=config.train_split)
    full = ShardDataset(config.data).index
    val_set = None
    if config.val:
        val_index = ShardDataset(config.val).index
        has = "split" in val_index and config.val_split in set(val_index["split"])
        val_set = ShardDataset(config.val, split=config.val_split if has else None)
    elif "split" in full and config.val_split in set(full["split"]) and config.val_split != config.train_split:
        val_set = ShardDataset(config.data, split=config.val_split)
    elif config.val_holdout > 0:
        n = len(train_set)
        k = min(config.val_holdout, n // 2)
        if k > 0:
            val_set = ShardDataset(config.data, split=config.train_split)
            val_set.subset(np.arange(n) >= n - k)
            train_set.subset(np.arange(n) < n - k)
    got = train_set[0]["image"].shape
    if got[:2] != (size, size):
        raise ValueError(f"the crops in {config.data} are {got[1]}x{got[0]} px but the {config.model_preset!r} model "
                         f"preset expects {size}x{size}; generate data at that size or choose another --preset")
    return train_set, val_set


# ---------------------------------------------------------------------------------------------
# Out of memory

@contextlib.contextmanager
def explain_out_of_memory(config: TrainConfig, device):
    """Re-raise CUDA / CPU out-of-memory errors with what to change."""
    try:
        yield
    except Exception as e:
        if isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e)):
            raise RuntimeError(
                f"out of memory in a training step ({config.model}, preset {config.model_preset!r}, batch "
                f"{config.batch_size} on {device}): use a smaller --batch-size (e.g. {max(1, config.batch_size // 2)} "
                f"with --accumulate {2 * config.accumulate} to keep the global batch) or a smaller --preset") from e
        raise


# ---------------------------------------------------------------------------------------------
# Checkpoints: everything needed to continue exactly

def rng_states(generator: torch.Generator) -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
            "augment": generator.get_state()}


def set_rng_states(states: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    p = states["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    generator.set_state(states["augment"])


def load_resume(path: Path, mcfg: models.ModelConfig):
    """(state_dict, extra) of out/last.pt, with errors that say what to do."""
    try:
        loaded, _, extra = load_checkpoint(path, map_location="cpu", expect=mcfg)
    except CheckpointError as e:
        raise CheckpointError(f"cannot resume from {path}: {e}. To start a new run, use another "
                                     f"--out folder or delete {path}") from e
    if "optimizer" not in extra:
        raise CheckpointError(f"cannot resume from {path}: it holds weights only (no optimiser "
                                     f"state); use another --out folder or delete it")
    return loaded.state_dict(), extra


def write_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, METRIC_COLUMNS)
        if new:
            w.writeheader()
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def truncate_rows(path: Path, step: int) -> None:
    """Keep only the metrics rows up to ``step``, the step the run starts from (0: a fresh start).

    Rows after it come from a run that died before its next checkpoint; this run writes them
    again, so keeping them would log those steps twice. A half-written last row (a kill during
    a write) is dropped too. The file is replaced atomically: a kill here loses nothing.
    """
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f)
                if None not in r and None not in r.values() and r["step"].isdigit() and int(r["step"]) <= step]

    def rewrite(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, METRIC_COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, rewrite)


# ---------------------------------------------------------------------------------------------
# The loop

@torch.no_grad()
def validate(model, dataset, config: TrainConfig, spec: VolumeSpec, device, dtype) -> dict:
    """Mean volume IoU and NME estimate on (up to max_val_samples of) the validation set."""
    model.eval()
    n = min(len(dataset), config.max_val_samples)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(n)), batch_size=config.batch_size,
                                         collate_fn=collate)
    if model.config.kind == "direct":
        return validate_vertices(model, loader, spec, device)
    ious, nmes = [], []
    for batch in loader:
        t = make_targets(batch, None, spec=spec, device=device, frontal=model.config.target == "frontal")
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            image = t["image"].contiguous(memory_format=torch.channels_last) if config.channels_last else t["image"]
            prob = torch.sigmoid(model(image)["volume"].float())
        ious.append(volume_iou(prob, t["volume"] > 0.5).cpu())
        k = max(0, min(len(prob), config.nme_samples - sum(map(len, nmes))))
        if k:
            nmes.append(nme_estimate(prob[:k], t["volume"][:k], t["landmarks"][:k], spec))
    model.train()
    return {"val_iou": float(torch.cat(ious).mean()),
            "val_nme": float(np.nanmean(np.concatenate(nmes))) if nmes else float("nan")}


@torch.no_grad()
def validate_vertices(model, loader, spec: VolumeSpec, device) -> dict:
    """Direct regression: no volume, so no IoU (NaN); val_nme is the mean vertex distance over
    the 3D outer interocular distance (the NME on the sparse mesh, without ICP)."""
    errors = []
    for batch in loader:
        t = make_targets(batch, None, spec=spec, device=device, volume=False)
        pred = model(t["image"])["vertices"].float()
        iod = (t["landmarks"][:, 45] - t["landmarks"][:, 36]).norm(dim=-1)
        errors.append(((pred - t["vertices"]).norm(dim=-1).mean(1) / iod).cpu())
    model.train()
    return {"val_iou": float("nan"), "val_nme": float(torch.cat(errors).mean())}


def train(config: TrainConfig, *, on_step=None) -> dict:
    """Train (or resume from ``config.out``/last.pt) and return {"model", "step", "val", "out"}.

    ``on_step(step)`` is called after every optimiser step (tests use it to stop a run).
    """
    from tqdm.auto import tqdm

    config.check()
    rank, world, local_rank, owns_group = setup_distributed()
    device = pick_device(config.device, local_rank)
    mcfg = replace(models.ModelConfig.preset(config.model_preset, kind=config.model), **config.model_options)
    S = mcfg.image_size
    spec = data_volume_spec(config.data, mcfg)  # the volume the targets are made in; checkpoints carry it
    train_set, val_set = open_datasets(config, S)
    if mcfg.kind == "direct" and "sparse_vertices" not in train_set[0]:
        raise ValueError(f"{config.data} has no vertices to regress; direct regression needs a SynthFaces set made "
                         f"with them: vrnkit synth --vertices --out {config.data}-vertices ... (then --data that)")
    out = Path(config.out)
    ckpt_path, csv_path = out / "last.pt", out / "metrics.csv"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        remove_temp_files(out, ["last.pt", "model.pt", "metrics.csv"])  # left by a killed run
    G = config.batch_size * config.accumulate * world
    steps_per_epoch = len(train_set) // G
    if steps_per_epoch == 0:
        raise ValueError(f"{config.data} has {len(train_set)} training samples, fewer than one global batch "
                         f"of {G}; use a smaller --batch-size or more data")
    total_steps = config.steps if config.steps is not None else config.epochs * steps_per_epoch

    seed_everything(config.seed)
    model = models.build_model(mcfg).to(device)
    if config.init_from and not ckpt_path.exists():  # a resumed run has its own weights
        model.load_state_dict(load_checkpoint(config.init_from, expect=mcfg)[0].state_dict())
    optimizer = torch.optim.RMSprop(model.parameters(), lr=config.lr)
    aug_gen = torch.Generator().manual_seed(config.seed + 1)  # same on every rank: draws for all of G
    dtype = amp_dtype(config.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    step = epoch = position = 0
    elapsed_before = 0.0  # training seconds of earlier runs of a resumed time-limited run
    val = {}  # the latest validation metrics
    if ckpt_path.exists():
        state_dict, extra = load_resume(ckpt_path, mcfg)
        if extra["global_batch"] != G:
            raise ValueError(f"{ckpt_path} was trained with a global batch of {extra['global_batch']}, this run "
                             f"has {G} (batch x accumulate x processes); resume with the same, or use another --out")
        model.load_state_dict(state_dict)
        optimizer.load_state_dict(extra["optimizer"])
        scaler.load_state_dict(extra["scaler"])
        set_rng_states(extra["rng"], aug_gen)
        step, epoch, position, val = extra["step"], extra["epoch"], extra["position"], extra["val"]
        elapsed_before = extra.get("elapsed", 0.0)
    if rank == 0:  # the log continues from this run's first step (a fresh start keeps no old rows)
        truncate_rows(csv_path, step)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    raw_model = model  # what gets saved and validated (no compile / DDP wrappers)
    if config.compile:
        model = torch.compile(model)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # pick the fastest conv algorithms for these shapes

    def save(epoch: int, position: int) -> None:
        if rank == 0:
            extra = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "rng": rng_states(aug_gen),
                     "step": step, "epoch": epoch, "position": position, "global_batch": G, "val": val,
                     "elapsed": elapsed(), "train_config": asdict(config)}
            save_checkpoint(ckpt_path, raw_model, mcfg, extra=extra)

    sampler = ShardSampler(train_set, seed=config.seed)
    loader_gen = torch.Generator().manual_seed(config.seed)  # keeps the DataLoader off the global RNG
    aug = AugmentConfig()
    need_heatmaps = mcfg.kind in ("multitask", "guided")
    bar = tqdm(total=None if config.time_limit else total_steps, initial=step, disable=not config.progress or rank != 0,
               desc=f"train {mcfg.kind}/{config.model_preset}", dynamic_ncols=True)
    start_time = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - start_time

    def running() -> bool:
        return step < total_steps and not (config.time_limit and elapsed() >= config.time_limit)

    lr = learning_rate(step, total_steps, config, elapsed())
    t_log, steps_logged = time.perf_counter(), 0
    model.train()
    while running():
        sampler.set_epoch(epoch, start=position * G)
        batches = RankBatches(sampler, batch=config.batch_size, accumulate=config.accumulate, rank=rank, world=world)
        loader = iter(torch.utils.data.DataLoader(train_set, batch_sampler=batches, collate_fn=collate,
                                                  num_workers=config.num_workers, generator=loader_gen,
                                                  pin_memory=device.type == "cuda",
                                                  persistent_workers=False))
        while position < steps_per_epoch and running():
            lr = learning_rate(step, total_steps, config, elapsed())
            for group in optimizer.param_groups:
                group["lr"] = lr
            params = draw_params(G, size=S, generator=aug_gen, config=aug) if config.augment else None
            parts = {"loss": 0.0, "volume_loss": 0.0, "heatmap_loss": 0.0}
            for m in range(config.accumulate):
                batch = next(loader)
                first = (rank * config.accumulate + m) * config.batch_size  # this micro-batch's share of G
                mine = params[first:first + config.batch_size] if params is not None else None
                # DDP averages gradients across processes only on the last micro-batch
                sync = model.no_sync() if world > 1 and m < config.accumulate - 1 else contextlib.nullcontext()
                with explain_out_of_memory(config, device), sync:
                    t = make_targets(batch, mine, spec=spec, device=device, heatmaps=need_heatmaps,
                                     sigma=mcfg.heatmap_sigma, frontal=mcfg.target == "frontal",
                                     volume=mcfg.kind != "direct")
                    loss, p = forward_loss(model, t, config, kind=mcfg.kind, dtype=dtype, sigma=mcfg.heatmap_sigma)
                    scaler.scale(loss / config.accumulate).backward()
                for k, v in (("loss", loss.detach()), *p.items()):
                    parts[k] = parts[k] + v / config.accumulate
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step, position, steps_logged = step + 1, position + 1, steps_logged + 1
            bar.update(1)

            if step % config.log_every == 0 or step == total_steps:
                values = torch.stack([torch.as_tensor(v, device=device, dtype=torch.float32) for v in parts.values()])
                if world > 1:
                    dist.all_reduce(values)
                    values /= world
                now = time.perf_counter()
                row = dict(zip(parts, values.tolist()), kind="step", step=step, epoch=epoch, lr=lr,
                           images_per_s=steps_logged * G / (now - t_log), time_s=elapsed())
                t_log, steps_logged = now, 0
                bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)
                if rank == 0:
                    write_row(csv_path, row)
                if not math.isfinite(row["loss"]):  # every later step would be NaN too: stop, say why
                    raise ValueError(
                        f"the loss became {row['loss']} at step {step} (lr {lr:g}): training diverged; "
                        f"start again in a new --out with a smaller --lr (e.g. {lr / 10:g})")
            if on_step is not None:
                on_step(step)
            if step % config.checkpoint_every == 0 and position < steps_per_epoch and step < total_steps:
                save(epoch, position)

        # End of an epoch (or of the run): validate, log, checkpoint.
        if rank == 0 and val_set is not None:
            val = validate(raw_model, val_set, config, spec, device, dtype)
            write_row(csv_path, dict(kind="epoch", step=step, epoch=epoch, lr=lr,
                                     time_s=elapsed(), **val))
            if config.progress:
                bar.write(f"epoch {epoch}: step {step}, val IoU {val['val_iou']:.4f}, NME~ {val['val_nme']:.4f}")
        if position == steps_per_epoch:
            epoch, position = epoch + 1, 0
        save(epoch, position)
        t_log, steps_logged = time.perf_counter(), 0  # do not count validation time in images/s
    bar.close()
    if rank == 0:
        save_checkpoint(out / "model.pt", raw_model, mcfg, extra={"val": val, "step": step,
                                                                          "volume": spec.to_dict(),
                                                                          "train_config": asdict(config)})
    if world > 1:
        dist.barrier()
        if owns_group:
            dist.destroy_process_group()
    return {"model": raw_model.eval(), "step": step, "val": val, "out": out}


# ---------------------------------------------------------------------------------------------
# Several processes on one machine without torchrun (tests; CPU with gloo)

def _spawned(rank: int, world: int, port: int, config: TrainConfig, threads: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(threads)
    train(config)


def spawn(config: TrainConfig, world: int, *, threads: int = 1) -> None:
    """Run train(config) in ``world`` local processes (what torchrun does), e.g. to test DDP."""
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torch.multiprocessing.spawn(_spawned, args=(world, port, config, threads), nprocs=world, join=True)
