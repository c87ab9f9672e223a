"""Speed of the paper's NME on one core: 19k ground-truth vertices against a ~100k-vertex prediction.

Prints: vrnkit.metrics.nme with the prediction's triangles (closest points on the surface;
goal <= 100 ms), the same on its vertices only, and as the reference measured in the same run,
one k-d tree built on the prediction and queried with every ground-truth vertex once (the floor
of any nearest-neighbour metric; ICP needs many such queries).
Run: python benchmarks/bench_metrics.py
"""
import os

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = "1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

import time

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from vrnkit.config import VolumeSpec
from vrnkit.metrics import nme
from vrnkit.reconstruct import front_facing
from vrnkit.surface import volume_to_mesh
from vrnkit.synthfaces.dataset import make_sample
from vrnkit.voxel import Slab, slab_to_volume

GOAL_MS = 100.0


def best_of(fn, n=7):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def make_case():
    """(gt (19000, 3), prediction vertices (~100k, 3), its triangles, gt landmarks (68, 3))."""
    spec = VolumeSpec.preset("paper")
    sample, meta = make_sample("synth-aflw2000", 2, spec=spec)  # yaw +46
    # The prediction: the paper-size voxelised face, meshed, its front-facing part (what evaluate
    # scores, ~40k vertices) subdivided up to 100k vertices.
    slab = Slab(front=sample["front"], mask=sample["mask"], back=float(sample["back"]), affine=sample["affine"])
    v, f = front_facing(*volume_to_mesh(slab_to_volume(slab, spec), spec), sample["affine"])
    while len(v) < 100_000:
        v, f = trimesh.remesh.subdivide(v, f, face_index=np.arange(min(len(f), int((100_000 - len(v)) / 1.4))))
    v = v + np.random.default_rng(0).normal(0, 0.2, v.shape)  # not the truth's own surface
    # The ground truth: 19k points spread over the face region's surface.
    from vrnkit.synthfaces.model import FaceModel

    gt_mesh = trimesh.Trimesh(sample["vertices"], FaceModel.default().region_faces, process=False)
    gt, _ = trimesh.sample.sample_surface_even(gt_mesh, 19_000, seed=0)
    gt = np.asarray(gt)[:19_000]
    return gt, v, f, sample["landmarks"]


def main() -> None:
    gt, v, f, lm = make_case()
    surface_ms = best_of(lambda: nme(gt, v, lm, pred_faces=f))
    points_ms = best_of(lambda: nme(gt, v, lm))
    ref_ms = best_of(lambda: cKDTree(v).query(gt))
    print(f"ground truth {len(gt)} vertices, prediction {len(v)} vertices / {len(f)} triangles, one core")
    print(f"NME to the surface (vrnkit.metrics.nme, pred_faces): {surface_ms:6.1f} ms   goal <= {GOAL_MS:.0f} ms  "
          f"(NME {nme(gt, v, lm, pred_faces=f):.4f})")
    print(f"NME to the vertices only:                            {points_ms:6.1f} ms   "
          f"(NME {nme(gt, v, lm):.4f})")
    print(f"reference, one cKDTree build + one query of every gt vertex: {ref_ms:6.1f} ms")
    print("PASS" if surface_ms <= GOAL_MS else "MISS", "the goal")


if __name__ == "__main__":
    main()
