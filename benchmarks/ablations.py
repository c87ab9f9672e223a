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
    rigid = table(scores, column="rigid_nme")
    md = ["# Ablations on SynthFaces (cpu preset: 64 px crops, 64-slice volumes)", "",
          f"`python benchmarks/ablations.py --steps {args.steps} --n {args.n}` ({time.perf_counter() - t:.0f} s "
          f"on this machine's 2 CPU cores). Every variant trained for {args.steps} steps of 8 images on the same "
          "8,000 synth-300wlp faces (one command each, below), then scored on the first "
          f"{args.n} faces of each SynthFaces test protocol with the true landmarks. "
          "`voxelised-gt (64 px)`: the true solid at this size, meshed as a network's output is (the floor).", "",
          "## Table 1 shape (NME)", "", markdown(table(scores)), "",
          "## Rigid NME (after ICP's rotation and translation: the only fair score for vrn-frontal)", "",
          markdown(rigid), "",
          "## NME by |yaw|", "", markdown(by_group(scores, "yaw")), "",
          "## NME per expression", "", markdown(by_group(scores, "expression")), "",
          "## IoU and the models' own landmarks", "",
          markdown(scores.groupby("method", sort=False)[["iou", "landmark_nme"]].mean()), "",
          "![error curves, error against yaw and per expression (vrn-frontal left out: not aligned)](ablations.png)",
          "", "## The commands", ""]
    md += [f"* {name}: `{' '.join(['python'] + c[1:]).replace(str(ROOT) + '/', '')}`" for name, c in commands.items()]
    (args.out / "ablations.md").write_text("\n".join(md) + "\n")
    print(table(scores).round(4).to_string())
    print("\nrigid NME:\n" + rigid.round(4).to_string())
    print(f"\n{time.perf_counter() - t:.0f} s; wrote {args.out / 'ablations.md'}")


if __name__ == "__main__":
    main()
