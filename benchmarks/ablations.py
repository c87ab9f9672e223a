"""The paper's ablations on SynthFaces at the cpu preset: the variants trained with equal budgets.

    python benchmarks/ablations.py [--steps 2500] [--n 24]

Makes the training set if missing (``vrnkit synth --protocol synth-300wlp --preset cpu --n 8000
--out data/synth-300wlp-quick``), then trains each variant for the same number of steps (the same
faces seen: 2,500 steps of 8 = 2.5 epochs; the guided model's second network makes its steps
slower) with one command each (printed; a killed run resumes; a finished one is kept):

    vrn          python -m vrnkit train --model vrn --preset cpu ...
    vrn-frontal  ... --model vrn --target frontal      (volumes not aligned with the image)
    multitask    ... --model multitask
    guided-s1    ... --model guided                    (heatmap sigma 1, the paper's)
    guided-s2    ... --model guided --heatmap-sigma 2
    direct       ... --model direct                    (vertices by L2, not a volume; the same faces
                                                        made with their sparse meshes: synth --vertices)

and scores them, with the landmark baselines and the metric's floor at 64 px, on the first
``--n`` faces of the three SynthFaces test protocols (vrnkit.evaluate.compare). Writes
docs/results/ablations.md, ablations.csv and ablations.png, and prints the tables.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from vrnkit.config import VolumeSpec  # noqa: E402
from vrnkit.evaluate import (TEST_PROTOCOLS, VoxelisedTruth, by_group, compare, markdown,  # noqa: E402
                             plot_scores, table)

DATA = "data/synth-300wlp-quick"
DATA_VERTICES = "data/synth-300wlp-quick-vertices"  # the same 8,000 faces, with their sparse meshes
VARIANTS = {  # name: `vrnkit train` options beyond the common ones
    "vrn": ["--model", "vrn"],
    "vrn-frontal": ["--model", "vrn", "--target", "frontal"],
    "multitask": ["--model", "multitask"],
    "guided-s1": ["--model", "guided"],
    "guided-s2": ["--model", "guided", "--heatmap-sigma", "2"],
    "direct": ["--model", "direct"],
}


def findings(scores: pd.DataFrame) -> list[str]:
    """The paper's ordering, checked against this run's numbers, in words."""
    import numpy as np

    s = scores.replace(np.inf, np.nan)
    nme, rigid = s.groupby("method").nme.mean(), s.groupby("method").rigid_nme.mean()
    say = lambda ok: "yes" if ok else "no"  # noqa: E731
    floor = "voxelised-gt (64 px)"
    return [
        "## The paper's ordering, checked", "",
        "Mean over the three test sets (NME; rigid NME where alignment is the question).", "",
        f"* VRN-Guided best of the networks: {say(nme['guided-s1'] <= nme[['vrn', 'multitask', 'direct']].min())} "
        f"(guided {nme['guided-s1']:.4f}, VRN {nme['vrn']:.4f}, Multitask {nme['multitask']:.4f}, direct "
        f"{nme['direct']:.4f}).",
        f"* Multitask not better than VRN: {say(nme['multitask'] >= nme['vrn'] - 0.002)} "
        f"({nme['multitask']:.4f} against {nme['vrn']:.4f}).",
        f"* Guidance sigma 1 against 2: {nme['guided-s1']:.4f} against {nme['guided-s2']:.4f} "
        f"({'sigma 1 better' if nme['guided-s1'] < nme['guided-s2'] else 'sigma 2 better or equal'}; the paper "
        "found them close).",
        f"* Direct vertex regression worse than VRN: {say(nme['direct'] > nme['vrn'])} by the NME ({nme['direct']:.4f} "
        f"against {nme['vrn']:.4f}): it places the face badly. Its rigid NME is "
        f"{'better' if rigid['direct'] < rigid['vrn'] else 'worse'} ({rigid['direct']:.4f} against {rigid['vrn']:.4f}): "
        f"once moved into place its shape is close to an average face (the mean face scores {rigid['mean-face']:.4f} "
        "there), which an L2 loss on vertices learns first; the meshes below show how little of each face it follows.",
        f"* Unaligned (frontal) volumes much worse than aligned ones, compared after a rigid alignment: "
        f"{say(rigid['vrn-frontal'] > 1.2 * rigid['vrn'])} (rigid NME {rigid['vrn-frontal']:.4f} against "
        f"{rigid['vrn']:.4f}; without the alignment {nme['vrn-frontal']:.4f}, which measures the pose it ignores). "
        "After a rigid alignment, a frontal volume only has to get the shape right, not the pose; on SynthFaces, "
        "whose shapes vary little, that is the easier task. The paper's finding is about real, varied faces and "
        "full training; this short synthetic run does not reproduce it.",
        f"* The floor at this size (the truth itself, voxelised at 64^3): {nme[floor]:.4f}; the mean face posed from "
        f"the landmarks: {nme['mean-face']:.4f}. At the cpu preset the volume's own error is as large as the faces' "
        "differences from their mean, so these short runs compare the variants with each other, not with the fits.",
        ""]


def draw_meshes(methods: dict, path: Path, *, indices=(2, 5, 11, 17)) -> None:
    """Each variant's mesh for a few synth-aflw2000 faces, beside the input and the truth, all at
    one scale and turned part of the way toward the camera: what the numbers mean, to look at."""
    import numpy as np
    from matplotlib.figure import Figure

    from vrnkit import meshviz
    from vrnkit.evaluate import faces_of, get_method
    from vrnkit.synthfaces.model import FaceModel

    runs = {name: get_method(m) for name, m in methods.items()}
    spec = VolumeSpec.preset("cpu")
    fig = Figure(figsize=(1.6 * (len(runs) + 2), 1.7 * len(indices)))
    axes = fig.subplots(len(indices), len(runs) + 2)
    for row, index in zip(axes, indices):
        face, meta = list(faces_of("synth-aflw2000", spec=spec, n=index + 1))[-1]
        truth = face["vertices"]
        view = dict(yaw=0.6 * meta["yaw"], centre=(truth.min(0) + truth.max(0)) / 2,
                    extent=1.3 * np.ptp(truth[:, :2], 0).max(), size=160)
        row[0].imshow(face["image"])
        row[0].set_title(f"yaw {meta['yaw']:+.0f}", fontsize=8)
        for ax, (name, run) in zip(row[1:], runs.items()):
            pred = run(face, face["landmarks"])
            ax.imshow(meshviz.render_mesh(pred.vertices, pred.faces, **view))
            ax.set_title(name, fontsize=8)
        row[-1].imshow(meshviz.render_mesh(truth, FaceModel.default().region_faces, **view))
        row[-1].set_title("truth", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2500, help="training steps of each variant (batch 8)")
    p.add_argument("--n", type=int, default=24, help="test faces per protocol")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "ablations")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = p.parse_args()
    t = time.perf_counter()
    py = sys.executable
    for folder, extra in ((DATA, []), (DATA_VERTICES, ["--vertices"])):
        run([py, "-m", "vrnkit", "synth", "--protocol", "synth-300wlp", "--preset", "cpu", "--n", "8000", *extra,
             "--out", folder, "--no-progress"])
    commands = {}
    for name, options in VARIANTS.items():
        out = args.runs / name
        data = DATA_VERTICES if name == "direct" else DATA
        commands[name] = [py, "-m", "vrnkit", "train", *options, "--preset", "cpu", "--data", data, "--out", str(out),
                          "--steps", str(args.steps), "--no-progress"]
        if not (out / "model.pt").exists():
            run(commands[name])
    spec = VolumeSpec.preset("cpu")
    methods = [str(args.runs / name / "model.pt") for name in VARIANTS]
    scores = compare(methods + ["linear-fit", "mean-face", VoxelisedTruth(spec)], TEST_PROTOCOLS, n=args.n)
    names = {str(args.runs / name / "model.pt"): name for name in VARIANTS}
    scores["method"] = scores["method"].replace(names)
    args.out.mkdir(parents=True, exist_ok=True)
    scores.to_csv(args.out / "ablations.csv", index=False)
    plot_scores(scores[scores.method != "vrn-frontal"], args.out / "ablations.png")
    draw_meshes({name: str(args.runs / name / "model.pt") for name in VARIANTS}, args.out / "ablations_meshes.png")
    rigid = table(scores, column="rigid_nme")
    md = ["# Ablations on SynthFaces (cpu preset: 64 px crops, 64-slice volumes)", "",
          f"`python benchmarks/ablations.py --steps {args.steps} --n {args.n}` ({time.perf_counter() - t:.0f} s "
          f"on this machine's 2 CPU cores). Every variant trained for {args.steps} steps of 8 images on the same "
          "8,000 synth-300wlp faces (one command each, below), then scored on the first "
          f"{args.n} faces of each SynthFaces test protocol with the true landmarks. "
          "`voxelised-gt (64 px)`: the true solid at this size, meshed as a network's output is (the floor).", "",
          *findings(scores),
          "## Table 1 shape (NME)", "", markdown(table(scores)), "",
          "## Rigid NME (after ICP's rotation and translation: the only fair score for vrn-frontal)", "",
          markdown(rigid), "",
          "## NME by |yaw|", "", markdown(by_group(scores, "yaw")), "",
          "## NME per expression", "", markdown(by_group(scores, "expression")), "",
          "## IoU and the models' own landmarks", "",
          markdown(scores.groupby("method", sort=False)[["iou", "landmark_nme"]].mean()), "",
          "![error curves, error against yaw and per expression (vrn-frontal left out: not aligned)](ablations.png)",
          "", "## The meshes", "",
          "Four synth-aflw2000 faces, each variant's mesh and the truth, at one scale, turned part of the way "
          "toward the camera (vrn-frontal's is frontal by design, so it shows turned away):", "",
          "![each variant's mesh for four faces](ablations_meshes.png)",
          "", "## The commands", ""]
    md += [f"* {name}: `{' '.join(['python'] + c[1:]).replace(str(ROOT) + '/', '')}`" for name, c in commands.items()]
    (args.out / "ablations.md").write_text("\n".join(md) + "\n")
    print(table(scores).round(4).to_string())
    print("\nrigid NME:\n" + rigid.round(4).to_string())
    print(f"\n{time.perf_counter() - t:.0f} s; wrote {args.out / 'ablations.md'}")


if __name__ == "__main__":
    main()
