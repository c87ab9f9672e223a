"""How fast does `vrnkit prepare` convert 300W-LP at the paper preset on 2 cores?

No real data can be downloaded here, so this builds a synthetic model with the real sizes
(53,215 vertices, ~105k triangles, 199 + 29 components, written as 3DDFA's .mat files) and a
300W-LP-format folder of 450x450 JPEGs, then times `prepare` (paper preset, 2 workers).

Two cases: "300W-LP-like", where each fit is seen in 16 rotated views that share Shape_Para and
Exp_Para (300W-LP's face profiling rotates one fitted face; the converter then builds each mesh
and frontal slab once per shard), and "all distinct", the worst case (every face a new mesh).

    python benchmarks/bench_prepare.py [--n 256] [--workers 2]

Goal: all of 300W-LP (61,225 samples) in under 30 minutes = at least 34 samples/s.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

from vrnkit.datasets.morphable import load_morphable_model, model_to_photo, toy_face_model
from vrnkit.raster import rasterize
from vrnkit.datasets.real import prepare

GOAL = 61_225 / (30 * 60)  # samples per second


def write_dataset(root: Path, model, n: int, views_per_fit: int, rng) -> None:
    """n faces in ROOT/AFW as 300W-LP stores them (image, .mat, landmarks/AFW/*_pts.mat)."""
    (root / "AFW").mkdir(parents=True)
    (root / "landmarks" / "AFW").mkdir(parents=True)
    image = None
    for i in range(n):
        if i % views_per_fit == 0:
            sp = rng.normal(size=(199, 1)) * model.shape_sigma[:, None]
            ep = rng.normal(size=(29, 1)) * model.exp_sigma[:, None] * 0.5
        pose = np.r_[np.radians([rng.uniform(-15, 15), rng.uniform(-60, 60), rng.uniform(-15, 15)]),
                     225 + rng.uniform(-10, 10), 225 + rng.uniform(-10, 10), 0.0, 100 / 75_000]
        a = model_to_photo(pose, 450)
        frontal = model.vertices(sp[:, 0], ep[:, 0]) * [1, -1, 1]
        photo = frontal @ a[:, :3].T + a[:, 3]
        if image is None:  # one rendered face is enough to time decoding and cropping
            r = rasterize(photo, model.faces, 450, 450)
            image = np.where(r.mask[..., None], 200, 30).astype(np.uint8).repeat(3, -1)
        name = f"AFW_{i // views_per_fit:06d}_1_{i % views_per_fit}"
        Image.fromarray(image).save(root / "AFW" / f"{name}.jpg", quality=95)
        savemat(root / "AFW" / f"{name}.mat", dict(Pose_Para=pose[None], Shape_Para=sp, Exp_Para=ep))
        kp = photo[model.landmarks, :2] + 0.5
        savemat(root / "landmarks" / "AFW" / f"{name}_pts.mat", dict(pts_2d=kp, pts_3d=kp))


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the workers), user + system."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=256, help="faces per case (default 256 = 4 shards of 64)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    try:
        t = time.perf_counter()
        model = toy_face_model(292, 236, n_vertices=53_215, seed=0)
        model.save_3ddfa(tmp / "model")
        t_load = time.perf_counter()
        model = load_morphable_model(tmp / "model")
        t_load = time.perf_counter() - t_load
        print(f"synthetic model: {model.n_vertices} vertices, {len(model.faces)} triangles, "
              f"{model.n_shape} + {model.n_exp} components (built in {time.perf_counter() - t:.1f} s; "
              f"loading its .mat files takes {t_load:.1f} s, once per run)")
        rng = np.random.default_rng(0)
        for label, views in (("300W-LP-like (16 views per fit)", 16), ("all distinct (worst case)", 1)):
            root = tmp / f"data{views}"
            write_dataset(root, model, args.n, views, rng)
            t, cpu = time.perf_counter(), cpu_seconds()
            prepare("300wlp", root, tmp / f"out{views}", model=model, preset="paper", workers=args.workers,
                    shard_size=64, progress=False)
            rate = args.n / (time.perf_counter() - t)
            per_sample = (cpu_seconds() - cpu) / args.n
            # On a busy machine the wall clock undercounts; CPU time per sample does not.
            ideal = args.workers / per_sample
            print(f"{label}:\n  measured {rate:6.1f} samples/s on {args.workers} workers "
                  f"({61_225 / rate / 60:.0f} min for 300W-LP); CPU {1000 * per_sample:.0f} ms per sample = "
                  f"{ideal:.1f} samples/s on {args.workers} free cores\n"
                  f"  goal >= {GOAL:.0f} samples/s (61,225 in 30 min): {'met' if rate >= GOAL else 'missed'} "
                  f"(measured), {'met' if ideal >= GOAL else 'missed'} (free cores)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
