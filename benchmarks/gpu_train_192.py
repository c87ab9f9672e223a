"""Train the full-resolution shipped models (vrn-192, vrn-guided-192) on one GPU in ~10 minutes.

One prepared run, start to finish: generate paper-size SynthFaces on every CPU core, train VRN
and VRN-Guided (colab preset: 192x192 -> 200x192x192) side by side on the one GPU for a fixed
time, then write fp16 weights, the metrics and the inference timings to OUT. It prints the
measured figures beside their goals at the end.

    python benchmarks/gpu_train_192.py --out runs/gpu192 --export OUT_DIR          # GPU, ~9 min
    python benchmarks/gpu_train_192.py --tiny --out /tmp/t --export /tmp/t/export  # CPU smoke test

Then `vrnkit export ...` (see the Makefile's weights-192 target) adds the curve and
the validation table beside the weights in vrnkit/weights/.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vrnkit import models  # noqa: E402
from vrnkit.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402

from vrnkit.synthfaces import dataset as synth  # noqa: E402
from vrnkit.config import VolumeSpec  # noqa: E402

RUNS = {"vrn-192": "vrn", "vrn-guided-192": "guided"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def train_all(args, data: Path) -> dict:
    """Start one `vrnkit train` process per model, all on the one GPU; wait for them."""
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // (2 * len(args.runs)))),
               PYTHONPATH=str(ROOT))
    procs = {}
    for name, kind in args.runs.items():
        cmd = [sys.executable, "-m", "vrnkit", "train", "--model", kind, "--preset", args.preset,
               "--data", str(data), "--out", str(args.out / name), "--time-limit", str(args.seconds),
               "--lr", str(args.lr), "--batch-size", str(args.batch_size), "--num-workers", str(args.workers),
               "--no-progress", "--checkpoint-every", "100000"]
        if kind == "guided" and args.guide_jitter:
            cmd += ["--guide-jitter", str(args.guide_jitter)]
        if args.init_dir:
            cmd += ["--init-from", str(args.init_dir / f"{name}.pt")]
        logf = open(args.out / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT), logf)
        log(f"started {name}: {' '.join(cmd[2:])}")
    codes = {}
    for name, (p, logf) in procs.items():
        codes[name] = p.wait()
        logf.close()
        log(f"{name} exited {codes[name]}: {(args.out / f'{name}.log').read_text()[-600:]}")
    return codes


@torch.no_grad()
def latency(model, device, dtype, *, guided_heatmaps: bool, repeats: int = 20) -> float:
    """Milliseconds per image at batch 1 (mean of ``repeats`` after warm-up)."""
    S = model.config.image_size
    x = torch.rand(1, 3, S, S, device=device)
    kw = {}
    if guided_heatmaps:
        kw["heatmaps"] = torch.rand(1, model.config.num_landmarks, S // 4, S // 4, device=device)
    for _ in range(3):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            model(x, **kw)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            torch.sigmoid(model(x, **kw)["volume"].float())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/gpu192"))
    p.add_argument("--export", type=Path, default=None, help="folder for fp16 weights + metrics (default OUT/export)")
    p.add_argument("--n", type=int, default=8192, help="training faces to generate")
    p.add_argument("--seconds", type=float, default=450, help="training time per model (both run at once)")
    p.add_argument("--lr", type=float, default=1e-3, help="1e-3 -> 1e-4 after 80%% of the time")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=5, help="data-loader processes per model")
    p.add_argument("--tiny", action="store_true", help="CPU smoke test: cpu preset, 64 px, a few seconds")
    p.add_argument("--models", default=",".join(RUNS), help="which of the models to train (comma-separated)")
    p.add_argument("--init-dir", type=Path, default=None,
                   help="fine-tune: start each model from INIT_DIR/NAME.pt (e.g. vrnkit/weights)")
    p.add_argument("--seed", type=int, default=0, help="SynthFaces seed (a new seed: new faces for fine-tuning)")
    p.add_argument("--guide-jitter", type=float, default=0.0,
                   help="landmark noise (NME) on the guided model's guiding heatmaps; 0.045 is a detector's "
                        "(the shipped vrn-guided-192 used 0)")
    args = p.parse_args()
    args.preset = "cpu" if args.tiny else "colab"
    args.runs = {k: RUNS[k] for k in args.models.split(",")}
    if args.tiny:
        args.n, args.seconds, args.workers, args.batch_size = min(args.n, 320), min(args.seconds, 20), 0, 8
    args.out.mkdir(parents=True, exist_ok=True)
    export = args.export or args.out / "export"
    export.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    log(f"torch {torch.__version__}, device {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, "
        f"{os.cpu_count()} CPUs")

    # 1. Data: paper-size SynthFaces on every core (the trainer holds out the last 256 for validation).
    spec = VolumeSpec.preset("cpu" if args.tiny else "paper")
    data = args.out / "synth-300wlp"
    t = time.perf_counter()
    synth.generate("synth-300wlp", data, n=args.n, spec=spec, seed=args.seed, workers=os.cpu_count() or 2,
                   progress=False)
    gen_s = time.perf_counter() - t
    log(f"generated {args.n} faces in {gen_s:.1f} s ({args.n / gen_s:.0f} faces/s)")

    # 2. Both models at once on the one GPU.
    t = time.perf_counter()
    codes = train_all(args, data)
    train_s = time.perf_counter() - t

    # 3. fp16 weights, metrics, timings.
    import pandas as pd

    rows = []
    dtype = torch.bfloat16 if device.type == "cuda" else None
    for name, kind in args.runs.items():
        run = args.out / name
        if codes[name] != 0 or not (run / "model.pt").exists():
            rows.append(dict(model=name, status=f"failed ({codes[name]})"))
            continue
        model, mcfg, extra = load_checkpoint(run / "model.pt", map_location="cpu")
        save_checkpoint(export / f"{name}.pt", model, mcfg, extra=extra, half=True)  # CPU tensors
        model = model.to(device)
        (export / f"{name}-metrics.csv").write_bytes((run / "metrics.csv").read_bytes())
        m = pd.read_csv(run / "metrics.csv")
        steps, epochs = m[m.kind == "step"], m[m.kind == "epoch"]
        row = dict(model=name, status="ok", steps=int(extra["step"]), images=int(extra["step"]) * args.batch_size,
                   images_per_s=float(steps.images_per_s.tail(20).median()),
                   val_iou=float(epochs.val_iou.iloc[-1]), val_nme=float(epochs.val_nme.iloc[-1]),
                   MB=(export / f"{name}.pt").stat().st_size / 1e6)
        row["ms_fp32"] = latency(model, device, None, guided_heatmaps=kind == "guided")
        if dtype is not None:
            row["ms_bf16"] = latency(model, device, dtype, guided_heatmaps=kind == "guided")
        rows.append(row)
    if device.type == "cuda":  # the paper preset's network at batch 1, for reconstruct's budget
        paper = models.build_model(models.ModelConfig.preset("paper")).to(device).eval()
        rows.append(dict(model="paper VRN (random weights)", ms_fp32=latency(paper, device, None, guided_heatmaps=False),
                         ms_bf16=latency(paper, device, dtype, guided_heatmaps=False)))
    table = pd.DataFrame(rows)
    table.to_csv(export / "summary.csv", index=False)
    print(f"\ngeneration: {args.n} faces in {gen_s:.0f} s; training (both models at once): {train_s:.0f} s")
    print(table.to_string(index=False))
    print("goals: weights <= 10 MB fp16; faces with nose, lips and eye sockets (look at the meshes); "
          "reference: colab preset alone ~430-470 images/s at batch 32 on an H200 (measured earlier)")


if __name__ == "__main__":
    main()
