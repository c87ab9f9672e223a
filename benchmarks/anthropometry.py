"""SynthFaces against published adult facial anthropometry: 18 measurements, both sexes.

Measures 1,000 random neutral SynthFaces identities (vrnkit.synthfaces.anthropometry: the same
landmarks and straight-line distances as the 3D Facial Norms database) and prints, per measurement
and sex, the published mean and SD beside SynthFaces' mean and SD; the goal is every mean within
one published SD, and a spread close to the published one. Writes docs/results/anthropometry.md
and .csv.

Run: python benchmarks/anthropometry.py [--n 1000] [--out docs/results]
"""
import argparse
from pathlib import Path

from vrnkit.synthfaces.anthropometry import NORMS, SOURCE, compare, survey


def markdown(table, n: int) -> str:
    lines = [f"# SynthFaces against published adult anthropometry ({n} faces)", "",
             "Each row: a distance between two soft-tissue landmarks (mm), published mean ± SD beside "
             "SynthFaces' mean ± SD over random neutral identities of that sex (half male, half female). "
             "z: SynthFaces' mean minus the published one, in published SDs. Made by "
             "`python benchmarks/anthropometry.py`; landmarks as defined in `vrnkit/synthfaces/anthropometry.py`.",
             "", "| measurement | what | sex | published | SynthFaces | z | within 1 SD | SD ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.measurement} | {r.what} | {r.sex} | {r.published_mean:.1f} ± {r.published_sd:.1f} | "
                     f"{r.synth_mean:.1f} ± {r.synth_sd:.1f} | {r.z:+.2f} | {'yes' if r.within_1sd else '**no**'} | "
                     f"{r.synth_sd / r.published_sd:.2f} |")
    inside = int(table.within_1sd.sum())
    lines += ["", f"{inside} of {len(table)} rows within one published SD.", "", f"Source: {SOURCE}", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000, help="faces to measure (default 1000)")
    p.add_argument("--out", default="docs/results", help="folder for anthropometry.md and .csv")
    args = p.parse_args()
    faces = survey(args.n)
    table = compare(faces)
    print(f"{'measurement':12s} {'sex':6s} {'published':>14s} {'SynthFaces':>14s} {'z':>6s}  goal |z| <= 1")
    for r in table.itertuples():
        print(f"{r.measurement:12s} {r.sex:6s} {r.published_mean:7.1f} ± {r.published_sd:4.1f} "
              f"{r.synth_mean:7.1f} ± {r.synth_sd:4.1f} {r.z:+6.2f}  {'ok' if r.within_1sd else 'MISSED'}")
    inside = int(table.within_1sd.sum())
    print(f"{inside} of {len(table)} rows within one published SD (goal: all {2 * len(NORMS)}); "
          f"{len(faces)} faces, {int((faces.sex == 'male').sum())} male")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.round(3).to_csv(out / "anthropometry.csv", index=False)
    (out / "anthropometry.md").write_text(markdown(table, len(faces)))
    print(f"wrote {out / 'anthropometry.md'} and {out / 'anthropometry.csv'}")


if __name__ == "__main__":
    main()
