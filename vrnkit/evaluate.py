"""Comparing methods the paper's way: NME per face, tables, error against pose, error curves.

Methods reconstruct one test face from its crop (and, where they use them, its 68 landmarks)
and return surface points in crop pixels; every method is scored by the same
:func:`vrnkit.metrics.nme` against the ground-truth face region. A method that returns nothing
(an empty volume) scores ``inf``: it counts as a failure in every table and curve, never a crash.

Methods here:

* ``vrn:NAME``: a shipped network (``vrn-cpu``, ``vrn-192``, ``vrn-guided-192``; guided by the
  true landmarks, a perfect detector); the front-facing part of its 0.5 iso-surface.
* ``mean-face``: SynthFaces' mean face posed by a weak-perspective fit to the 68 landmarks (no
  shape at all: the floor every method must beat).
* ``linear-fit``: pose, identity and expression fitted to the 68 landmarks by regularised linear
  least squares on the SynthFaces model, in the spirit of EOS (Huber et al. 2016). On SynthFaces
  this model is the one that made the test faces, so it is an oracle-model baseline there; on
  real faces it would meet a model mismatch that VRN does not have.

>>> from vrnkit.synthfaces.dataset import make_sample
>>> from vrnkit.config import VolumeSpec
>>> sample, _ = make_sample("synth-florence", 0, spec=VolumeSpec.preset("paper"))
>>> fit = fit_landmarks(sample["landmarks"][:, :2])
>>> fit.vertices.shape, bool(fit.rms < 2.0)                                    # doctest: +SKIP
((15933, 3), True)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import volume_spec_of
from .reconstruct import front_facing, predict_volume
from .synthfaces.model import FaceModel

PAPER_TABLE1 = {  # NME on AFLW2000-3D / BU-4DFE / Florence (Jackson et al. 2017, Table 1)
    "VRN": (0.0676, 0.0600, 0.0568), "VRN-Multitask": (0.0698, 0.0625, 0.0542),
    "VRN-Guided": (0.0637, 0.0555, 0.0509), "3DDFA": (0.1012, 0.1227, 0.0975), "EOS": (0.0971, 0.1560, 0.1253)}


@dataclass
class Fit:
    """A face model fitted to 2D landmarks: vertices (N, 3) in the landmarks' pixels (x, y; z up
    to a constant), scale s, rotation R (3, 3), translation t (2,), identity, expression, and the
    RMS landmark residual in pixels."""

    vertices: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    identity: np.ndarray
    expression: np.ndarray
    rms: float


def fit_pose(points3d, points2d) -> tuple[float, np.ndarray, np.ndarray]:
    """Weak-perspective pose: (s, R, t) with points2d ~ s * (points3d @ R.T)[:, :2] + t.

    An affine camera (2 x 4) is fitted by least squares, then made a scaled rotation: the
    nearest two orthonormal rows (SVD) times the mean of the singular values; the third row is
    their cross product (z toward the viewer in image space, so R is a proper rotation).
    """
    X = np.asarray(points3d, np.float64)
    x = np.asarray(points2d, np.float64)
    A = np.linalg.lstsq(np.c_[X, np.ones(len(X))], x, rcond=None)[0].T  # (2, 4)
    u, s, vt = np.linalg.svd(A[:, :3], full_matrices=False)
    rows = u @ vt
    R = np.vstack([rows, np.cross(rows[0], rows[1])])
    return float(s.mean()), R, A[:, 3]


def fit_landmarks(landmarks2d, *, model: FaceModel | None = None, shape: bool = True, iterations: int = 6,
                  noise_px: float = 1.5) -> Fit:
    """Fit pose, identity and expression of the SynthFaces model to (68, 2) landmarks.

    Alternates :func:`fit_pose` and a linear least-squares solve for the shape parameters with a
    Gaussian prior: identity in standard deviations (prior sd 1), expression strengths (prior sd
    0.5), landmark noise ``noise_px``. ``shape=False`` fits the pose of the mean face only.
    """
    model = model or FaceModel.default()
    x = np.asarray(landmarks2d, np.float64)[:, :2]
    if x.shape != (68, 2) or not np.all(np.isfinite(x)):
        raise ValueError(f"landmarks must be 68 finite (x, y) points; got shape {np.shape(landmarks2d)}")
    idx = model.landmarks
    cols = np.ravel(np.c_[3 * idx, 3 * idx + 1, 3 * idx + 2])  # rows of the bases at the landmarks
    basis = np.hstack([model.identity_basis[cols], model.expression_basis[cols]]).astype(np.float64)
    n_id = model.identity_basis.shape[1]
    prior_sd = np.r_[np.ones(n_id), np.full(basis.shape[1] - n_id, 0.5)]
    mean_lm = model.mean[idx].astype(np.float64)
    params = np.zeros(basis.shape[1])
    for _ in range(iterations if shape else 1):
        lm3d = mean_lm + (basis @ params).reshape(68, 3)
        s, R, t = fit_pose(lm3d, x)
        if not shape:
            break
        # x - t - s P R mean = s P R B params, P keeping x and y: one linear system in params
        project = s * R[:2]  # (2, 3)
        A = np.einsum("ij,kjp->kip", project, basis.reshape(68, 3, -1)).reshape(136, -1)
        b = (x - t - mean_lm @ project.T).reshape(-1)
        reg = np.diag((noise_px / prior_sd) ** 2)
        params = np.linalg.solve(A.T @ A + reg, A.T @ b)
    lm3d = mean_lm + (basis @ params).reshape(68, 3)
    s, R, t = fit_pose(lm3d, x)
    ident, expr = params[:n_id], params[n_id:]
    v = model.mean.astype(np.float64) + (model.identity_basis @ ident + model.expression_basis @ expr).reshape(-1, 3)
    posed = s * v @ R.T
    posed[:, :2] += t
    rms = float(np.sqrt(np.mean(np.sum((posed[idx, :2] - x) ** 2, 1))))
    return Fit(posed.astype(np.float32), s, R, t, ident, expr, rms)


# ---------------------------------------------------------------------------------------------
# Methods: (sample at the method's crop size, guiding landmarks) -> surface points in crop pixels

def noisy_landmarks(landmarks, nme: float, rng) -> np.ndarray:
    """(68, 2|3) landmarks moved in x, y by Gaussian noise of mean distance ``nme`` x sqrt(w*h)
    of their box: a landmark detector's error (dlib's is about 0.045 on SynthFaces)."""
    import torch

    from .augment import jitter_landmarks

    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))  # the noise follows rng
    lm = torch.as_tensor(np.asarray(landmarks, np.float64))[None]
    return jitter_landmarks(lm, nme, generator=generator)[0].numpy()


def vrn_method(name: str):
    """A shipped network as a method: its smoothed 0.5 iso-surface, front-facing part only."""
    from .reconstruct import load_model
    from .surface import SMOOTH, volume_to_mesh

    net, spec, _ = load_model(name, device="cpu")

    def run(sample, landmarks):
        probs = predict_volume(net, sample["image"], landmarks=landmarks)
        if not (probs > 0.5).any():
            return None
        v, f = volume_to_mesh(probs, spec, smooth=SMOOTH)
        return front_facing(v, f, sample["affine"])

    run.spec = spec
    return run


def fit_method(*, shape: bool):
    """The mean face (shape=False) or the linear fit, from the guiding landmarks."""
    region = FaceModel.default().face_region

    def run(sample, landmarks):
        return fit_landmarks(landmarks[:, :2], shape=shape).vertices[region]

    return run


METHODS = {"vrn-guided-192": lambda: vrn_method("vrn-guided-192"), "vrn-192": lambda: vrn_method("vrn-192"),
           "vrn-cpu": lambda: vrn_method("vrn-cpu"), "linear-fit": lambda: fit_method(shape=True),
           "mean-face": lambda: fit_method(shape=False)}


def compare(protocols, *, methods=tuple(METHODS), n: int = 32, landmark_noise: float = 0.0, seed: int = 0,
            progress: bool = True):
    """NME of each method on the first ``n`` faces of each SynthFaces test protocol -> DataFrame.

    Each face is made at every method's own crop size (same face, same pose), so 64 px and
    192 px models meet the same faces. ``landmark_noise``: the NME of the landmarks the guided
    model and the fits are given (0: the true ones). Rows: method, protocol, id, yaw, expression,
    nme (inf for a failure).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .config import VolumeSpec
    from .metrics import nme
    from .synthfaces.dataset import make_sample

    runs = {m: METHODS[m]() for m in methods}
    rows = []
    for protocol in protocols:
        for i in tqdm(range(n), desc=f"compare {protocol}", disable=not progress):
            cache = {}
            for name, run in runs.items():
                spec = getattr(run, "spec", VolumeSpec.preset("paper"))
                if spec not in cache:
                    cache[spec] = make_sample(protocol, i, spec=spec)
                sample, meta = cache[spec]
                rng = np.random.default_rng([seed, i])  # the same noise for every method
                lm = noisy_landmarks(sample["landmarks"], landmark_noise, rng) if landmark_noise else sample["landmarks"]
                points = run(sample, lm)
                score = np.inf if points is None or len(points) == 0 else \
                    nme(sample["vertices"], points, sample["landmarks"])
                rows.append(dict(method=name, protocol=protocol, id=meta["id"], yaw=meta["yaw"],
                                 expression=meta["expression"], nme=score))
    return pd.DataFrame(rows)


def table(scores, *, threshold: float = 0.1):
    """Per method and protocol: the mean NME of the faces it reconstructed, how many it failed
    (they are left out of the mean but count in the AUC) and the AUC of the cumulative error
    curve up to ``threshold`` -> DataFrame (methods x columns)."""
    import pandas as pd

    out = {}
    for (method, protocol), g in scores.groupby(["method", "protocol"], sort=False):
        ok = np.isfinite(g.nme)
        out.setdefault(method, {})[f"{protocol} NME"] = g.nme[ok].mean()
        out[method][f"{protocol} failed"] = int((~ok).sum())
        out[method][f"{protocol} AUC@{threshold}"] = ced_auc(g.nme, threshold)
    tab = pd.DataFrame(out).T
    failed = [c for c in tab.columns if c.endswith(" failed")]
    return tab.astype({c: int for c in failed})


def ced_auc(errors, threshold: float = 0.1) -> float:
    """Area under the cumulative error distribution up to ``threshold``, normalised to [0, 1]
    (1: every face has error 0; failures (inf) never count as under the threshold)."""
    e = np.sort(np.asarray(errors, np.float64))
    grid = np.linspace(0, threshold, 201)
    frac = np.searchsorted(e, grid, side="right") / max(len(e), 1)
    return float(np.sum((frac[1:] + frac[:-1]) / 2 * np.diff(grid)) / threshold)  # trapezoids


def plot_comparison(scores, path, *, threshold: float = 0.1) -> None:
    """Two panels: cumulative error curves of every method (all protocols), and NME against
    absolute yaw (bins of 30 degrees), as in the paper's Figures 4-6."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    grid = np.linspace(0, threshold, 201)
    bins = [0, 30, 60, 90]
    for method, g in scores.groupby("method", sort=False):
        e = np.sort(g.nme.to_numpy())
        ax[0].plot(grid, np.searchsorted(e, grid, side="right") / len(e) * 100,
                   label=f"{method} (AUC {ced_auc(e, threshold):.2f})")
        yaw_bin = np.digitize(g.yaw.abs(), bins[1:-1])
        means = [g.nme[(yaw_bin == b) & np.isfinite(g.nme)].mean() for b in range(3)]
        ax[1].plot([15, 45, 75], means, "o-", label=method)
    ax[0].set(xlabel="NME", ylabel="faces with a smaller error (%)", title="cumulative error", xlim=(0, threshold))
    ax[1].set(xlabel="|yaw| (degrees, bin centres)", ylabel="mean NME", title="error against pose")
    ax[0].legend(fontsize=8)
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def markdown(df, *, digits: int = 4) -> str:
    """A DataFrame as a Markdown table (numbers to ``digits`` places), without extra packages."""
    cell = lambda v: f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v)  # noqa: E731
    lines = ["| | " + " | ".join(map(str, df.columns)) + " |", "|---" * (len(df.columns) + 1) + "|"]
    lines += ["| " + str(i) + " | " + " | ".join(cell(v) for v in row) + " |"
              for i, row in zip(df.index, df.itertuples(index=False))]  # per row: ints stay ints
    return "\n".join(lines)


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
    """Per-sample IoU, NME estimate and NME (ICP correspondences) on a test folder -> DataFrame.

    One row per face: id, expression, yaw, pitch, roll, iou, nme_estimate, nme, landmark_nme. NME
    is NaN where the test set has no ground-truth mesh, and inf where the prediction is empty (a
    failure: counted, never a crash)."""
    import pandas as pd
    from tqdm.auto import tqdm

    from .metrics import nme, nme_estimate, volume_iou
    from .datasets.shards import ShardDataset, collate
    from .surface import volume_to_mesh
    from .voxel import slabs_to_volumes

    ds = ShardDataset(data)
    spec = volume_spec_of(model.config)
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
            if "vertices" in b:
                row["nme"] = np.inf  # until the prediction has a front surface
                if (probs[k] > 0.5).any():
                    mv, mf = volume_to_mesh(probs[k], spec)
                    pred = front_facing(mv, mf, b["affine"][k].numpy())
                    gt = b["vertices"][k].numpy()  # the face region, whichever dataset
                    if len(pred):
                        row["nme"] = nme(gt, pred, b["landmarks"][k].numpy())
            rows.append(row)
    return pd.DataFrame(rows)
