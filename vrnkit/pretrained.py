"""The model shipped with vrnkit, and how it was made and measured.

``load_pretrained()`` returns a VRN trained on SynthFaces (the cpu preset: 64x64 crops,
64x64x64 volumes, ~2 MB), so the demo and the notebooks work without training first. It is
reproducible with one command (``make weights``, see the Makefile), which generates the data,
trains, and calls ``python -m vrnkit.pretrained RUN --name NAME --eval DIR ...`` to copy the
weights here with their training curve (PNG) and validation table (CSV and Markdown).

>>> model, config, info = load_pretrained()                          # doctest: +SKIP
>>> probs = predict_volume(model, sample["image"])                   # doctest: +SKIP
>>> probs.shape                                                      # doctest: +SKIP
(64, 64, 64)
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch

from .config import VolumeSpec
from .models import load_checkpoint

WEIGHTS = Path(__file__).parent / "weights"
PRETRAINED = {"vrn-cpu": "vrn-cpu.pt"}


def load_pretrained(name: str = "vrn-cpu", *, device="cpu"):
    """(model in eval mode, ModelConfig, extra) of a shipped model."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; shipped: {sorted(PRETRAINED)}")
    path = WEIGHTS / PRETRAINED[name]
    if not path.exists():
        raise FileNotFoundError(f"the weights {path} are missing from this install; rebuild them with `make weights`")
    return load_checkpoint(path, map_location=device)


def volume_spec_of(config, depth_scale: float = 2.0) -> VolumeSpec:
    """The VolumeSpec a model's output lives in."""
    return VolumeSpec(depth=config.depth, height=config.image_size, width=config.image_size,
                      depth_scale=depth_scale, face_size=90.0 * config.image_size / 192)


@torch.no_grad()
def predict_volume(model, images, *, device=None) -> np.ndarray:
    """Voxel probabilities from crops.

    images: (S, S, 3) uint8 crop, or (B, S, S, 3) uint8, or a (B, 3, S, S) float tensor in [0, 1].
    Returns (D, S, S) or (B, D, S, S) float32 probabilities (sigmoid of the logits).
    """
    single = isinstance(images, np.ndarray) and images.ndim == 3
    if isinstance(images, np.ndarray):
        arr = images[None] if single else images
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"images must be (S, S, 3) or (B, S, S, 3) uint8 crops; got {images.shape}")
        x = torch.from_numpy(np.array(arr, np.uint8)).permute(0, 3, 1, 2).float() / 255
    else:
        x = images
    size = model.config.image_size
    if tuple(x.shape[-2:]) != (size, size):
        raise ValueError(f"this model takes {size}x{size} crops; got {tuple(x.shape[-2:])}: crop the face first")
    device = device or next(model.parameters()).device
    out = torch.sigmoid(model(x.to(device))["volume"].float()).cpu().numpy()
    return out[0] if single else out


def front_facing(vertices, faces, affine) -> np.ndarray:
    """Vertices of a predicted iso-surface whose normals face the way the face looks.

    The face's forward direction is its slab's canonical z axis posed into the crop; the sides
    and flat back of the predicted solid face away from it and are left out of the NME.
    """
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], n)
    forward = np.asarray(affine, np.float64)[:, 2]
    forward /= np.linalg.norm(forward)
    dot = (vn / (np.linalg.norm(vn, axis=1, keepdims=True) + 1e-12)) @ forward
    return v[dot > 0.3]


def evaluate(model, data, *, n: int = 200, batch: int = 16, progress: bool = True):
    """Per-sample IoU, NME estimate and NME (ICP correspondences) on a test folder -> DataFrame."""
    import pandas as pd
    from tqdm.auto import tqdm

    from .facegen import FaceModel
    from .metrics import nme, nme_estimate, volume_iou
    from .shards import ShardDataset, collate
    from .surface import volume_to_mesh
    from .voxel import slabs_to_volumes

    ds = ShardDataset(data)
    spec = volume_spec_of(model.config)
    region = FaceModel.default().face_region
    rows = []
    idx = np.linspace(0, len(ds) - 1, min(n, len(ds))).astype(int)
    for start in tqdm(range(0, len(idx), batch), desc=f"evaluate {Path(data).name}", disable=not progress):
        b = collate([ds[int(i)] for i in idx[start:start + batch]])
        probs = predict_volume(model, b["image"])
        target = slabs_to_volumes(b["front"], b["mask"], b["back"], b["affine"], spec).numpy()
        ious = volume_iou(probs, target)
        est = nme_estimate(probs, target, b["landmarks"].numpy(), spec)
        for k in range(len(probs)):
            row = dict(ds.index.iloc[int(idx[start + k])][["id", "expression", "yaw", "pitch", "roll"]])
            row.update(iou=float(ious[k]), nme_estimate=float(est[k]), nme=np.nan)
            if "vertices" in b and (probs[k] > 0.5).any():
                mv, mf = volume_to_mesh(probs[k], spec)
                pred = front_facing(mv, mf, b["affine"][k].numpy())
                gt = b["vertices"][k].numpy()[region]
                if len(pred):
                    row["nme"] = nme(gt, pred, b["landmarks"][k].numpy())
            rows.append(row)
    return pd.DataFrame(rows)


def training_curve(metrics_csv, path) -> None:
    """Plot loss per step and validation IoU / NME estimate per epoch from a run's metrics.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.read_csv(metrics_csv)
    steps, epochs = df[df["kind"] == "step"], df[df["kind"] == "epoch"]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    smooth = steps["loss"].rolling(50, min_periods=1).mean()
    ax[0].plot(steps["step"], steps["loss"], alpha=0.25, lw=0.5, label="per step")
    ax[0].plot(steps["step"], smooth, label="mean of 50 steps")
    ax[0].set(xlabel="step", ylabel="volume loss (BCE)", yscale="log", title="training loss")
    ax[0].legend()
    ax[1].plot(epochs["epoch"] + 1, epochs["val_iou"], "o-", label="val IoU")
    ax[1].set(xlabel="epoch", ylabel="IoU", title="validation (held-out SynthFaces)")
    twin = ax[1].twinx()
    twin.plot(epochs["epoch"] + 1, epochs["val_nme"], "s--", color="C3", label="val NME estimate")
    twin.set_ylabel("NME estimate", color="C3")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def export(run, name: str, *, eval_dirs=(), n: int = 200) -> dict:
    """Copy RUN/model.pt to vrnkit/weights/NAME.pt with its curve and validation table."""
    import pandas as pd

    run = Path(run)
    WEIGHTS.mkdir(exist_ok=True)
    model, config, extra = load_checkpoint(run / "model.pt")
    shutil.copyfile(run / "model.pt", WEIGHTS / f"{name}.pt")
    training_curve(run / "metrics.csv", WEIGHTS / f"{name}-curve.png")
    summary = []
    for d in eval_dirs:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        df = evaluate(model, d, n=n)
        summary.append(dict(test_set=Path(d).name, samples=len(df), iou=df["iou"].mean(),
                            nme_estimate=df["nme_estimate"].mean(), nme=df["nme"].mean()))
    table = pd.DataFrame(summary)
    table.to_csv(WEIGHTS / f"{name}-validation.csv", index=False)
    md = [f"# {name}: validation", "", f"Model: {config.kind} / {config.image_size}x{config.image_size} "
          f"-> {config.depth}x{config.image_size}x{config.image_size}, trained {extra.get('step')} steps "
          f"(`{run}`).", "", "| test set | samples | IoU | NME estimate | NME |", "|---|---|---|---|---|"]
    md += [f"| {r.test_set} | {r.samples} | {r.iou:.3f} | {r.nme_estimate:.4f} | {r.nme:.4f} |" for r in table.itertuples()]
    md += ["", "NME: mean distance from the ground-truth face-region vertices to their ICP correspondences on "
           "the front-facing part of the predicted iso-surface, after mean-z alignment, over the 3D outer "
           "interocular distance. NME estimate: the same on the volumes' front surfaces, no ICP."]
    (WEIGHTS / f"{name}-validation.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return dict(table=table, weights=WEIGHTS / f"{name}.pt")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="ship a trained run as vrnkit's pretrained model")
    p.add_argument("run", help="training output folder (holds model.pt and metrics.csv)")
    p.add_argument("--name", default="vrn-cpu")
    p.add_argument("--eval", nargs="*", default=[], help="test folders for the validation table")
    p.add_argument("--n", type=int, default=200, help="samples per test folder")
    args = p.parse_args(argv)
    export(args.run, args.name, eval_dirs=args.eval, n=args.n)


if __name__ == "__main__":
    main()
