"""The `vrnkit` command line: `vrnkit --help`, or `python -m vrnkit --help`.

Every command's options are declared here and nowhere else; each command function only turns
its options into one call of the library (``vrnkit demo`` -> ``demo.run_demo``, ``vrnkit train``
-> ``train.train``, ...). Options that mean the same thing are spelled the same everywhere:
``--preset cpu|colab|paper``, ``--device``, ``--seed``, ``--no-progress``, ``--out``.
Multi-GPU training: ``torchrun --nproc_per_node=N -m vrnkit train ...``.

This file also decides how every command ends when something goes wrong (:func:`run_command`):
one line that names the problem and the fix, and a non-zero exit status; ``vrnkit --debug ...``
shows the traceback instead.
"""
from __future__ import annotations

import argparse
import errno
import functools
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


def cmd_voxelise(args) -> None:
    from .config import VolumeSpec
    from .files import atomic_write, check_out_folder, read_mesh
    from .surface import export_mesh, volume_to_mesh
    from .voxel import fit_to_volume, mesh_to_volume

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
    args.device = device_option(args.device)
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


PRESETS = ("cpu", "colab", "paper")  # one vocabulary: volume presets and model/training presets share it


def device_option(name):
    """--device: None (auto: CUDA if present) or a checked device name, so that a typo fails
    before any work with a message about the device, not the weights file."""
    if name in (None, "auto"):
        return None
    from .devices import check_device

    check_device(name)
    return name


def cmd_demo(args) -> None:
    from .demo import run_demo
    from .files import check_number, check_out_folder

    # Checked before the model loads, so that a typo fails at once and writes nothing.
    check_number(args.index, "--index", low=0, high=10**6, integer=True)
    check_out_folder(args.out)
    run_demo(args.out, model=args.model, index=args.index, device=device_option(args.device))


def cmd_synth(args) -> None:
    from .config import resolve_volume_spec
    from .synthfaces.dataset import generate

    out = args.out or f"data/{args.protocol}"
    df = generate(args.protocol, out, n=args.n, spec=resolve_volume_spec(args.preset), seed=args.seed,
                  shard_size=args.shard_size, workers=args.workers, force=args.force, progress=not args.no_progress,
                  sparse=args.vertices)
    print(f"{len(df)} samples of {args.protocol} in {out} (index: {Path(out) / 'index.csv'})")


def cmd_prepare(args) -> None:
    from .datasets.real import prepare

    subsets = args.subsets.split(",") if args.subsets else None
    prepare(args.dataset, args.root, args.out, model=args.model, preset=args.preset, split=args.split,
            shard_size=args.shard_size, workers=args.workers, subsets=subsets, limit=args.limit,
            y_up=args.y_up, progress=not args.no_progress, force=args.force)


def train_config_from_args(args):
    """`vrnkit train` options -> TrainConfig: the preset (default: from VRNKIT_MODE) with every
    option that was given overriding its field."""
    from .train import TrainConfig

    overrides = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    if "lr" in overrides:
        overrides["lr_final"] = overrides["lr"] / 10  # the paper's drop: 1e-4 -> 1e-5
    if args.no_progress:
        overrides["progress"] = False
    options = {k: v for k, v in (("heatmap_sigma", args.heatmap_sigma), ("target", args.target)) if v is not None}
    if options:
        overrides["model_options"] = options
    if args.preset:
        return TrainConfig.preset(args.preset, **overrides)
    return TrainConfig.for_mode(**overrides)


def cmd_train(args) -> None:
    import os

    from .train import train

    config = train_config_from_args(args)
    result = train(config)
    if int(os.environ.get("RANK", "0")) == 0:  # one line per run, not per process
        print(f"trained {config.model}/{config.model_preset} for {result['step']} steps -> {result['out'] / 'model.pt'}"
              + (f"; val IoU {result['val']['val_iou']:.4f}, NME~ {result['val']['val_nme']:.4f}" if result["val"] else ""))


def cmd_export(args) -> None:
    from .files import check_number
    from .pretrained import export

    check_number(args.n, "--n", low=1, high=10**6, integer=True)
    for d in args.eval:
        if not Path(d).is_dir():
            raise FileNotFoundError(f"no test folder {d}: make one with `vrnkit synth --protocol synth-aflw2000 "
                                    f"--out {d}`")
    export(args.run, args.name, eval_dirs=args.eval, n=args.n, half=args.half, progress=not args.no_progress)


def cmd_evaluate(args) -> None:
    from .evaluate import compare, faces_of, get_method, markdown, report, table
    from .files import check_number, check_out_folder

    check_number(args.n, "--n", low=1, high=10**6, integer=True)
    check_number(args.landmark_noise, "--landmark-noise", low=0, high=1)
    out = check_out_folder(args.out)
    methods = [get_method(m) for m in args.methods]  # unknown names and missing sets fail here, before any work
    for d in args.data:
        for m in methods:
            faces_of(d, spec=m.spec, n=1)
    scores = compare(methods, args.data, n=args.n, landmark_noise=args.landmark_noise, seed=args.seed,
                     progress=not args.no_progress)
    command = (f"vrnkit evaluate --methods {' '.join(map(str, args.methods))} --data {' '.join(args.data)} "
               f"--n {args.n} --landmark-noise {args.landmark_noise:g}")
    paths = report(scores, out, title="Evaluation", command=command)
    print(markdown(table(scores)))
    print(f"wrote {paths['md']}, {paths['csv'].name} and {paths['png'].name}")


def cmd_models(args) -> None:
    from .modelsize import PAPER_VRN_PARAMS, TABLE_COLUMNS, format_table, summary_table

    rows = summary_table()
    print(format_table(rows, TABLE_COLUMNS))
    paper = next(r for r in rows if r["preset"] == "paper" and r["kind"] == "vrn")
    print(f"\npaper preset VRN: {paper['params_M']:.1f}M parameters; the released VRN has about "
          f"{PAPER_VRN_PARAMS / 1e6:.0f}M")


def add_common(p, *, device=False, progress=False, seed=False) -> None:
    """The options every command that can use them spells the same way."""
    from .config import SEED

    if device:
        p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1... (default: cuda if available)")
    if seed:
        p.add_argument("--seed", type=int, default=SEED if seed == "default" else None,
                       help=f"random seed, 0 .. 2^32 - 1 (default {SEED})")
    if progress:
        p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    from .datasets.real import DATASETS, SUBSETS_300WLP
    from .datasets.real import __doc__ as prepare_doc
    from .models import KINDS
    from .synthfaces.dataset import PROTOCOLS

    parser = argparse.ArgumentParser(
        prog="vrnkit",
        description="VRN, taught and reproduced: single-image 3D face reconstruction by volumetric regression.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # No abbreviated options: `demo --mode` must not quietly mean `--model`.
    sub.add_parser = functools.partial(sub.add_parser, allow_abbrev=False)

    p = sub.add_parser("demo", help="the main job on the embedded default (no downloads): writes meshes and a picture")
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--model", default=None, help="vrn-guided-192 (default), vrn-192, vrn-cpu, or a .pt checkpoint")
    p.add_argument("--index", type=int, default=11, help="which held-out SynthFaces face, >= 0 (default 11: yaw +36)")
    add_common(p, device=True)
    p.set_defaults(func=cmd_demo)

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
    add_common(p, device=True, progress=True)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("synth", help="generate a SynthFaces dataset (shards + index.csv); resumable")
    p.add_argument("--protocol", default="synth-300wlp", choices=sorted(PROTOCOLS))
    p.add_argument("--out", default=None, help="output folder (default: data/<protocol>)")
    p.add_argument("--n", type=int, default=None, help="number of samples, >= 1 (default: the protocol's size)")
    p.add_argument("--preset", default=None, choices=PRESETS, help="volume size: cpu 64^3, colab and paper "
                   "200x192x192 (default: from VRNKIT_MODE: cpu when quick, paper when full)")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--shard-size", type=int, default=256, help="samples per shard (default 256)")
    p.add_argument("--force", action="store_true", help="replace a dataset that OUT already holds (deletes "
                   "its shards); without it a folder with another dataset is refused")
    p.add_argument("--vertices", action="store_true", help="also store each face's 591-vertex sparse mesh (7 kB a "
                   "sample): the target of direct vertex regression (train --model direct)")
    add_common(p, progress=True, seed="default")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("prepare", help="convert 300W-LP, AFLW2000-3D or your own (image, mesh) pairs to training shards",
                       description=prepare_doc.split(">>>")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=DATASETS, help="which reader")
    p.add_argument("--root", required=True, help="the dataset folder (e.g. .../300W_LP or .../AFLW2000)")
    p.add_argument("--out", required=True, help="output folder for shard-*.npz and index.csv")
    p.add_argument("--model", help="folder with the morphable model files (300wlp, aflw2000)")
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="volume size (default: from VRNKIT_MODE: paper when full, cpu when quick)")
    p.add_argument("--split", default=None, help="split column (default: train for 300wlp, test otherwise)")
    p.add_argument("--subsets", default=None, help=f"300W-LP subsets, comma separated (default: {','.join(SUBSETS_300WLP)})")
    p.add_argument("--shard-size", type=int, default=64, help="samples per shard (default 64)")
    p.add_argument("--workers", type=int, default=2, help="processes (default: 2)")
    p.add_argument("--limit", type=int, default=None, help="convert only the first N samples (N >= 1)")
    p.add_argument("--force", action="store_true", help="replace a dataset that OUT already holds (deletes "
                   "its shards); without it a folder with another dataset is refused")
    p.add_argument("--y-up", action="store_true", help="folder meshes have y up (y_image = height - y)")
    add_common(p, progress=True)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train a VRN model on a folder of shards; resumes from OUT/last.pt")
    p.add_argument("--model", default="vrn", choices=KINDS, help="network (default: vrn)")
    p.add_argument("--preset", choices=PRESETS,
                   help="model size and training defaults (default: cpu in quick mode, paper in full mode)")
    p.add_argument("--data", help="folder of training shards (default: the preset's)")
    p.add_argument("--val", help="folder of validation shards (default: the data folder's val split, else 256 "
                   "samples held out of it)")
    p.add_argument("--out", help="output folder; a run resumes from OUT/last.pt if it exists")
    p.add_argument("--epochs", type=int)
    p.add_argument("--steps", type=int, help="total optimiser steps (overrides --epochs)")
    p.add_argument("--time-limit", type=float, help="seconds of training; the run ends then (lr drop at 80%% of it)")
    p.add_argument("--batch-size", type=int, help="images per process per forward pass")
    p.add_argument("--accumulate", type=int, help="forward passes per optimiser step")
    p.add_argument("--lr", type=float, help="initial learning rate (dropped 10x after 80%% of the run)")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"])
    p.add_argument("--num-workers", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--init-from", help="start from the weights of this model.pt (same model and preset): fine-tune")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    p.add_argument("--guide-jitter", type=float, help="guided: landmark noise (NME) on the guiding heatmaps, "
                   "like a real detector's (about 0.045); default 0")
    p.add_argument("--heatmap-sigma", type=float, help="multitask, guided: Gaussian sigma of the landmark heatmaps "
                   "in heatmap pixels (default 1, the paper's; its ablation: 2)")
    p.add_argument("--target", choices=["aligned", "frontal"], help="aligned (default): volumes posed like the "
                   "face in the image; frontal: the frontal face (the paper's spatial-alignment ablation)")
    add_common(p, device=True, progress=True, seed=True)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="ship a training run as a model file with its curve and validation table")
    p.add_argument("run", help="training output folder (holds model.pt and metrics.csv)")
    p.add_argument("--name", default="vrn-cpu", help="the model's name: writes vrnkit/weights/NAME.pt (default vrn-cpu)")
    p.add_argument("--eval", nargs="*", default=[], help="test folders for the validation table")
    p.add_argument("--n", type=int, default=200, help="samples per test folder (default 200)")
    p.add_argument("--half", action="store_true", help="store the weights in float16 (half the size)")
    add_common(p, progress=True)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="score methods on test sets the paper's way: CSV, Markdown tables and "
                       "error curves")
    p.add_argument("--methods", nargs="+", default=["vrn-guided-192", "linear-fit", "mean-face"], metavar="METHOD",
                   help="shipped models (vrn-guided-192, vrn-192, vrn-cpu), .pt checkpoints, or the baselines "
                   "mean-face, linear-fit, voxelised-gt (default: vrn-guided-192 linear-fit mean-face)")
    p.add_argument("--data", nargs="+", default=["synth-aflw2000", "synth-florence", "synth-bu4dfe"], metavar="SET",
                   help="SynthFaces test protocols, or test folders from `vrnkit synth` / `vrnkit prepare` "
                   "(default: the three SynthFaces test protocols)")
    p.add_argument("--n", type=int, default=32, help="faces per test set (default 32)")
    p.add_argument("--landmark-noise", type=float, default=0.0, help="NME of the landmarks given to the methods "
                   "(0: the true ones; a real detector: about 0.045)")
    p.add_argument("--out", default="out/evaluate", help="output folder (default: out/evaluate)")
    add_common(p, progress=True, seed="default")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("models", help="the parameters and multiply-accumulates of every network preset")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("voxelise", help="voxelise a mesh file into a volume (.npy) and take its surface back")
    p.add_argument("mesh", help="mesh file (.obj, .ply, .stl, .glb), y-up unless --image-space")
    p.add_argument("--out", default="out/voxelise", help="output folder (default: out/voxelise)")
    p.add_argument("--preset", default="paper", choices=PRESETS, help="volume size (default: paper, 200x192x192)")
    p.add_argument("--fill", default="even-odd", choices=["even-odd", "front"],
                   help="even-odd for closed meshes, front for open scans (front surface back to the volume's back)")
    p.add_argument("--no-fit", action="store_true", help="use the coordinates as crop coordinates instead of fitting the mesh to the volume")
    p.add_argument("--image-space", action="store_true", help="the file is already in image space (y down)")
    p.set_defaults(func=cmd_voxelise)

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
