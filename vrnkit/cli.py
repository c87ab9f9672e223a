"""The `vrnkit` command line: `vrnkit --help`, or `python -m vrnkit --help`.

Each sub-command lives next to the code it runs; this file only wires them together. Modules
register their commands through an ``add_cli(subparsers)`` function. It also decides how every
command ends when something goes wrong (:func:`run_command`): one line that names the problem
and the fix, and a non-zero exit status; ``vrnkit --debug ...`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import errno
import gc
import sys
from pathlib import Path

import numpy as np

# Commands that continue where an interrupted run stopped (they skip finished shards / steps).
RESUMABLE = {"synth", "prepare", "train"}
# What an OSError means for the user, and what to do about it; {path} is the file involved.
OS_ERROR_FIXES = {
    errno.EACCES: "permission denied for {path}; choose a folder you can write to, or change its permissions",
    errno.EPERM: "permission denied for {path}; choose a folder you can write to, or change its permissions",
    errno.EROFS: "{path} is on a read-only file system; choose another folder",
    errno.ENOSPC: "the disk is full (writing {path}); free some space, then run the same command again",
    errno.EDQUOT: "your disk quota is used up (writing {path}); free some space, then run the same command again",
    errno.ENOTDIR: "{path}: a file is where a folder is expected; move the file or choose another path",
    errno.EEXIST: "{path} is a file where a folder is expected; move the file or choose another path",
    errno.EISDIR: "{path} is a folder where a file is expected; give a file",
    errno.ENOENT: "{path} does not exist; check the path",
    errno.ENAMETOOLONG: "the name {path} is too long for the file system; choose a shorter path",
}


def fit_to_volume(vertices, spec, *, margin: float = 0.1):
    """Scale and move a mesh so it fits the crop (x, y) and sits in the middle of the depth."""
    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(0), v.max(0)
    size = np.array([spec.width, spec.height, spec.depth_span])
    s = ((1 - 2 * margin) * size / np.maximum(hi - lo, 1e-12)).min()
    return (v - (lo + hi) / 2) * s + size / 2


def cmd_voxelise(args) -> None:
    from .config import VolumeSpec
    from .files import atomic_write, check_out_folder
    from .realdata import read_mesh
    from .surface import export_mesh, volume_to_mesh
    from .voxel import mesh_to_volume

    out = check_out_folder(args.out)
    spec = VolumeSpec.preset(args.preset)
    # Files are in the y-up export frame (see the README's conventions) unless --image-space; the fit below
    # recentres the mesh, so the y offset of the flip does not matter.
    v, f = read_mesh(args.mesh, y_up=not args.image_space, image_height=0)
    if not args.no_fit:
        v = fit_to_volume(v, spec)
    vol = mesh_to_volume(v, f, spec, fill=args.fill)
    if not vol.any():  # checked before writing anything: a failed run leaves no file behind
        where = (f"with --no-fit it must lie in crop coordinates x 0..{spec.width}, y 0..{spec.height}, z "
                 f"0..{spec.depth_span:g}; drop --no-fit to fit it" if args.no_fit else "is it flat or tiny?")
        raise ValueError(f"mesh {args.mesh} gives an empty {spec.depth}x{spec.height}x{spec.width} volume "
                         f"(no voxel centre inside it): {where}")
    mv, mf = volume_to_mesh(vol, spec)
    stem = Path(args.mesh).stem

    def save_volume(tmp):
        with open(tmp, "wb") as fh:  # a handle: np.save(path) would append ".npy" to the name
            np.save(fh, vol)

    atomic_write(out / f"{stem}_volume.npy", save_volume)
    export_mesh(out / f"{stem}_recovered.obj", mv, mf)
    print(f"volume {vol.shape} with {int(vol.sum())} voxels inside -> {out / (stem + '_volume.npy')}")
    print(f"recovered mesh: {len(mv)} vertices, {len(mf)} faces -> {out / (stem + '_recovered.obj')}")


PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


def list_photos(paths) -> list[Path]:
    """Files as given, and the photos (by suffix) inside folders, sorted; a missing path is an error."""
    photos = []
    for p in map(Path, paths):
        if p.is_dir():
            photos += sorted(q for q in p.rglob("*") if q.suffix.lower() in PHOTO_SUFFIXES and q.is_file())
        elif p.exists():
            photos.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist; give photo files or folders of photos")
    return photos


def cmd_reconstruct(args) -> int:
    """`vrnkit reconstruct PHOTO|DIR... -o OUT`: one mesh set per face; goes on past bad photos."""
    from tqdm.auto import tqdm

    from .files import check_number, check_out_folder
    from .photo import read_photo
    from .reconstruct import load_model, reconstruct

    check_number(args.smooth, "--smooth", low=0, high=20, optional=True)
    out = check_out_folder(args.out, "-o/--out")
    if args.device == "auto":
        args.device = None  # load_model's own default: cuda if available
    if args.device is not None:
        from .train import check_device

        check_device(args.device)  # else torch's message for a bad device blames the weights file
    photos = list_photos(args.photos)
    if not photos:
        raise ValueError(f"no photos ({', '.join(sorted(PHOTO_SUFFIXES))}) in {' '.join(args.photos)}; "
                         "give photo files or folders that hold photos")
    if args.landmarks and len(photos) != 1:
        raise ValueError("--landmarks belongs to one photo; give exactly one PHOTO with it")
    load_model(args.model, device=args.device)  # a bad --model or --landmarks fails once, before any photo
    landmarks = None
    if args.landmarks:
        from .detect import landmarks_from_file

        landmarks = landmarks_from_file(args.landmarks)  # read once, used for the one photo
    failed = []
    bar = tqdm(photos, desc="reconstruct", unit="photo", disable=args.no_progress or len(photos) == 1)
    for path in bar:
        try:
            image = read_photo(path)
            recs = reconstruct(image, landmarks=landmarks, model=args.model, device=args.device,
                               all_faces=args.all_faces, detector=args.detector,
                               **({} if args.smooth is None else {"smooth": args.smooth}))
        except (ValueError, OSError) as e:
            msg = describe_error(e).replace("no face found by", f"no face found in {path} by")
            failed.append((path, msg))
            bar.write(f"vrnkit reconstruct: {path}: {msg}" if str(path) not in msg else f"vrnkit reconstruct: {msg}",
                      file=sys.stderr)
            continue
        recs = recs if isinstance(recs, list) else [recs]
        for k, rec in enumerate(recs):
            stem = out / (path.stem if len(recs) == 1 else f"{path.stem}_face{k + 1}")
            paths = rec.save(stem, volume=args.volume, photo=image)
            more = (f"; {rec.faces_found} faces found, reconstructed the largest (--all-faces for all)"
                    if rec.faces_found > 1 and not args.all_faces else "")
            bar.write(f"{path}: {len(rec.vertices)} vertices ({rec.source} landmarks) -> "
                      f"{', '.join(str(p) for p in paths.values())}{more}")
    if failed:
        print(f"vrnkit reconstruct: {len(failed)} of {len(photos)} photos failed: "
              + ", ".join(str(p) for p, _ in failed), file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vrnkit",
        description="VRN, taught and reproduced: single-image 3D face reconstruction by volumetric regression.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
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

    p = sub.add_parser("reconstruct", help="reconstruct the faces in photos as coloured meshes (OBJ, PLY, GLB, PNG)")
    p.add_argument("photos", nargs="+", metavar="PHOTO|DIR", help="photo files, or folders of photos")
    p.add_argument("-o", "--out", default="out/reconstruct", help="output folder (default: out/reconstruct)")
    p.add_argument("--landmarks", help="68 landmarks of the face (.npy, .txt or iBUG .pts) instead of detection")
    p.add_argument("--model", default=None, help="vrn-guided-192 (default), vrn-192, vrn-cpu, or a .pt checkpoint")
    p.add_argument("--detector", default="auto", choices=["auto", "hog", "cnn"],
                   help="auto: dlib HOG, then its CNN detector where HOG finds no face (profiles)")
    p.add_argument("--all-faces", action="store_true", help="every face in each photo, not only the largest")
    p.add_argument("--volume", action="store_true", help="also write the soft volume (STEM_volume.npy, float16)")
    p.add_argument("--smooth", type=float, default=None, help="Gaussian sigma in voxels before the iso-surface "
                   "(default 1.5; 0: none)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_reconstruct)
    for p in sub.choices.values():  # `vrnkit train --debug` works as well as `vrnkit --debug train`
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error")
    return parser


def describe_error(e: BaseException) -> str:
    """One line for an error the user can fix: vrnkit's own message, or what an OSError means."""
    if isinstance(e, OSError) and e.errno in OS_ERROR_FIXES and e.filename is not None:
        return OS_ERROR_FIXES[e.errno].format(path=e.filename) + (f" ({e.strerror})" if e.strerror else "")
    if is_out_of_memory(e):
        text = (str(e).strip().splitlines() or ["not enough memory"])[0]
        if "smaller" in text:  # already explained (train.explain_out_of_memory)
            return text
        return (f"out of memory ({text[:200]}); use a smaller --batch-size, --preset or --n, fewer --workers, "
                "or close other programs")
    lines = str(e).strip().splitlines() or [type(e).__name__]
    return " ".join(line.strip() for line in lines)  # one line, even for a message with several


def is_out_of_memory(e: BaseException) -> bool:
    """CUDA's OutOfMemoryError, and the RuntimeError that PyTorch's CPU allocator raises."""
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


def run_command(func, args, *, name: str, resumable: bool = False) -> int:
    """Run a command's function -> exit status; errors the user can fix end in one line.

    Bad input (ValueError), files (OSError), a missing extra (ImportError), out of memory and
    Ctrl-C print one line that names the problem and the fix, and return 2 (130 for Ctrl-C);
    ``args.debug`` re-raises them with their traceback. Any other exception is a bug in vrnkit
    and keeps its traceback.
    """
    debug = getattr(args, "debug", False)
    try:
        rc = func(args)
        return rc if isinstance(rc, int) else 0
    except KeyboardInterrupt:
        if debug:
            raise
        status, message = 130, "interrupted" + ("; run the same command again to resume" if resumable else "")
    except (ValueError, OSError, ImportError, MemoryError, RuntimeError) as e:
        if debug or (isinstance(e, RuntimeError) and not is_out_of_memory(e)):
            raise
        status, message = 2, f"error: {describe_error(e)}"
    # Printed once the failed command's frames are gone (gc.collect frees the ones in cycles):
    # their progress bars have closed by then, so the message stays the last line.
    gc.collect()
    print(f"{name}: {message}", file=sys.stderr)
    return status


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error that argparse has printed: its status
        return e.code if isinstance(e.code, int) else 2
    return run_command(args.func, args, name=f"vrnkit {args.command}", resumable=args.command in RESUMABLE)


if __name__ == "__main__":
    sys.exit(main())
