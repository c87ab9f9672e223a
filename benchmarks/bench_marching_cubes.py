"""Time volume_to_mesh on a face-like paper-size volume, against scikit-image on the whole volume.

Run:  python benchmarks/bench_marching_cubes.py [--repeats 9]

The volume (200 x 192 x 192, depth_scale 2) is a face-sized slab: an elliptical region about
130 x 150 px, filled from a bumpy front surface (an ellipsoid cap with a nose and ripples) back
to a flat back, as VRN's targets are. Both timings run on one thread in this process, interleaved (so they see the same machine
load); the figures are medians, with the best runs beside them.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vrnkit.config import VolumeSpec  # noqa: E402
from vrnkit.surface import volume_to_mesh  # noqa: E402


def face_like_volume(spec: VolumeSpec, *, soft: bool = False) -> np.ndarray:
    """(D, H, W) float32: a face-sized slab, 1 inside, 0 outside (or a sigmoid of the distance)."""
    D, H, W = spec.shape
    x = np.arange(W) + 0.5
    y = np.arange(H) + 0.5
    X, Y = np.meshgrid(x, y)
    cx, cy = W / 2, H / 2 + 4
    u, v = (X - cx) / 65.0, (Y - cy) / 75.0  # 130 x 150 px
    r2 = u ** 2 + v ** 2
    span = spec.depth_span  # 100 px at paper size
    front = (0.40 * span + 0.40 * span * np.sqrt(np.clip(1 - r2, 0, 1))
             + 8.0 * np.exp(-((X - cx) ** 2 + (Y - cy + 5) ** 2) / (2 * 8.0 ** 2))  # nose
             + 2.0 * np.sin(X / 5.0) * np.cos(Y / 7.0))  # ripples
    front = np.where(r2 < 1, front, -np.inf)
    back = 0.20 * span
    z = (np.arange(D) + 0.5) / spec.depth_scale
    if soft:
        dist = np.minimum(front[None] - z[:, None, None], z[:, None, None] - back)
        return (1 / (1 + np.exp(-np.clip(dist, -30, 30) * 4))).astype(np.float32)
    return ((z[:, None, None] <= front[None]) & (z[:, None, None] >= back)).astype(np.float32)


def time_pair(fn_a, fn_b, repeats):
    """Median and best times (ms) of two functions, runs interleaved so both see the same load."""
    fn_a(), fn_b()  # warm up
    ta, tb = [], []
    for _ in range(repeats):
        for fn, ts in ((fn_a, ta), (fn_b, tb)):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [(1e3 * float(np.median(ts)), 1e3 * min(ts)) for ts in (ta, tb)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    from skimage.measure import marching_cubes

    spec = VolumeSpec.preset("paper")
    for name, soft in (("binary", False), ("soft", True)):
        vol = face_like_volume(spec, soft=soft)
        occ = np.argwhere(vol > 0.5)
        ext = occ.max(0) - occ.min(0) + 1
        verts, faces = volume_to_mesh(vol, spec)
        (ours, ours_best), (ref, ref_best) = time_pair(lambda: volume_to_mesh(vol, spec),
                                                       lambda: marching_cubes(vol, 0.5), args.repeats)
        print(f"[{name} face-like volume {spec.shape}, occupied box {tuple(int(e) for e in ext)} voxels, "
              f"{len(verts)} vertices, {len(faces)} faces]")
        print(f"volume_to_mesh: {ours:.1f} ms (goal <= 50 ms); skimage whole volume: {ref:.1f} ms (reference ~80 ms)"
              f"  [medians of {args.repeats}; best {ours_best:.1f} / {ref_best:.1f} ms; ratio {ours / ref:.2f}]")


if __name__ == "__main__":
    main()
