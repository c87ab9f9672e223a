"""The main job on the embedded default: `vrnkit demo` (also `make demo`).

It needs no download: scikit-image's astronaut photo and a held-out SynthFaces face go through
the shipped VRN-Guided; each predicted volume becomes a coloured mesh (OBJ, PLY, GLB) and a
picture (for the synthetic face, compared with its ground truth).
``synthetic_solid`` and ``shade_mesh`` are small helpers the benchmarks and notebooks reuse.
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


def run_demo(out="out/demo", *, mode=None, weights=None, index: int = 11) -> dict:
    """The main job: a real photo and a held-out synthetic face, each to a coloured 3D mesh.

    1. The astronaut (scikit-image's one real photo): dlib finds her face and 68 landmarks, the
       shipped VRN-Guided reconstructs it -> astronaut.{obj,ply,glb,json,png}.
    2. A held-out SynthFaces face (synth-aflw2000 protocol: clutter, occluders) whose true shape
       is known -> synthetic.{obj,ply,glb} and demo.png comparing prediction and ground truth,
       with the volume IoU and NME.
    ``weights``: a checkpoint to use instead of the shipped model (for both).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.data import astronaut

    from .config import resolve_mode
    from .facegen import FaceModel
    from .metrics import nme, volume_iou
    from .pretrained import front_facing, predict_volume
    from .reconstruct import load_model, reconstruct
    from .surface import SMOOTH, export_mesh, sample_vertex_colours, volume_to_mesh
    from .synth import make_sample
    from .voxel import Slab, slab_to_volume

    mode = resolve_mode(mode)
    model, spec, name = load_model(weights)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"vrnkit demo: mode={mode}; model {name}: {model.config.kind}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, crop {spec.width}x{spec.height}, "
          f"volume {spec.shape} (D, H, W)")
    paths = {}

    # 1. A real photo.
    photo = astronaut()
    try:
        rec = reconstruct(photo, model=weights)  # by name: the picture and JSON say which model
    except ImportError as e:  # the photos extra is missing: the synthetic half still runs
        print(f"  skipped the astronaut: {e}")
    else:
        for k, p in rec.save(out / "astronaut", photo=photo).items():
            paths[f"astronaut_{k}"] = p
        print(f"  astronaut: {rec.faces_found} faces found, the largest reconstructed: {len(rec.vertices)} vertices "
              f"in {sum(rec.seconds.values()):.2f} s")

    # 2. A synthetic face with its ground truth.
    sample, meta = make_sample("synth-aflw2000", index, spec=spec)
    t = time.perf_counter()
    probs = predict_volume(model, sample["image"], landmarks=sample["landmarks"])
    t_net = time.perf_counter() - t
    t = time.perf_counter()
    mv, mf = volume_to_mesh(probs, spec, smooth=SMOOTH)
    t_mc = time.perf_counter() - t
    colours = sample_vertex_colours(mv, sample["image"])
    target = slab_to_volume(Slab(sample["front"], sample["mask"], sample["back"], sample["affine"]), spec)
    iou = float(np.ravel(volume_iou(probs, target))[0])
    gt = sample["vertices"][FaceModel.default().face_region]
    score = nme(gt, front_facing(mv, mf, sample["affine"]), sample["landmarks"])
    for ext in ("obj", "ply", "glb"):
        paths[ext] = out / f"synthetic.{ext}"
        export_mesh(paths[ext], mv, mf, colours=colours)

    from .viz import render_mesh

    tv, tf = volume_to_mesh(target, spec)
    fig, ax = plt.subplots(1, 6, figsize=(18, 3.4))
    ax[0].imshow(sample["image"])
    ax[0].set_title(f"input (yaw {meta['yaw']:+.0f}, {meta['expression']})")
    mid = spec.height // 2
    ax[1].imshow(target[:, mid, :], origin="lower", cmap="gray", aspect=1 / spec.depth_scale)
    ax[1].set_title(f"target, slice y={mid}")
    ax[2].imshow(probs[:, mid, :], origin="lower", cmap="magma", vmin=0, vmax=1, aspect=1 / spec.depth_scale)
    ax[2].set_title("prediction (probability)")
    ax[3].imshow(shade_mesh(tv, tf, spec.height, spec.width), cmap="gray", vmin=0, vmax=1)
    ax[3].set_title("ground-truth solid")
    ax[4].imshow(shade_mesh(mv, mf, spec.height, spec.width), cmap="gray", vmin=0, vmax=1)
    ax[4].set_title(f"reconstruction ({len(mv)} vertices)")
    ax[5].imshow(render_mesh(mv, mf, yaw=60.0))
    ax[5].set_title("reconstruction, turned 60 deg")
    for a in ax:
        a.set_xticks([]), a.set_yticks([])
    fig.suptitle(f"{name}: IoU {iou:.3f}, NME {score:.4f}; network {t_net * 1000:.0f} ms, "
                 f"marching cubes {t_mc * 1000:.0f} ms (CPU)")
    fig.tight_layout()
    paths["picture"] = out / "demo.png"
    fig.savefig(paths["picture"], dpi=80)
    plt.close(fig)
    print(f"  synthetic face {meta['id']}: volume IoU {iou:.3f}, NME {score:.4f}")
    for k, p in paths.items():
        print(f"  wrote {k:15s} {p}")
    return dict(paths=paths, iou=iou, nme=score, vertices=len(mv))


def add_cli(sub) -> None:
    p = sub.add_parser("demo", help="the main job on the embedded default (no downloads): writes meshes and a picture")
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--mode", choices=["quick", "full"], default=None, help="override VRNKIT_MODE")
    p.add_argument("--weights", default=None, help="a shipped model name or a checkpoint (default: vrn-guided-192)")
    p.add_argument("--index", type=int, default=11, help="which held-out SynthFaces face, >= 0 (default 11: yaw +36)")
    p.set_defaults(func=_cli)


def _cli(args) -> None:
    from .files import check_number, check_out_folder

    # Checked before the model loads, so that a typo fails at once and writes nothing.
    check_number(args.index, "--index", low=0, high=10**6, integer=True)
    check_out_folder(args.out)
    run_demo(args.out, mode=args.mode, weights=args.weights, index=args.index)
