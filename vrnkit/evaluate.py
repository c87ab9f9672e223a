"""Comparing methods the paper's way: one row per face, tables, error against pose and expression.

    evaluate(method, dataset) -> DataFrame, one row per test face:
        method, dataset, id, yaw, pitch, roll, expression,
        nme (the paper's), rigid_nme, landmark_error (sparse 3D), iou, landmark_nme (2D), seconds

A *method* reconstructs one test face from its crop (and, where it uses them, 68 guiding
landmarks) and returns a :class:`Prediction`: a surface in crop pixels, and where it has them a
volume (for IoU) and its own 2D landmarks. A *dataset* is a SynthFaces test protocol (faces made
on the fly at the method's crop size) or a folder of test shards (``vrnkit synth`` /
``vrnkit prepare``: AFLW2000-3D and the other real sets). Every method is scored by the same
functions of :mod:`vrnkit.metrics` against the ground truth's own face region. A method that
returns nothing scores ``inf``: a failure counted in every table and curve, never a crash.

Methods (:func:`get_method`):

* ``vrn-cpu``, ``vrn-192``, ``vrn-guided-192``, or a ``.pt`` checkpoint: a network; the
  front-facing part of its smoothed 0.5 iso-surface. VRN-Guided is guided by the given
  landmarks (the true ones, or noisy ones: ``landmark_noise``). A model trained on frontal
  targets (``--target frontal``, the alignment ablation) is only comparable by its rigid NME; a
  direct-regression model (``--model direct``) gives its sparse mesh of 591 vertices.
* ``mean-face``: SynthFaces' mean face posed by a weak-perspective fit to the landmarks (no
  shape at all: the floor every method must beat).
* ``linear-fit``: pose, identity and expression fitted to the landmarks
  (:func:`vrnkit.fitting.fit_landmarks`, in the spirit of EOS).
* ``voxelised-gt``: the true solid voxelised at the dataset's size and meshed exactly as a
  network's output is: the best any VRN of that size can score (the metric's floor).

>>> scores = evaluate("mean-face", "synth-florence", n=2, progress=False)    # doctest: +SKIP
>>> list(scores.columns[:3]), len(scores)                                    # doctest: +SKIP
(['method', 'dataset', 'id'], 2)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import SEED, VolumeSpec
from .fitting import fit_landmarks
from .synthfaces.dataset import PROTOCOLS

PAPER_TABLE1 = {  # NME on AFLW2000-3D / BU-4DFE / Florence (Jackson et al. 2017, Table 1)
    "VRN": (0.0676, 0.0600, 0.0568), "VRN-Multitask": (0.0698, 0.0625, 0.0542),
    "VRN-Guided": (0.0637, 0.0555, 0.0509), "3DDFA": (0.1012, 0.1227, 0.0975), "EOS": (0.0971, 0.1560, 0.1253)}
TEST_PROTOCOLS = ("synth-aflw2000", "synth-florence", "synth-bu4dfe")  # the paper's three test sets
YAW_BINS = (0, 30, 60, 90)  # the paper's pose bins, degrees of |yaw|


@dataclass
class Prediction:
    """One method's reconstruction of one test face, in crop pixels (x right, y down, z toward
    the viewer): the surface NME scores, vertices (M, 3) with faces (F, 3) (None: points), and
    where the method has them its volume (D, H, W) probabilities and its own landmarks (68, 2)."""

    vertices: np.ndarray
    faces: np.ndarray | None = None
    volume: np.ndarray | None = None
    landmarks: np.ndarray | None = None


class Method:
    """A reconstruction method: ``method(sample, landmarks) -> Prediction | None`` (None: no face).

    ``spec``: the crop and volume size it takes (None: any; it then takes the dataset's, and
    SynthFaces protocols are made at the paper's size). ``sample`` is one test face in the shard
    format (image, landmarks, affine, slab...); ``landmarks`` the (68, 2|3) guiding landmarks.
    """

    name = "method"
    spec: VolumeSpec | None = None

    def __call__(self, sample: dict, landmarks: np.ndarray) -> Prediction | None:
        raise NotImplementedError


class VRNMethod(Method):
    """A network: a shipped name, a checkpoint path, or a model. Its smoothed 0.5 iso-surface,
    front-facing part only; guided networks are guided by the landmarks they are given."""

    def __init__(self, model, *, device: str = "cpu"):
        from .reconstruct import load_model

        self.net, self.spec, name = load_model(model, device=device)
        self.name = name if isinstance(model, (str, Path)) else f"{self.net.config.kind} (in memory)"

    @torch.no_grad()
    def __call__(self, sample, landmarks):
        from scipy.ndimage import gaussian_filter

        from .augment import heatmaps_to_landmarks
        from .reconstruct import _as_batch, front_facing, predict_volume
        from .surface import SMOOTH, volume_to_mesh

        if self.net.config.kind == "direct":  # vertices of the sparse face mesh, no volume
            from .synthfaces.model import FaceModel

            x = _as_batch(sample["image"])[0].to(next(self.net.parameters()).device)
            vertices = self.net(x)["vertices"][0].float().cpu().numpy()
            return Prediction(vertices, FaceModel.default().sparse_faces)
        probs = predict_volume(self.net, sample["image"], landmarks=landmarks)
        own = None
        kind, size = self.net.config.kind, self.net.config.image_size
        if kind in ("guided", "multitask"):  # the model's own landmarks, from its heatmaps
            x = _as_batch(sample["image"])[0].to(next(self.net.parameters()).device)
            heat = self.net.landmarks(x)[-1] if kind == "guided" else self.net(x)["heatmaps"][-1]
            own = heatmaps_to_landmarks(heat.float(), stride=size / heat.shape[-1])[0].cpu().numpy()
        smoothed = gaussian_filter(probs, SMOOTH)  # as volume_to_mesh(smooth=SMOOTH) does
        if not (smoothed > 0.5).any():  # nothing inside, or a few voxels that the smoothing removes
            return Prediction(np.zeros((0, 3)), volume=probs, landmarks=own)
        # a frontal model (the alignment ablation) shows the face looking at the viewer: +z is forward
        forward = np.eye(3, 4) if self.net.config.target == "frontal" else sample["affine"]
        v, f = front_facing(*volume_to_mesh(smoothed, self.spec), forward)
        return Prediction(v, f, volume=probs, landmarks=own)


class FitMethod(Method):
    """The mean face (shape=False) or the linear fit, posed from the guiding landmarks."""

    def __init__(self, *, shape: bool):
        from .synthfaces.model import FaceModel

        self.name = "linear-fit" if shape else "mean-face"
        self.shape = shape
        self.model = FaceModel.default()

    def __call__(self, sample, landmarks):
        fit = fit_landmarks(landmarks[:, :2], model=self.model, shape=self.shape)
        own = fit.vertices[self.model.landmarks, :2]
        return Prediction(fit.vertices[self.model.face_region], self.model.region_faces, landmarks=own)


class VoxelisedTruth(Method):
    """The true solid voxelised and meshed as a network's output is (smoothed 0.5 iso-surface,
    front-facing part): what a perfect VRN of the dataset's size (or of ``spec``) would score."""

    def __init__(self, spec: VolumeSpec | None = None):
        self.spec = spec
        self.name = "voxelised-gt" if spec is None else f"voxelised-gt ({spec.width} px)"

    def __call__(self, sample, landmarks):
        from .reconstruct import front_facing
        from .surface import SMOOTH, volume_to_mesh

        spec = VolumeSpec(**sample["spec"])
        volume = true_volume(sample).astype(np.float32)
        v, f = front_facing(*volume_to_mesh(volume, spec, smooth=SMOOTH), sample["affine"])
        return Prediction(v, f, volume=volume)


def true_volume(sample: dict) -> np.ndarray:
    """(D, H, W) bool: the true solid of a test face (its slab, voxelised at the sample's spec)."""
    from .voxel import Slab, slab_to_volume

    slab = Slab(front=sample["front"], mask=sample["mask"], back=float(sample["back"]), affine=sample["affine"])
    return slab_to_volume(slab, VolumeSpec(**sample["spec"]))


BASELINES = {"mean-face": lambda: FitMethod(shape=False), "linear-fit": lambda: FitMethod(shape=True),
             "voxelised-gt": VoxelisedTruth}


def get_method(method) -> Method:
    """A Method from a name (a baseline, a shipped network), a .pt path, a model, or a Method."""
    from .pretrained import PRETRAINED

    if isinstance(method, Method):
        return method
    if isinstance(method, str) and method in BASELINES:
        return BASELINES[method]()
    if isinstance(method, torch.nn.Module) or str(method) in PRETRAINED or Path(str(method)).suffix == ".pt":
        return VRNMethod(method)
    raise ValueError(f"unknown method {method!r}: give one of {sorted(BASELINES) + sorted(PRETRAINED)} or the "
                     "path of a .pt checkpoint written by `vrnkit train`")


# ---------------------------------------------------------------------------------------------
# Test faces

def noisy_landmarks(landmarks, nme: float, rng) -> np.ndarray:
    """(68, 2|3) landmarks moved in x, y by Gaussian noise of mean distance ``nme`` x sqrt(w*h)
    of their box: a landmark detector's error (dlib's is about 0.045 on SynthFaces)."""
    from .augment import jitter_landmarks

    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))  # the noise follows rng
    lm = torch.as_tensor(np.asarray(landmarks, np.float64))[None]
    return jitter_landmarks(lm, nme, generator=generator)[0].numpy()


def faces_of(dataset, *, spec: VolumeSpec | None, n: int | None = None, indices=None):
    """An iterator of (sample, metadata) over the first ``n`` faces of a SynthFaces protocol
    (made at ``spec``, the paper's size if None) or ``n`` faces spread evenly over a folder of
    shards (which must hold ``spec``-sized crops when a spec is given). ``indices``: these faces
    instead (the first ``n`` of them), e.g. ``range(10, 2520, 22)`` walks synth-bu4dfe's grid
    through every expression. Samples are dicts of NumPy arrays in the shard format plus their
    ``spec`` (a dict). A bad test set is an error here, before any face is made."""
    from .datasets.shards import ShardDataset, read_manifest
    from .synthfaces.dataset import make_sample

    name = str(dataset)
    if name in PROTOCOLS and not Path(name).is_dir():
        spec = spec or VolumeSpec.preset("paper")
        picked = range(32 if n is None else n) if indices is None else list(indices)[:n]
        made = (make_sample(name, int(i), spec=spec) for i in picked)
        return ((dict(sample, spec=spec.__dict__), meta) for sample, meta in made)
    if not Path(name).is_dir():
        raise FileNotFoundError(f"no test set {name!r}: give a SynthFaces protocol ({', '.join(TEST_PROTOCOLS)}) or "
                                "a folder made by `vrnkit synth` / `vrnkit prepare`")
    manifest = read_manifest(name) or {}
    have = VolumeSpec(**manifest["spec"]) if manifest.get("spec") else None
    if spec is not None and have is not None and have.shape != spec.shape:
        raise ValueError(f"{name} holds {have.width} px crops with {have.depth}-slice volumes but the method takes "
                         f"{spec.width} px -> {spec.depth} slices; make a test set with the method's --preset "
                         "(vrnkit synth --preset ...)")
    spec = spec or have or VolumeSpec.preset("paper")
    ds = ShardDataset(name)
    if indices is None:
        picked = np.linspace(0, len(ds) - 1, len(ds) if n is None else min(n, len(ds))).astype(int)
    else:
        picked = [i for i in indices if 0 <= i < len(ds)][:n]

    def faces():
        for i in picked:
            sample = {k: np.asarray(v) for k, v in ds[int(i)].items()}
            yield dict(sample, spec=spec.__dict__), dict(ds.index.iloc[int(i)][["id", "expression", "yaw", "pitch", "roll"]])

    return faces()


# ---------------------------------------------------------------------------------------------
# The harness

def evaluate(method, dataset, *, n: int | None = None, indices=None, landmark_noise: float = 0.0,
             seed: int = SEED, progress: bool = True):
    """Score one method on one test set -> DataFrame, one row per face (see the module's doc).

    method: a name, a .pt path, a model or a :class:`Method` (:func:`get_method`). dataset: a
    SynthFaces protocol or a test folder. n: faces (None: all of a folder, 32 of a protocol);
    indices: which faces (see :func:`faces_of`).
    landmark_noise: the NME of the landmarks that guide the method (0: the true ones; dlib's
    error on SynthFaces is about 0.045); the same noise for every method on a face.
    NaN where the test set or the method lacks what a column needs (no mesh, no volume, no
    own landmarks); inf where the method returned no surface.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .metrics import landmark_error, landmarks_nme, nme_pair, volume_iou
    run = get_method(method)
    rows = []
    indices = None if indices is None else list(indices)[:n]  # once: it may be a generator
    faces = faces_of(dataset, spec=run.spec, n=n, indices=indices)
    total = (n if indices is None else len(indices)) if str(dataset) in PROTOCOLS else None
    desc = f"{run.name} on {Path(str(dataset)).name}"
    for k, (sample, meta) in enumerate(tqdm(faces, total=total, desc=desc, disable=not progress)):
        rng = np.random.default_rng([seed, k])  # the k-th face gets the same noise for every method
        true = np.asarray(sample["landmarks"], np.float64)
        guide = noisy_landmarks(true, landmark_noise, rng) if landmark_noise else true
        start = time.perf_counter()
        pred = run(sample, guide)
        seconds = time.perf_counter() - start
        row = dict(method=run.name, dataset=Path(str(dataset)).name, **meta, nme=np.nan, rigid_nme=np.nan,
                   landmark_error=np.nan, iou=np.nan, landmark_nme=np.nan, seconds=seconds)
        empty = pred is None or len(pred.vertices) == 0
        if "vertices" in sample:  # a ground-truth mesh (its face region)
            gt = sample["vertices"]
            row["nme"], row["rigid_nme"] = (np.inf, np.inf) if empty else \
                nme_pair(gt, pred.vertices, true, pred_faces=pred.faces)  # one ICP for both
        row["landmark_error"] = np.inf if empty else landmark_error(true, pred.vertices, pred_faces=pred.faces)
        if pred is not None and pred.volume is not None:
            row["iou"] = float(volume_iou(pred.volume, true_volume(sample)))
        if pred is not None and pred.landmarks is not None:
            row["landmark_nme"] = landmarks_nme(pred.landmarks, true)
        rows.append(row)
    return pd.DataFrame(rows)


def compare(methods, datasets, **options):
    """:func:`evaluate` every method on every test set -> one DataFrame (same faces, same noise)."""
    import pandas as pd

    return pd.concat([evaluate(m, d, **options) for d in datasets for m in methods], ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Tables and pictures

def table(scores, *, threshold: float = 0.1, column: str = "nme"):
    """Table 1's shape: per method (rows) and test set, the mean error of the faces it
    reconstructed, how many it failed (left out of the mean, counted in the AUC) and the AUC of
    the cumulative error curve up to ``threshold`` -> DataFrame."""
    import pandas as pd

    from .metrics import ced_auc

    out = {}
    for (method, dataset), g in scores.groupby(["method", "dataset"], sort=False):
        e = g[column]
        ok = np.isfinite(e)
        out.setdefault(method, {})[f"{dataset} {column.upper()}"] = e[ok].mean()
        out[method][f"{dataset} failed"] = int(np.isinf(e).sum())
        out[method][f"{dataset} AUC@{threshold}"] = ced_auc(e.dropna(), threshold)
    tab = pd.DataFrame(out).T
    failed = [c for c in tab.columns if c.endswith(" failed")]
    return tab.astype({c: int for c in failed})


def by_group(scores, by: str, *, column: str = "nme"):
    """Mean error of each method per group: ``by="yaw"`` (the paper's |yaw| bins) or
    ``"expression"`` -> DataFrame (methods x groups), failures left out of the means."""
    import pandas as pd

    s = scores[np.isfinite(scores[column])].copy()
    if by == "yaw":
        s["yaw"] = pd.cut(s.yaw.abs(), list(YAW_BINS), labels=[f"{a}-{b}" for a, b in zip(YAW_BINS, YAW_BINS[1:])],
                          include_lowest=True)
    return s.pivot_table(index="method", columns=by, values=column, aggfunc="mean", observed=False, sort=False,
                         dropna=False)


def plot_scores(scores, path, *, threshold: float = 0.1, column: str = "nme") -> None:
    """Three panels: cumulative error curves (all test sets), error against |yaw| and error per
    expression, as in the paper's Figures 4-6. Written atomically as a PNG."""
    from matplotlib.figure import Figure  # not pyplot: a notebook's backend is left alone

    from .files import atomic_write
    from .metrics import ced, ced_auc

    fig = Figure(figsize=(15, 4.2))
    ax = fig.subplots(1, 3)
    grid = np.linspace(0, threshold, 201)
    for method, g in scores.groupby("method", sort=False):
        e = g[column].dropna()
        ax[0].plot(grid, ced(e, grid) * 100, label=f"{method} (AUC {ced_auc(e, threshold):.2f})")
    yaw = by_group(scores, "yaw", column=column)
    for method, row in yaw.iterrows():
        ax[1].plot([15, 45, 75], row.to_numpy(), "o-", label=method)
    expr = by_group(scores, "expression", column=column)
    width = 0.8 / max(len(expr), 1)
    for k, (method, row) in enumerate(expr.iterrows()):
        ax[2].bar(np.arange(len(row)) + k * width, row.to_numpy(), width, label=method)
    ax[2].set_xticks(np.arange(expr.shape[1]) + 0.4 - width / 2, expr.columns, rotation=30, ha="right", fontsize=8)
    name = column.replace("_", " ").upper() if column == "nme" else column.replace("_", " ")
    ax[0].set(xlabel=name, ylabel="faces with a smaller error (%)", title="cumulative error", xlim=(0, threshold))
    ax[1].set(xlabel="|yaw| (degrees, bin centres)", ylabel=f"mean {name}", title="error against pose")
    ax[2].set(ylabel=f"mean {name}", title="error per expression")
    for a in ax:
        a.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))


def markdown(df, *, digits: int = 4) -> str:
    """A DataFrame as a Markdown table (numbers to ``digits`` places), without extra packages."""
    cell = lambda v: f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v)  # noqa: E731
    lines = ["| | " + " | ".join(map(str, df.columns)) + " |", "|---" * (len(df.columns) + 1) + "|"]
    lines += ["| " + str(i) + " | " + " | ".join(cell(v) for v in row) + " |"
              for i, row in zip(df.index, df.itertuples(index=False))]  # per row: ints stay ints
    return "\n".join(lines)


def report(scores, out, *, title: str = "Evaluation", command: str = "") -> dict:
    """Write ``scores.csv``, ``report.md`` (Table 1, NME by yaw and by expression, the other
    metrics) and ``report.png`` (:func:`plot_scores`) into ``out``, each atomically -> paths."""
    from .files import atomic_write

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = dict(csv=out / "scores.csv", md=out / "report.md", png=out / "report.png")
    atomic_write(paths["csv"], lambda tmp: scores.to_csv(tmp, index=False))
    plot_scores(scores, paths["png"])
    other = scores.groupby("method", sort=False)[["rigid_nme", "landmark_error", "iou", "landmark_nme", "seconds"]]
    md = [f"# {title}", ""] + ([f"`{command}`", ""] if command else []) + [
        "NME: the paper's (the ground truth's face-region vertices to their ICP correspondences on the "
        "predicted surface, depth aligned by mean z, over the 3D outer interocular distance). Failures (no "
        "surface) are counted apart and in the AUC, never in the mean.", "",
        "## Table 1", "", markdown(table(scores)), "",
        "## NME by |yaw|", "", markdown(by_group(scores, "yaw")), "",
        "## NME per expression", "", markdown(by_group(scores, "expression")), "",
        "## Other metrics (means over faces; NaN: the method or test set lacks it)", "",
        "rigid NME: after the ICP's rotation and translation too. landmark error: the 68 true 3D landmarks to the "
        "predicted surface over the interocular distance. IoU: of the method's volume with the true one. "
        "landmark NME: the method's own 2D landmarks over sqrt(w*h) of the true box. seconds: per face, this "
        "machine.", "", markdown(other.apply(lambda g: g.replace(np.inf, np.nan).mean())), "",
        "![cumulative error, error against pose and per expression](report.png)", ""]
    atomic_write(paths["md"], lambda tmp: Path(tmp).write_text("\n".join(md)))
    return paths
