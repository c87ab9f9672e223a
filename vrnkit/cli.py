"""The `vrnkit` command line: `vrnkit --help`, or `python -m vrnkit --help`.

Each sub-command lives next to the code it runs; this file only wires them together. Modules
register their commands through an ``add_cli(subparsers)`` function.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def fit_to_volume(vertices, spec, *, margin: float = 0.1):
    """Scale and move a mesh so it fits the crop (x, y) and sits in the middle of the depth."""
    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(0), v.max(0)
    size = np.array([spec.width, spec.height, spec.depth_span])
    s = ((1 - 2 * margin) * size / np.maximum(hi - lo, 1e-12)).min()
    return (v - (lo + hi) / 2) * s + size / 2


def cmd_voxelise(args) -> None:
    from .config import VolumeSpec
    from .files import atomic_write
    from .realdata import read_mesh
    from .surface import export_mesh, volume_to_mesh
    from .voxel import mesh_to_volume

    spec = VolumeSpec.preset(args.preset)
    # Files are in the y-up export frame (DESIGN.md) unless --image-space; the fit below
    # recentres the mesh, so the y offset of the flip does not matter.
    v, f = read_mesh(args.mesh, y_up=not args.image_space, image_height=0)
    if not args.no_fit:
        v = fit_to_volume(v, spec)
    vol = mesh_to_volume(v, f, spec, fill=args.fill)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.mesh).stem

    def save_volume(tmp):
        with open(tmp, "wb") as fh:  # a handle: np.save(path) would append ".npy" to the name
            np.save(fh, vol)

    atomic_write(out / f"{stem}_volume.npy", save_volume)
    mv, mf = volume_to_mesh(vol, spec)
    export_mesh(out / f"{stem}_recovered.obj", mv, mf)
    print(f"volume {vol.shape} with {int(vol.sum())} voxels inside -> {out / (stem + '_volume.npy')}")
    print(f"recovered mesh: {len(mv)} vertices, {len(mf)} faces -> {out / (stem + '_recovered.obj')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vrnkit",
        description="VRN, taught and reproduced: single-image 3D face reconstruction by volumetric regression.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    from . import demo, realdata, synth, train

    demo.add_cli(sub)
    synth.add_cli(sub)
    realdata.add_cli(sub)
    train.add_cli(sub)

    p = sub.add_parser("voxelise", help="voxelise a mesh file into a volume (.npy) and take its surface back")
    p.add_argument("mesh", help="mesh file (.obj, .ply, .stl, .glb), y-up unless --image-space")
    p.add_argument("--out", default="out/voxelise", help="output folder (default: out/voxelise)")
    p.add_argument("--preset", default="paper", choices=["paper", "quick"], help="volume size (default: paper, 200x192x192)")
    p.add_argument("--fill", default="even-odd", choices=["even-odd", "front"],
                   help="even-odd for closed meshes, front for open scans (front surface back to the volume's back)")
    p.add_argument("--no-fit", action="store_true", help="use the coordinates as crop coordinates instead of fitting the mesh to the volume")
    p.add_argument("--image-space", action="store_true", help="the file is already in image space (y down)")
    p.set_defaults(func=cmd_voxelise)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"vrnkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
