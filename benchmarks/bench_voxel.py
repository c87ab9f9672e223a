"""Slab voxeliser speed at the paper's 200x192x192, against trimesh on the same closed solid.

Prints: NumPy slab volume ms (goal <= 20 ms on one thread), the speed-up over trimesh's
voxelize + fill (goal >= 50x; trimesh takes ~1.4 s here for a 40k-vertex face-sized mesh), and
batched PyTorch slab volumes per second on the CPU (and on CUDA when present; goal >= 10,000/s).
Run: python benchmarks/bench_voxel.py
"""
import os

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = "1"

import time

import numpy as np
import torch
import trimesh

from vrnkit.config import VolumeSpec
from vrnkit.voxel import mesh_to_volume, slab_from_model, slab_to_volume, slabs_to_volumes

torch.set_num_threads(1)
spec = VolumeSpec.preset("paper")


def synthetic_solid(spec, *, subdivisions: int = 5):
    """A closed, face-sized test solid in crop coordinates: an ellipsoid with a nose-like bump."""
    m = trimesh.creation.icosphere(subdivisions=subdivisions)
    v = np.asarray(m.vertices, np.float64)
    bump = 0.35 * np.exp(-((v[:, 0] / 0.18) ** 2 + ((v[:, 1] - 0.05) / 0.3) ** 2)) * (v[:, 2] > 0)
    v = v * (1 + bump[:, None] * [0, 0, 1])
    s = spec.width / 192
    v = v * [60 * s, 75 * s, 0.3 * spec.depth_span] + [spec.width / 2, spec.height / 2, spec.depth_span / 2]
    return v, np.asarray(m.faces)


def best_of(fn, n=7):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def face_sized_solid():
    """~40k-vertex closed solid: the demo's bumpy ellipsoid, flat-backed, centred at the origin."""
    v, f = synthetic_solid(spec, subdivisions=6)
    v = v - v.mean(0)
    v[:, 2] = np.maximum(v[:, 2], v[:, 2].min() * 0.2)  # flat back
    return v, f


v, f = face_sized_solid()
print(f"closed face-sized solid: {len(v)} vertices, {len(f)} faces")
angles = np.radians([10, 30, 5])  # pitch, yaw, roll: a posed face
from vrnkit.geometry import euler_to_matrix

model_to_crop = np.zeros((3, 4))
model_to_crop[:, :3] = euler_to_matrix(*angles)
model_to_crop[:, 3] = [96, 96, 50]
slab = slab_from_model(v, f, model_to_crop, grid_shape=(192, 192))

t_slab = best_of(lambda: slab_to_volume(slab, spec))
vol = slab_to_volume(slab, spec)

# trimesh on the same posed closed solid, at voxels of the same size (x, y: 1 px, z: 0.5 px):
# stretch z by depth_scale so trimesh's cubic voxels of pitch 1 match ours.
posed = v @ model_to_crop[:, :3].T + model_to_crop[:, 3]
mesh = trimesh.Trimesh(posed * [1, 1, spec.depth_scale], f, process=False)
t_tm = best_of(lambda: mesh.voxelized(pitch=1.0).fill(), n=2)
ours_even_odd = best_of(lambda: mesh_to_volume(posed, f, spec), n=3)

print(f"NumPy slab volume, 1 thread:     {t_slab * 1000:7.1f} ms   (goal <= 20 ms)")
print(f"trimesh voxelize + fill:         {t_tm * 1000:7.1f} ms   (reference ~1400 ms here)")
print(f"speed-up over trimesh:           {t_tm / t_slab:7.0f} x    (goal >= 50 x)")
print(f"vrnkit even-odd mesh voxeliser:  {ours_even_odd * 1000:7.1f} ms   (same solid, from the mesh)")
print(f"voxels inside: {int(vol.sum())}")

# Batched PyTorch path.
def torch_rate(device, batch, repeats=3):
    fr = torch.tensor(slab.front).expand(batch, -1, -1).contiguous().to(device)
    mk = torch.tensor(slab.mask).expand(batch, -1, -1).contiguous().to(device)
    bk = torch.full((batch,), slab.back, dtype=torch.float32, device=device)
    af = torch.tensor(slab.affine).expand(batch, -1, -1).contiguous().to(device)
    slabs_to_volumes(fr, mk, bk, af, spec)
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        slabs_to_volumes(fr, mk, bk, af, spec)
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - t)


print(f"PyTorch slab volumes, CPU 1 thread, batch 4: {torch_rate('cpu', 4, 1):8.1f} volumes/s")
if torch.cuda.is_available():
    print(f"PyTorch slab volumes, CUDA batch 64:        {torch_rate('cuda', 64, 10):8.0f} volumes/s (goal >= 10,000/s)")
else:
    print("PyTorch slab volumes, CUDA: no GPU here (goal >= 10,000 volumes/s at paper resolution on a GPU)")
