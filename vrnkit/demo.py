"""The main job on the embedded default: `vrnkit demo` (also `make demo`).

It needs no download: it builds a synthetic solid, voxelises it at the configured volume size,
takes the surface back with marching cubes, and writes the mesh (OBJ, PLY, GLB) and a picture
of every step. As the rest of vrnkit lands it grows into face -> network -> mesh.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def synthetic_solid(spec, *, subdivisions: int = 5):
    """A closed, face-sized test solid in crop coordinates: an ellipsoid with a nose-like bump."""
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=subdivisions)
    v = np.asarray(m.vertices, np.float64)
    bump = 0.35 * np.exp(-((v[:, 0] / 0.18) ** 2 + ((v[:, 1] - 0.05) / 0.3) ** 2)) * (v[:, 2] > 0)
    v = v * (1 + bump[:, None] * [0, 0, 1])
    s = spec.width / 192
    v = v * [60 * s, 75 * s, 0.3 * spec.depth_span] + [spec.width / 2, spec.height / 2, spec.depth_span / 2]
    return v, np.asarray(m.faces)


def shade_mesh(vertices, faces, height, width, *, light=(0.3, -0.4, 1.0)):
    """A grey Lambert picture (H, W) float of a mesh in image space, through the z-buffer."""
    from .raster import rasterize

    r = rasterize(vertices, faces, height, width)
    tri = np.asarray(vertices)[np.asarray(faces)]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    light = np.asarray(light, float) / np.linalg.norm(light)
    lam = np.abs(n @ light)  # two-sided: the picture must not depend on winding
    img = np.where(r.mask, 0.15 + 0.85 * lam[np.maximum(r.triangle, 0)], 1.0)
    return img


def run_demo(out="out/demo", *, mode=None) -> dict:
    """Run the demo; return the paths it wrote and what it measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .config import resolve_mode, volume_spec_for_mode
    from .surface import export_mesh, volume_to_mesh
    from .voxel import mesh_to_volume

    mode = resolve_mode(mode)
    spec = volume_spec_for_mode(mode)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"vrnkit demo: mode={mode}, volume {spec.shape} (D, H, W), depth_scale={spec.depth_scale}")

    v, f = synthetic_solid(spec)
    t = time.perf_counter()
    vol = mesh_to_volume(v, f, spec)
    t_vox = time.perf_counter() - t
    t = time.perf_counter()
    mv, mf = volume_to_mesh(vol, spec)
    t_mc = time.perf_counter() - t
    paths = {}
    for ext in ("obj", "ply", "glb"):
        paths[ext] = out / f"solid.{ext}"
        export_mesh(paths[ext], mv, mf)

    fig, ax = plt.subplots(1, 4, figsize=(13, 3.6))
    ax[0].imshow(shade_mesh(v, f, spec.height, spec.width), cmap="gray", vmin=0, vmax=1)
    ax[0].set_title(f"input mesh ({len(v)} vertices)")
    mid = spec.height // 2
    ax[1].imshow(vol[:, mid, :], origin="lower", cmap="magma", aspect=1 / spec.depth_scale)
    ax[1].set_title(f"volume slice y={mid}\n(depth d up, x right)")
    ax[2].imshow(vol[:, :, spec.width // 2].T, cmap="magma", aspect=spec.depth_scale)
    ax[2].set_title(f"volume slice x={spec.width // 2}\n(d right, y down)")
    ax[3].imshow(shade_mesh(mv, mf, spec.height, spec.width), cmap="gray", vmin=0, vmax=1)
    ax[3].set_title(f"marching cubes ({len(mv)} vertices)")
    for a in ax:
        a.set_xticks([]), a.set_yticks([])
    fig.suptitle(f"voxelise {t_vox * 1000:.0f} ms, iso-surface {t_mc * 1000:.0f} ms")
    fig.tight_layout()
    paths["picture"] = out / "demo.png"
    fig.savefig(paths["picture"], dpi=80)
    plt.close(fig)
    for k, p in paths.items():
        print(f"  wrote {k:8s} {p}")
    return dict(paths=paths, voxels=int(vol.sum()), vertices=len(mv))


def add_cli(sub) -> None:
    p = sub.add_parser("demo", help="the main job on the embedded default (no downloads): writes meshes and a picture")
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--mode", choices=["quick", "full"], default=None, help="override VRNKIT_MODE")
    p.set_defaults(func=lambda a: run_demo(a.out, mode=a.mode))
