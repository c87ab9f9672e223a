"""The models shipped with vrnkit, and how they were made and measured.

Three models, each in vrnkit/weights/ with its training curve (PNG) and validation table:

    vrn-cpu          VRN, cpu preset: 64x64 crops -> 64x64x64 volumes (~2 MB). Trains on two
                     CPU cores (``make weights``); the notebooks' quick mode uses it.
    vrn-192          VRN, colab preset at the paper's sizes: 192x192 -> 200x192x192 (fp16, ~4 MB).
    vrn-guided-192   VRN-Guided, same sizes (fp16, ~8 MB): the image plus 68 landmark heatmaps.
                     The default for photos: the detector's landmarks guide it.

The two 192 models were trained for 7 minutes side by side on one H100
(``benchmarks/gpu_train_192.py``, see the Makefile's ``weights-192`` target).

>>> model, config, info = load_pretrained("vrn-cpu")                 # doctest: +SKIP
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
from .models import load_checkpoint, save_checkpoint

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


def volume_spec_of(config, extra: dict | None = None) -> VolumeSpec:
    """The VolumeSpec a model's output lives in: the one its checkpoint carries (``extra["volume"]``),
    else the paper's proportions (2 slices per pixel, face 90/192 of the crop)."""
    if extra and "volume" in extra:
        return VolumeSpec(**extra["volume"])
    return VolumeSpec(depth=config.depth, height=config.image_size, width=config.image_size,
                      depth_scale=2.0, face_size=90.0 * config.image_size / 192)


def _as_batch(images) -> tuple[torch.Tensor, bool]:
    """Crops -> ((B, 3, S, S) float32 tensor in [0, 1], whether one image was given)."""
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"an image tensor must be (B, 3, S, S) float in [0, 1]; got {tuple(images.shape)}")
        return images.float(), False
    arr = np.asarray(images)
    single = arr.ndim == 3
    arr = arr[None] if single else arr
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"images must be (S, S, 3) or (B, S, S, 3) crops; got shape {np.shape(images)}")
    if arr.dtype == np.uint8:
        x = torch.from_numpy(np.array(arr, np.uint8)).float() / 255  # a copy: arrays may be read-only
    elif arr.dtype.kind == "f":  # already in [0, 1]: never cast floats to uint8 (that gives black)
        if arr.size and (arr.min() < -1e-3 or arr.max() > 1 + 1e-3):
            raise ValueError(f"float crops must hold values in [0, 1]; got [{arr.min():.3g}, {arr.max():.3g}] "
                             f"(pass uint8 for 0..255)")
        x = torch.from_numpy(np.clip(arr, 0, 1).astype(np.float32))
    else:
        raise ValueError(f"crops must be uint8 or float in [0, 1]; got dtype {arr.dtype}")
    return x.permute(0, 3, 1, 2), single


@torch.no_grad()
def predict_volume(model, images, *, landmarks=None, device=None) -> np.ndarray:
    """Voxel probabilities from crops.

    images: (S, S, 3) or (B, S, S, 3) crops, uint8 or float in [0, 1], or a (B, 3, S, S) float
        tensor in [0, 1].
    landmarks: VRN-Guided only: (68, 2|3) or (B, 68, 2|3) landmarks in crop pixels, drawn as the
        Gaussian heatmaps that guide the volume (as in training). None: the model's own landmark
        network draws them.
    Returns (D, S, S) or (B, D, S, S) float32 probabilities (sigmoid of the logits).
    """
    from .augment import landmarks_to_heatmaps

    x, single = _as_batch(images)
    size = model.config.image_size
    if tuple(x.shape[-2:]) != (size, size):
        raise ValueError(f"this model takes {size}x{size} crops; got {tuple(x.shape[-2:])}: crop the face first")
    device = device or next(model.parameters()).device
    x = x.to(device)
    kwargs = {}
    if landmarks is not None and model.config.kind == "guided":
        lm = torch.as_tensor(np.asarray(landmarks, np.float32), device=device)
        lm = lm[None] if lm.ndim == 2 else lm
        if lm.ndim != 3 or lm.shape[0] != x.shape[0] or lm.shape[1] != model.config.num_landmarks:
            raise ValueError(f"landmarks must be ({model.config.num_landmarks}, 2|3) per image; got "
                             f"{tuple(np.shape(landmarks))} for {x.shape[0]} image(s)")
        kwargs["heatmaps"] = landmarks_to_heatmaps(lm, size // 4)
    out = torch.sigmoid(model(x, **kwargs)["volume"].float()).cpu().numpy()
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


@torch.no_grad()
def landmark_nme(model, images: torch.Tensor, landmarks: np.ndarray) -> np.ndarray:
    """2D landmark NME (B,) of a guided / multitask model's own landmark heatmaps: mean point
    distance over sqrt(w*h) of the true landmarks' box (the AFLW2000-3D protocol); NaN for VRN."""
    from .augment import heatmaps_to_landmarks

    if model.config.kind not in ("guided", "multitask"):
        return np.full(len(images), np.nan)
    x = images.to(next(model.parameters()).device)
    heatmaps = model.landmarks(x)[-1] if model.config.kind == "guided" else model(x)["heatmaps"][-1]
    pred = heatmaps_to_landmarks(heatmaps.float(), stride=model.config.image_size / heatmaps.shape[-1]).cpu().numpy()
    true = np.asarray(landmarks)[..., :2]
    size = np.sqrt(np.prod(true.max(1) - true.min(1), axis=-1))
    return np.linalg.norm(pred - true, axis=-1).mean(1) / size


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
        # VRN-Guided is guided by the ground-truth landmarks (a perfect detector)
        probs = predict_volume(model, b["image"], landmarks=b["landmarks"].numpy())
        target = slabs_to_volumes(b["front"], b["mask"], b["back"], b["affine"], spec).numpy()
        ious = volume_iou(probs, target)
        est = nme_estimate(probs, target, b["landmarks"].numpy(), spec)
        lm_nme = landmark_nme(model, b["image"], b["landmarks"].numpy())
        for k in range(len(probs)):
            row = dict(ds.index.iloc[int(idx[start + k])][["id", "expression", "yaw", "pitch", "roll"]])
            row.update(iou=float(ious[k]), nme_estimate=float(est[k]), nme=np.nan, landmark_nme=float(lm_nme[k]))
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


def export(run, name: str, *, eval_dirs=(), n: int = 200, half: bool = False) -> dict:
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
    training_curve(run / "metrics.csv", WEIGHTS / f"{name}-curve.png")
    summary = []
    for d in eval_dirs:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        df = evaluate(model, d, n=n)
        summary.append(dict(test_set=Path(d).name, samples=len(df), iou=df["iou"].mean(),
                            nme_estimate=df["nme_estimate"].mean(), nme=df["nme"].mean(),
                            landmark_nme=df["landmark_nme"].mean()))
    table = pd.DataFrame(summary)
    table.to_csv(WEIGHTS / f"{name}-validation.csv", index=False)
    md = [f"# {name}: validation", "", f"Model: {config.kind} / {config.image_size}x{config.image_size} "
          f"-> {config.depth}x{config.image_size}x{config.image_size}, trained {extra.get('step')} steps "
          f"(`{run}`).", "", "| test set | samples | IoU | NME estimate | NME | landmark NME (2D) |",
          "|---|---|---|---|---|---|"]
    md += [f"| {r.test_set} | {r.samples} | {r.iou:.3f} | {r.nme_estimate:.4f} | {r.nme:.4f} | {r.landmark_nme:.4f} |"
           for r in table.itertuples()]
    md += ["", "NME: mean distance from the ground-truth face-region vertices to their ICP correspondences on "
           "the front-facing part of the predicted iso-surface, after mean-z alignment, over the 3D outer "
           "interocular distance. NME estimate: the same on the volumes' front surfaces, no ICP. Landmark NME: "
           "the model's own 68 landmarks (guided, multitask) against the true ones, over sqrt(w*h) of their box."]
    (WEIGHTS / f"{name}-validation.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return dict(table=table, weights=WEIGHTS / f"{name}.pt")


def main(argv=None) -> int:
    from .cli import run_command

    p = argparse.ArgumentParser(description="ship a trained run as vrnkit's pretrained model")
    p.add_argument("run", help="training output folder (holds model.pt and metrics.csv)")
    p.add_argument("--name", default="vrn-cpu")
    p.add_argument("--eval", nargs="*", default=[], help="test folders for the validation table")
    p.add_argument("--n", type=int, default=200, help="samples per test folder")
    p.add_argument("--half", action="store_true", help="store the weights in float16 (half the size)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(argv)

    def run(a):
        if a.n < 1:
            raise ValueError(f"--n must be at least 1 (samples per test folder); got {a.n}")
        for d in a.eval:
            if not Path(d).is_dir():
                raise FileNotFoundError(f"no test folder {d}: make one with `vrnkit synth --protocol synth-aflw2000 "
                                        f"--out {d}`")
        export(a.run, a.name, eval_dirs=a.eval, n=a.n, half=a.half)

    return run_command(run, args, name="python -m vrnkit.pretrained")


if __name__ == "__main__":
    import sys

    sys.exit(main())
