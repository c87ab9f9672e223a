"""Size and speed of the VRN models: parameters, GMACs, checkpoint size, CPU training speed.

    python benchmarks/bench_models.py            # ~1 minute on 2 CPU cores

Parameters, GMACs (per image, convs + linear layers) and checkpoint sizes come from every preset
and kind (counted on the "meta" device, no compute). Speed is measured only at the "cpu" preset:
a full training step (forward, per-voxel BCE + heatmap MSE, backward, RMSProp) at batch 8.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from vrnkit.checkpoint import save_checkpoint
from vrnkit.models import KINDS, MODEL_PRESETS, ModelConfig, build_model
from vrnkit.modelsize import PAPER_VRN_PARAMS, format_table, summary_table


def train_step_speed(config: ModelConfig, *, batch: int, steps: int) -> tuple[float, float]:
    """(training images/s, inference images/s) of ``config`` on this CPU."""
    torch.manual_seed(0)
    model = build_model(config)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    s, k = config.image_size, config.num_landmarks
    image = torch.rand(batch, 3, s, s)
    target = (torch.rand(batch, config.depth, s, s) > 0.5).float()
    heat_target = torch.rand(batch, k, s // 4, s // 4)
    vertex_target = torch.rand(batch, config.num_vertices, 3) * s

    def step() -> None:
        # Guided trains its VRN on ground-truth heatmaps, as in the paper.
        out = model(image, heat_target) if config.kind == "guided" else model(image)
        if config.kind == "direct":  # vertices by L2, as vrnkit.train does
            loss = F.mse_loss(out["vertices"] / s, vertex_target / s)
        else:
            loss = F.binary_cross_entropy_with_logits(out["volume"], target)
        loss = loss + sum(F.mse_loss(h, heat_target) for h in out.get("heatmaps", []))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up: allocator, oneDNN kernel choice
        step()
    # Median of per-step times: robust to other processes sharing the cores.
    train = batch / median_seconds(step, steps)
    model.eval()
    with torch.no_grad():
        infer = batch / median_seconds(lambda: model(image), steps)
    return train, infer


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def checkpoint_mb(config: ModelConfig) -> float:
    """Size of a real checkpoint file written by save_checkpoint (no optimizer state)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(os.path.join(tmp, "m.pt"), build_model(config), config)
        return os.path.getsize(path) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=7)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    rows = summary_table()
    for row in rows:
        row["ckpt_file_MB"] = "-"
        row["train_img/s"] = row["infer_img/s"] = "-"
        if row["preset"] == "cpu":
            config = ModelConfig.preset("cpu", kind=row["kind"])
            row["ckpt_file_MB"] = checkpoint_mb(config)
            train, infer = train_step_speed(config, batch=args.batch, steps=args.steps)
            row["train_img/s"], row["infer_img/s"] = train, infer
            row["ms/step"] = 1000 * args.batch / train
        row.setdefault("ms/step", "-")

    print(format_table(rows, ["preset", "kind", "features", "image", "depth", "params_M", "GMACs",
                              "checkpoint_MB", "ckpt_file_MB", "train_img/s", "infer_img/s",
                              "ms/step"]))
    paper = next(r for r in rows if r["preset"] == "paper" and r["kind"] == "vrn")
    print(f"\nreference: paper: ~{PAPER_VRN_PARAMS / 1e6:.0f}M params (the released VRN); "
          f"paper preset VRN here: {paper['params_M']:.1f}M "
          f"({100 * (paper['params'] / PAPER_VRN_PARAMS - 1):+.0f}%)")
    print(f"speed: cpu preset, batch {args.batch}, median of {args.steps} steps; training step = "
          f"forward + BCE/MSE (direct: L2 on vertices) + backward + RMSProp (ms/step); checkpoint_MB = float32 "
          f"state_dict, ckpt_file_MB = file on disk")
    print(f"presets: {', '.join(MODEL_PRESETS)}; kinds: {', '.join(KINDS)}")


if __name__ == "__main__":
    main()
