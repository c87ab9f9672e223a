"""The paper's Table 1 on SynthFaces: every shipped model, the landmark baselines and the metric's floor.

    python benchmarks/table1.py [--n 24] [--noise 0.045]

Three held-out SynthFaces test protocols stand in for AFLW2000-3D, Florence and BU-4DFE. Each
method meets the same faces (vrnkit.evaluate.compare): the guided model and the landmark fits
are given the true 68 landmarks, then landmarks with a detector's error (``--noise``, NME; dlib's
on SynthFaces is about 0.045). ``voxelised-gt`` is the true solid meshed as a network's output
is: what a perfect 192 px VRN would score. Writes docs/results/table1.md, table1.csv and
table1.png (error curves, error against yaw and per expression, detector-error landmarks), and
prints the tables beside the paper's numbers (real data: a reference, not a goal).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from vrnkit.evaluate import PAPER_TABLE1, TEST_PROTOCOLS, by_group, compare, markdown, plot_scores, table  # noqa: E402
from vrnkit.synthfaces.dataset import GENERATOR_VERSION  # noqa: E402

METHODS = ("vrn-guided-192", "vrn-192", "vrn-cpu", "linear-fit", "mean-face", "voxelised-gt")
LANDMARK_FREE = ("vrn-192", "vrn-cpu", "voxelised-gt")  # they never see the landmarks: one run is enough


def depth_clipping(n: int) -> pd.DataFrame:
    """Per |yaw| bin: the share of the test faces' face-region vertices outside the paper
    volume's depth span (200 slices at 2 per pixel: 100 px), which no 192 px VRN can reach."""
    import numpy as np

    from vrnkit.config import VolumeSpec
    from vrnkit.evaluate import YAW_BINS
    from vrnkit.synthfaces.dataset import make_sample

    spec = VolumeSpec.preset("paper")
    rows = []
    for protocol in TEST_PROTOCOLS:
        for i in range(n):
            sample, meta = make_sample(protocol, i, spec=spec)
            z = sample["vertices"][:, 2]
            rows.append(dict(yaw=abs(meta["yaw"]), outside=float(np.mean((z < 0) | (z > spec.depth_span)))))
    df = pd.DataFrame(rows)
    df["|yaw|"] = pd.cut(df.yaw, list(YAW_BINS), include_lowest=True,
                         labels=[f"{a}-{b}" for a, b in zip(YAW_BINS, YAW_BINS[1:])])
    return df.groupby("|yaw|", observed=False).outside.agg(["mean", "max"]).T.rename(
        index={"mean": "mean share outside", "max": "largest share outside"})


def findings(exact: pd.DataFrame, noisy: pd.DataFrame, clipping: pd.DataFrame) -> list[str]:
    """What the tables show, in words, with this run's numbers."""
    import numpy as np

    mean = lambda s: s[np.isfinite(s.nme)].groupby("method").nme.mean()  # noqa: E731  (all three test sets)
    e, n = mean(exact), mean(noisy)
    order = " < ".join(f"{m} {v:.3f}" for m, v in n.sort_values().items())
    floor = exact[exact.method == "voxelised-gt"]
    yaw = floor.assign(bin=pd.cut(floor.yaw.abs(), [0, 30, 60, 90], include_lowest=True)).groupby(
        "bin", observed=False).nme.mean()
    return [
        "## What it shows", "",
        f"* Mean NME over the three test sets, detector-error landmarks: {order}.",
        f"* Among the networks the paper's ordering holds: VRN-Guided ({n['vrn-guided-192']:.3f}) beats VRN "
        f"({n['vrn-192']:.3f}), with a detector's landmarks as with the true ones ({e['vrn-guided-192']:.3f}).",
        f"* The rest does not. The landmark fit ({n['linear-fit']:.3f}) and even the mean face ({n['mean-face']:.3f}) "
        "beat every network, where the paper has EOS and 3DDFA well behind VRN. Three reasons, each measured here:",
        f"  1. The floor. The true solid itself, voxelised and meshed like a network's output (`voxelised-gt`), scores "
        f"{e['voxelised-gt']:.3f}, no better than the mean face ({e['mean-face']:.3f}): the volume pipeline's own error "
        "(voxels, the smoothing before the iso-surface, the depth span below) is larger than SynthFaces' differences "
        "from their mean face, so on this data even a perfect 192 px VRN would not beat the mean face. The "
        f"192 px networks score {e['vrn-guided-192'] / e['voxelised-gt']:.1f} (guided) and "
        f"{e['vrn-192'] / e['voxelised-gt']:.1f} (VRN) times the floor; that excess is their own: they trained for "
        "7 GPU-minutes, on the SynthFaces of generator version 1, and these test faces are of version "
        f"{GENERATOR_VERSION} (stronger expressions, a new appearance, and jaw landmarks placed as the iBUG-68 markup "
        "places them, 10 mm higher at the ears: new guidance for the guided one), a shift they never saw.",
        f"  2. Depth. The floor grows with |yaw| ({yaw.iloc[0]:.3f} / {yaw.iloc[1]:.3f} / {yaw.iloc[2]:.3f} in the "
        "0-30 / 30-60 / 60-90 bins) because the paper's volume spans 100 px of depth (200 slices at two per pixel) "
        "and the face region does not fit: on average "
        + " / ".join(f"{v * 100:.1f} %" for v in clipping.loc["mean share outside"])
        + " of its vertices lie outside that span (up to "
        + f"{clipping.loc['largest share outside'].max() * 100:.0f} % of one face), mostly behind the back of the volume.",
        "  3. The baselines are oracles here: the fits use the very face model that made the test faces, and the "
        "mean face is posed from exact (or slightly noisy) landmarks. On real faces (model mismatch, real "
        "detectors) the paper measured EOS at 0.097-0.156.",
        "* So the synthetic Table 1 reproduces the paper's ordering of the VRN variants, not its ordering against "
        "model fitting. Multitask is not among the shipped models; benchmarks/ablations.py compares it, the "
        "guidance sigma and the spatial alignment at the cpu preset (docs/results/ablations.md).", ""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=24, help="faces per protocol")
    p.add_argument("--noise", type=float, default=0.045, help="landmark NME of the second run")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    exact = compare(METHODS, TEST_PROTOCOLS, n=args.n)
    guided = [m for m in METHODS if m not in LANDMARK_FREE]
    noisy = pd.concat([compare(guided, TEST_PROTOCOLS, n=args.n, landmark_noise=args.noise),
                       exact[exact.method.isin(LANDMARK_FREE)]], ignore_index=True)
    scores = pd.concat([exact.assign(landmarks="true"), noisy.assign(landmarks=f"noise {args.noise:g}")])
    scores.to_csv(args.out / "table1.csv", index=False)
    plot_scores(noisy, args.out / "table1.png")
    md = ["# Table 1 on SynthFaces", "",
          f"`python benchmarks/table1.py --n {args.n} --noise {args.noise}` ({time.perf_counter() - t:.0f} s on "
          f"this machine's 2 CPU cores): the first {args.n} faces of each held-out SynthFaces protocol, paper-size "
          "renders (vrn-cpu sees the same faces at 64 px). NME: the paper's (the ground truth's face-region "
          "vertices to their ICP correspondences on the predicted surface, depth aligned over the corresponding "
          "points, over the 3D outer interocular distance). Failures (no surface) are counted apart and in the "
          "AUC. `voxelised-gt` is the true solid voxelised at 200x192x192 and meshed as a network's output is: "
          "the best a 192 px VRN can score.", ""]
    for name, s in (("true landmarks", exact), (f"landmarks with a detector's error (NME {args.noise:g})", noisy)):
        md += [f"## Given {name}", "", markdown(table(s)), ""]
    md += ["## NME by |yaw| (detector-error landmarks)", "", markdown(by_group(noisy, "yaw")), "",
           "## NME per expression (detector-error landmarks)", "", markdown(by_group(noisy, "expression")), ""]
    clipping = depth_clipping(args.n)
    md += findings(exact, noisy, clipping)
    md += ["## Face-region vertices outside the paper volume's depth span, by |yaw|", "",
           markdown(clipping.astype(float)), ""]
    ref = pd.DataFrame(PAPER_TABLE1, index=["AFLW2000-3D", "BU-4DFE", "Florence"]).T
    md += ["## The paper's Table 1 (real data, for reference)", "", markdown(ref), "",
           "![error curves, error against yaw and per expression](table1.png)", ""]
    (args.out / "table1.md").write_text("\n".join(md))
    for name, s in (("true landmarks", exact), (f"landmark noise {args.noise:g}", noisy)):
        print(f"\n{name}:")
        print(table(s).round(4).to_string())
    print("\nreference, the paper on real data (AFLW2000-3D / BU-4DFE / Florence):")
    print(ref.to_string())
    print(f"\n{time.perf_counter() - t:.0f} s; wrote {args.out / 'table1.md'}")


if __name__ == "__main__":
    main()
