"""How fast does vrnkit render SynthFaces samples? Prints samples/s beside the 100/s goal.

    python benchmarks/bench_render.py                 # quick (64 px) and paper (192 px) crops
    python benchmarks/bench_render.py --workers 2 -n 400

A sample is everything render.render_face does: a random identity and expression, a pose, the
z-buffer, texture, head and hair, accessories, background, occluders, the shadow map, lighting
and camera effects. The dataset goal is 100 samples/s on 2 CPU cores including the slab
(voxel.mesh_to_slab), which is not timed here.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

GOAL = 100.0  # samples per second on 2 cores, the dataset's target


def _work(args):
    spec_name, seed, n = args
    import numpy as np

    from vrnkit.config import VolumeSpec
    from vrnkit.synthfaces.model import FaceModel
    from vrnkit.synthfaces.render import random_pose, render_face

    model, spec = FaceModel.default(), VolumeSpec.preset(spec_name)
    rng = np.random.default_rng(seed)
    render_face(model, None, None, yaw=0, pitch=0, roll=0, spec=spec, rng=rng)  # warm caches
    t = time.perf_counter()
    for _ in range(n):
        yaw, pitch, roll = random_pose(rng)
        render_face(model, model.sample_identity(rng), model.sample_expression(rng), yaw=yaw, pitch=pitch,
                    roll=roll, spec=spec, rng=rng)
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=200, help="samples per preset (split over the workers)")
    p.add_argument("--workers", type=int, default=1, help="processes rendering in parallel")
    p.add_argument("--presets", nargs="+", default=["cpu", "paper"])
    a = p.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one thread per worker process
    print(f"render_face throughput, {a.workers} worker(s), {os.cpu_count()} CPU(s); goal {GOAL:.0f} samples/s on 2 cores")
    for name in a.presets:
        per = max(1, a.n // a.workers)
        jobs = [(name, 1000 + k, per) for k in range(a.workers)]
        if a.workers == 1:
            times = [_work(jobs[0])]
        else:
            with mp.get_context("spawn").Pool(a.workers) as pool:
                times = pool.map(_work, jobs)
        rate = per * a.workers / max(times)  # rendering only: start-up and model build excluded
        print(f"  {name:6s} {rate:7.1f} samples/s  ({1000 / rate * a.workers:5.1f} ms per sample per worker)"
              f"   reference: {GOAL:.0f}/s")


if __name__ == "__main__":
    main()
