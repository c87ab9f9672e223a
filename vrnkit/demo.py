"""The main job on the embedded default: `vrnkit demo` (also `make demo`).

It needs no download: scikit-image's astronaut photo and a held-out SynthFaces face go through
the shipped VRN-Guided; each predicted volume becomes a coloured mesh (OBJ, PLY, GLB) and a
picture (for the synthetic face, compared with its ground truth).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def run_demo(out="out/demo", *, model=None, index: int = 11, device=None) -> dict:
    """The main job: a real photo and a held-out synthetic face, each to a coloured 3D mesh.

    1. The astronaut (scikit-image's one real photo): dlib finds her face and 68 landmarks, the
       shipped VRN-Guided reconstructs it -> astronaut.{obj,ply,glb,json,png}.
    2. A held-out SynthFaces face (synth-aflw2000 protocol: clutter, occluders) whose true shape
       is known -> synthetic.{obj,ply,glb} and demo.png comparing prediction and ground truth,
       with the volume IoU and NME.
    ``model``: a shipped model's name or a checkpoint instead of the default (for both);
    ``device``: where the network runs (default: CUDA if there is one).
    """
    from matplotlib.figure import Figure  # not pyplot: no window, and a notebook's backend is left alone
    from skimage.data import astronaut

    from .metrics import nme, volume_iou
    from .reconstruct import front_facing, load_model, predict_volume, reconstruct
    from .surface import SMOOTH, export_mesh, sample_vertex_colours, volume_to_mesh
    from .synthfaces.dataset import make_sample
    from .voxel import Slab, slab_to_volume

    net, spec, name = load_model(model, device=device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"vrnkit demo: model {name}: {net.config.kind}, "
          f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f}M parameters, crop {spec.width}x{spec.height}, "
          f"volume {spec.shape} (D, H, W)")
    paths = {}

    # 1. A real photo.
    photo = astronaut()
    try:
        rec = reconstruct(photo, model=model, device=device)  # by name: the picture and JSON say which model
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
    probs = predict_volume(net, sample["image"], landmarks=sample["landmarks"])
    t_net = time.perf_counter() - t
    t = time.perf_counter()
    mv, mf = volume_to_mesh(probs, spec, smooth=SMOOTH)
    t_mc = time.perf_counter() - t
    colours = sample_vertex_colours(mv, sample["image"])
    target = slab_to_volume(Slab(sample["front"], sample["mask"], sample["back"], sample["affine"]), spec)
    iou = float(np.ravel(volume_iou(probs, target))[0])
    gt = sample["vertices"]  # the face region
    fv, ff = front_facing(mv, mf, sample["affine"])
    score = nme(gt, fv, sample["landmarks"], pred_faces=ff)
    for ext in ("obj", "ply", "glb"):
        paths[ext] = out / f"synthetic.{ext}"
        export_mesh(paths[ext], mv, mf, colours=colours)

    from .meshviz import render_mesh

    tv, tf = volume_to_mesh(target, spec)
    fig = Figure(figsize=(18, 3.4))
    ax = fig.subplots(1, 6)
    ax[0].imshow(sample["image"])
    ax[0].set_title(f"input (yaw {meta['yaw']:+.0f}, {meta['expression']})")
    mid = spec.height // 2
    ax[1].imshow(target[:, mid, :], origin="lower", cmap="gray", aspect=1 / spec.depth_scale)
    ax[1].set_title(f"target, slice y={mid}")
    ax[2].imshow(probs[:, mid, :], origin="lower", cmap="magma", vmin=0, vmax=1, aspect=1 / spec.depth_scale)
    ax[2].set_title("prediction (probability)")
    ax[3].imshow(render_mesh(tv, tf))
    ax[3].set_title("ground-truth solid")
    ax[4].imshow(render_mesh(mv, mf))
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
    print(f"  synthetic face {meta['id']}: volume IoU {iou:.3f}, NME {score:.4f}")
    for k, p in paths.items():
        print(f"  wrote {k:15s} {p}")
    return dict(paths=paths, iou=iou, nme=score, vertices=len(mv))
