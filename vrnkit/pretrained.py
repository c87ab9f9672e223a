"""The models shipped with vrnkit, and how they were made and measured.

Three models, each in vrnkit/weights/ with its training curve (PNG) and validation table:

    vrn-cpu          VRN, cpu preset: 64x64 crops -> 64x64x64 volumes (~2 MB). Trains on two
                     CPU cores (``make weights``); the notebooks' quick mode uses it.
    vrn-192          VRN, colab preset at the paper's sizes: 192x192 -> 200x192x192 (fp16, ~4 MB).
    vrn-guided-192   VRN-Guided, same sizes (fp16, ~8 MB): the image plus 68 landmark heatmaps.
                     The default for photos: the detector's landmarks guide it.

The two 192 models were trained for 7 minutes side by side on one H100
(``benchmarks/gpu_train_192.py``, see the Makefile's ``weights-192`` target).

``vrnkit export RUN --name NAME`` ships a training run the same way (:func:`export`).

>>> from vrnkit.checkpoint import volume_spec_of
>>> model, config, extra = load_pretrained("vrn-cpu")
>>> config.kind, config.image_size, volume_spec_of(config, extra).shape
('vrn', 64, (64, 64, 64))
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint, save_checkpoint

WEIGHTS = Path(__file__).parent / "weights"
PRETRAINED = {"vrn-cpu": "vrn-cpu.pt", "vrn-192": "vrn-192.pt", "vrn-guided-192": "vrn-guided-192.pt"}
PHOTO_MODEL = "vrn-guided-192"  # what vrnkit.reconstruct uses unless told otherwise
REBUILD = {"vrn-cpu": "make weights", "vrn-192": "make weights-192 (on a GPU)",
           "vrn-guided-192": "make weights-192 (on a GPU)"}


def load_pretrained(name: str = "vrn-cpu", *, device="cpu"):
    """(model in eval mode, ModelConfig, extra) of a shipped model (see PRETRAINED)."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; shipped: {sorted(PRETRAINED)}")
    path = WEIGHTS / PRETRAINED[name]
    if not path.exists():
        raise FileNotFoundError(f"the weights {path} are missing from this install; rebuild them with "
                                f"`{REBUILD[name]}`")
    return load_checkpoint(path, map_location=device)


def export(run, name: str, *, eval_dirs=(), n: int = 200, half: bool = False, progress: bool = True) -> dict:
    """Copy RUN/model.pt to vrnkit/weights/NAME.pt (float16 if ``half``) with its curve and
    validation table."""
    import pandas as pd

    run = Path(run)
    model, config, extra = load_checkpoint(run / "model.pt")
    WEIGHTS.mkdir(exist_ok=True)  # only once there is something to write
    if half:
        save_checkpoint(WEIGHTS / f"{name}.pt", model, config, extra=extra, half=True)
    else:
        shutil.copyfile(run / "model.pt", WEIGHTS / f"{name}.pt")
    from .evaluate import VRNMethod, evaluate
    from .viz import training_curve

    training_curve(run / "metrics.csv", WEIGHTS / f"{name}-curve.png")
    summary = []
    for d in eval_dirs:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        df = evaluate(VRNMethod(model), d, n=n, progress=progress)
        ok = np.isfinite(df["nme"])  # an empty prediction is a failure, left out of the mean
        summary.append(dict(test_set=Path(d).name, samples=len(df), iou=df["iou"].mean(),
                            nme=df.loc[ok, "nme"].mean(), rigid_nme=df.loc[ok, "rigid_nme"].mean(),
                            failed=int(np.isinf(df["nme"]).sum()), landmark_nme=df["landmark_nme"].mean()))
    table = pd.DataFrame(summary)
    table.to_csv(WEIGHTS / f"{name}-validation.csv", index=False)
    md = [f"# {name}: validation", "", f"Model: {config.kind} / {config.image_size}x{config.image_size} "
          f"-> {config.depth}x{config.image_size}x{config.image_size}, trained {extra.get('step')} steps "
          f"(`{run}`).", "", "| test set | samples | IoU | NME | rigid NME | failed | landmark NME (2D) |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r.test_set} | {r.samples} | {r.iou:.3f} | {r.nme:.4f} | {r.rigid_nme:.4f} | {r.failed} | "
           f"{r.landmark_nme:.4f} |"
           for r in table.itertuples()]
    md += ["", "NME: mean distance from the ground-truth face-region vertices to their ICP correspondences on "
           "the front-facing part of the predicted iso-surface, after mean-z alignment, over the 3D outer "
           "interocular distance, over the faces with a prediction (failed: empty predictions, left out of the mean). "
           "Rigid NME: after the ICP's rotation and translation too. Landmark NME: "
           "the model's own 68 landmarks (guided, multitask) against the true ones, over sqrt(w*h) of their box."]
    (WEIGHTS / f"{name}-validation.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return dict(table=table, weights=WEIGHTS / f"{name}.pt")
