"""The `vrnkit` command line: `vrnkit --help`, or `python -m vrnkit --help`.

Each sub-command lives next to the code it runs; this file only wires them together. Modules
register their commands through an ``add_cli(subparsers)`` function.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def load_mesh_file(path, *, y_up: bool = True):
    """Read a mesh file (.obj, .ply, .glb, .stl, ...) -> (vertices (N, 3) float64, faces (M, 3)).

    Files are taken to be in the y-up export frame (DESIGN.md) and turned into image space
    (y down); pass ``y_up=False`` for files already in image space.
    """
    import trimesh

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"mesh file {path} does not exist")
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as e:  # trimesh raises many kinds for unreadable files
        raise ValueError(f"could not read mesh {path} ({type(e).__name__}: {e}); expected an .obj, .ply, .stl or .glb mesh") from e
    v = np.asarray(mesh.vertices, np.float64)
    f = np.asarray(mesh.faces)
    if len(f) == 0:
        raise ValueError(f"mesh {path} has no faces; expected a triangle mesh")
    if y_up:
        v = v * [1, -1, 1]
        f = f[:, ::-1]  # mirroring y flips the winding; keep normals pointing out
    return v, f


def fit_to_volume(vertices, spec, *, margin: float = 0.1):
    """Scale and move a mesh so it fits the crop (x, y) and sits in the middle of the depth."""
    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(0), v.max(0)
    size = np.array([spec.width, spec.height, spec.depth_span])
    s = ((1 - 2 * margin) * size / np.maximum(hi - lo, 1e-12)).min()
    return (v - (lo + hi) / 2) * s + size / 2


def cmd_voxelise(args) -> None:
    from .config import VolumeSpec
    from .surface import export_mesh, volume_to_mesh
    from .voxel import mesh_to_volume

    spec = VolumeSpec.preset(args.preset)
    v, f = load_mesh_file(args.mesh, y_up=not args.image_space)
    if not args.no_fit:
        v = fit_to_volume(v, spec)
    vol = mesh_to_volume(v, f, spec, fill=args.fill)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.mesh).stem
    from .shards import atomic_write

    atomic_write(out / f"{stem}_volume.npy", lambda tmp: np.save(open(tmp, "wb"), vol))
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
