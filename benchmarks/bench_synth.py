"""SynthFaces generation speed on this machine: labelled samples per second, everything included
(face, render, slab, shard compression and writing), with 2 worker processes.

Goal (issue): >= 100 labelled 192x192 samples per second on 2 cores, i.e. a 60k-face training
set in <= 10 minutes. Run: python benchmarks/bench_synth.py [--n 512]

Measured (2 cores shared with other work; four runs each, alternating): the old appearance
51-55 samples/s at 192x192 and 157-176 at 64x64; the new one (synthfaces.texture,
synthfaces.scene, shadows, with a faster raster.py) 51-54 and 161-167. Of one paper-size
sample's time, rendering was about two thirds (z-buffer, shadow map, head, texture, camera), the
slab a sixth, shard writing (compression) an eighth.

Then (generator version 4, on an idle machine): the z-buffer compiled by numba (1.4 ms instead
of 7 a face), shard images stored uncompressed (1.2 ms a sample to write instead of 3.4, 137 KiB
on disk instead of 108), the slab's holes filled in one labelling pass, the glasses built without
Python loops: 102-105 samples/s at 192x192 (99.6-100.5 while the first run's pandas and tqdm
imports still counted in its time; 61.5 at the session's start, on the same idle machine) and
255-280 at 64x64. A sample now takes 16-17 ms to make and 1.2 ms to write in one
process; the rest of the gap to 2 / 17.5 ms is the pool and the last shards' imbalance.
"""
import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from vrnkit.config import VolumeSpec  # noqa: E402
from vrnkit.synthfaces.dataset import generate  # noqa: E402

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    # Once per process: imports (pandas, tqdm), the face model, the renderer's caches and the
    # compiled z-buffer: a tiny dataset pays for them. Timed apart, since a dataset of 61,225
    # faces pays them once, not once per 512.
    t = time.perf_counter()
    root = tempfile.mkdtemp()
    try:
        generate("synth-300wlp", root, n=2, spec=VolumeSpec.preset("cpu"), workers=1, progress=False)
    finally:
        shutil.rmtree(root)
    setup = time.perf_counter() - t
    print(f"set-up (once per process): {setup:.1f} s")
    for preset in ("paper", "cpu"):
        spec = VolumeSpec.preset(preset)
        root = tempfile.mkdtemp()
        try:
            t = time.perf_counter()
            generate("synth-300wlp", root, n=args.n, spec=spec, shard_size=64, workers=args.workers, progress=False)
            rate = args.n / (time.perf_counter() - t)
            size = sum(os.path.getsize(os.path.join(root, f)) for f in os.listdir(root)) / args.n / 1024
        finally:
            shutil.rmtree(root)
        goal = " (goal >= 100/s at 192x192; 73.6/s when the goal was set)" if preset == "paper" else ""
        print(f"{preset:5s} {spec.width}x{spec.width}: {rate:6.1f} samples/s with {args.workers} workers{goal}; "
              f"{size:.0f} KiB per sample on disk; 61,225 faces in {(61225 / rate + setup) / 60:.1f} min")


if __name__ == "__main__":
    main()
