"""Seconds per photo from a photo to mesh files, split by stage, for each shipped model.

    python benchmarks/bench_reconstruct.py [--repeats 5] [--threads 2]

Photo: scikit-image's astronaut (512x512). Stages: detection (dlib HOG), landmarks (dlib's
68-point predictor), crop, network, surface (smoothing + marching cubes + back to the photo),
colours, export (OBJ + PLY + GLB + JSON). The median of ``repeats`` runs after one warm-up, beside
the goals: <= 1 s per photo with a full-resolution model, <= 0.3 s with vrn-cpu, on this CPU.
The reference measured in the same run: scikit-image's marching cubes on the whole paper-size
volume (what the surface stage would cost without cropping to the occupied box).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vrnkit.reconstruct import load_model, reconstruct

GOALS = {"vrn-guided-192": 1.0, "vrn-192": 1.0, "vrn-cpu": 0.3}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", default=",".join(GOALS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from skimage.data import astronaut

    photo = astronaut()
    tmp = Path(tempfile.mkdtemp())
    rows = []
    paper_volume = None
    for name in args.models.split(","):
        load_model(name, device="cpu")
        runs = []
        for r in range(args.repeats + 1):
            t = time.perf_counter()
            rec = reconstruct(photo, model=name, device="cpu")
            rec.save(tmp / name, picture=False)
            total = time.perf_counter() - t
            s = dict(rec.seconds, total=total)
            if r:  # the first run warms up caches and loads the model
                runs.append(s)
        med = {k: float(np.median([s[k] for s in runs])) for k in runs[0]}
        if rec.volume.shape[0] == 200:
            paper_volume = rec.volume
        rows.append((name, med, len(rec.vertices)))

    from skimage.measure import marching_cubes

    ref = None
    if paper_volume is not None:
        t = time.perf_counter()
        marching_cubes(paper_volume, 0.5)
        ref = time.perf_counter() - t

    stages = ["detect", "landmarks", "crop", "network", "surface", "colours", "export", "total"]
    print(f"astronaut 512x512, {args.threads} threads, median of {args.repeats} (ms):")
    print(f"{'model':16s}" + "".join(f"{s:>10s}" for s in stages) + f"{'goal':>8s}  vertices")
    for name, med, nv in rows:
        print(f"{name:16s}" + "".join(f"{med[s] * 1000:10.0f}" for s in stages)
              + f"{GOALS.get(name, float('nan')) * 1000:8.0f}  {nv}  {'met' if med['total'] <= GOALS.get(name, 0) else 'NOT met'}")
    if ref is not None:
        print(f"reference: skimage marching_cubes on the whole 200x192x192 volume: {ref * 1000:.0f} ms")


if __name__ == "__main__":
    main()
