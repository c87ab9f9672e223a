"""Training speed: images/s and where a step's time goes, for each model preset.

    python benchmarks/bench_train.py            # every preset that fits in about a minute here
    python benchmarks/bench_train.py --quick    # the cpu preset only

A step is split into data loading (DataLoader: shard reading + collate), target building
(augmentation + slab -> volume + heatmaps, on the training device) and forward + backward +
optimiser step. Data: a few SynthFaces samples written to a temporary folder at the preset's
size. The issue's goals (for a GPU): >= 35 % model FLOPs utilisation (MFU) of the dense bf16
peak, and target building <= 5 % of the step. MFU counts 3 x 2 x MACs FLOPs per image
(forward 2 FLOPs per multiply-accumulate, backward twice the forward).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vrnkit import models, modelsize  # noqa: E402

from vrnkit.synthfaces import dataset as synth  # noqa: E402
from vrnkit import train as T  # noqa: E402
from vrnkit.augment import draw_params  # noqa: E402
from vrnkit.config import VolumeSpec  # noqa: E402
from vrnkit.datasets.shards import ShardDataset, collate  # noqa: E402

MFU_GOAL, TARGET_SHARE_GOAL = 0.35, 0.05

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), matched against the CUDA device name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0,
                    "L4": 121.0, "A10G": 70.0, "T4": 65.0, "V100": 125.0, "RTX 4090": 165.0, "RTX 3090": 71.0}


def peak_tflops(device) -> float | None:
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(preset: str, kind: str, *, batch: int, steps: int, warmup: int, data_root: Path, device,
          compile: bool = False) -> dict:
    cfg = T.TrainConfig.preset(preset, model=kind, batch_size=batch, progress=False, num_workers=0,
                               channels_last=device.type == "cuda")
    mcfg = models.ModelConfig.preset(preset, kind=kind)
    S = mcfg.image_size
    spec = VolumeSpec(depth=mcfg.depth, height=S, width=S, depth_scale=cfg.depth_scale)
    dataset = ShardDataset(data_root)
    model = models.build_model(mcfg).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model = torch.compile(model)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=cfg.lr)
    dtype = T.amp_dtype("auto", device)
    gen = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, collate_fn=collate, drop_last=True)
    heat = kind in ("multitask", "guided")
    times = {"data": 0.0, "targets": 0.0, "model": 0.0}
    it = iter(loader)
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        t1 = time.perf_counter()
        t = T.make_targets(b, draw_params(batch, size=S, generator=gen), spec=spec, device=device, heatmaps=heat)
        sync(device)
        t2 = time.perf_counter()
        loss, _ = T.forward_loss(model, t, cfg, kind=kind, dtype=dtype)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        t3 = time.perf_counter()
        if i >= warmup:
            times["data"] += t1 - t0
            times["targets"] += t2 - t1
            times["model"] += t3 - t2
    step = sum(times.values()) / steps
    macs = modelsize.count_macs(mcfg)
    row = dict(preset=preset, kind=kind, batch=batch, images_s=batch / step, step_ms=1e3 * step,
               data_pct=100 * times["data"] / steps / step, targets_pct=100 * times["targets"] / steps / step,
               model_pct=100 * times["model"] / steps / step, gmacs=macs / 1e9,
               tflops=6 * macs * batch / (times["model"] / steps) / 1e12)
    peak = peak_tflops(device) if device.type == "cuda" else None
    row["mfu_pct"] = 100 * row["tflops"] / peak if peak else float("nan")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="cpu preset only")
    parser.add_argument("--steps", type=int, default=None, help="measured steps per row")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models (GPU)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # as train() does
    # (preset, kinds, batch, steps): big presets get a couple of small steps on a CPU
    plan = [("cpu", ("vrn", "multitask", "guided"), 8, 10)]
    if not args.quick:
        plan += [("colab", ("vrn",), 32 if cuda else 2, 10 if cuda else 2),
                 ("paper", ("vrn",), 32 if cuda else 1, 10 if cuda else 2)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset, kinds, batch, steps in plan:
            size = preset
            root = Path(tmp) / size
            if not root.exists():
                synth.generate("synth-300wlp", root, n=max(2 * batch, 16), spec=VolumeSpec.preset(size),
                               workers=1, progress=False)
            warmup = (5 if args.compile else 2) if cuda else 1  # compile and cudnn.benchmark settle first
            for kind in kinds:
                rows.append(bench(preset, kind, batch=batch, steps=args.steps or steps, warmup=warmup,
                                  data_root=root, device=device, compile=args.compile))
                print(".", end="", flush=True)
    print()
    cols = ["preset", "kind", "batch", "images_s", "step_ms", "data_pct", "targets_pct", "model_pct", "gmacs",
            "tflops", "mfu_pct"]
    print(modelsize.format_table(rows, cols))
    print(f"\ndevice: {torch.cuda.get_device_name(device) if cuda else f'CPU, {torch.get_num_threads()} threads'}; "
          f"amp: {T.amp_dtype('auto', device)}; tflops = 6 x MACs x images / forward+backward time")
    print(f"references (issue goals, GPU): MFU >= {MFU_GOAL:.0%} of dense bf16 peak; target building "
          f"<= {TARGET_SHARE_GOAL:.0%} of the step")
    if not cuda:
        print("GPU: not available here (MFU needs a CUDA device; the CPU numbers above are for comparison)")
    else:
        for r in rows:
            mfu = "meets" if r["mfu_pct"] >= 100 * MFU_GOAL else "below"  # NaN (unknown peak) -> below
            targets = "meets" if r["targets_pct"] <= 100 * TARGET_SHARE_GOAL else "above"
            print(f"{r['preset']}/{r['kind']}: MFU {r['mfu_pct']:.1f} % ({mfu} goal), "
                  f"targets {r['targets_pct']:.1f} % of the step ({targets} goal)")


if __name__ == "__main__":
    main()
