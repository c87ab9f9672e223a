"""Real data to shards: 300W-LP (training), AFLW2000-3D (testing) and your own (image, mesh) pairs.

Every reader ends in the sample format of :mod:`vrnkit.datasets.shards`, the same as SynthFaces':

* 300W-LP: ``ROOT/<subset>/<name>.jpg`` + ``<name>.mat`` (Pose_Para 1x7 = [pitch, yaw, roll,
  tx, ty, tz, scale], Shape_Para 199x1, Exp_Para 29x1), subsets AFW, HELEN, IBUG, LFPW (and
  their ``_Flip`` copies, left out by default: training flips faces itself), plus
  ``ROOT/landmarks/<subset>/<name>_pts.mat`` (pts_2d, pts_3d: 68x2) when present.
* AFLW2000-3D: ``ROOT/imageNNNNN.jpg`` (450x450) + ``.mat`` (pt3d_68 3x68, Pose_Para,
  Shape_Para, Exp_Para). Test samples also store ``vertices``: the face region in the crop.
* folder: ``ROOT/<stem>.jpg|.jpeg|.png`` + ``<stem>.obj|.ply`` + optional ``<stem>.txt|.npy``
  (68x2 or 68x3 landmarks). Meshes and landmarks are in the image's pixels, vrnkit's image space:
  x right, y down, z toward the viewer in pixels too, pixel (i, j) covering [i, i+1) x [j, j+1).
  ``y_up=True`` reads y-up files instead (y_image = image height - y).

How a fitted face becomes a sample (:func:`face_to_sample`): the mesh is rebuilt from its
parameters (:mod:`vrnkit.datasets.morphable`), posed as 3DDFA poses it, cropped as the paper crops
(``CropFrame.from_landmarks``), and its target is the slab of the frontal mesh
(``voxel.slab_from_model``) carried into the crop. Your own scans have no frontal frame: their
slab's canonical frame is the crop itself (affine = identity), front = the rasterised front
surface, back = its deepest point: the "front" fill of ``voxel.mesh_to_volume``.

``vrnkit prepare`` (:func:`prepare`) converts a whole dataset on all cores, one shard per job,
and resumes after an interruption: whole shards that are already there are kept.

>>> from vrnkit.datasets.morphable import toy_face_model
>>> model = toy_face_model()                       # a stand-in for 3DDFA's model
>>> pose = [0.1, 0.5, 0.0, 225.0, 225.0, 0.0, 1e-3]  # Pose_Para: pitch, yaw, roll, t, scale
>>> face = Face.from_params(model, np.zeros(199), np.zeros(29), pose, image_height=450)
>>> photo = np.zeros((450, 450, 3), np.uint8)
>>> sample = face_to_sample(photo, face, model, VolumeSpec.preset("cpu"))
>>> sample["image"].shape, sample["front"].shape, sample["affine"].shape
((64, 64, 3), (64, 64), (3, 4))
"""
from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import VolumeSpec, resolve_volume_spec
from ..geometry import CropFrame, crop_image
from ..files import check_number, check_out_folder, read_image, read_landmarks, read_mesh
from .morphable import (WHERE_TO_GET, MorphableModel, load_morphable_model, model_to_photo, pose_angles,
                        read_mat, read_params)
from .shards import (FORMAT_VERSION, claim_folder, ignore_ctrl_c, list_shards, shard_is_complete, shard_path,
                     write_index, write_shard)
from ..voxel import Slab, canonical_fit, compose_affine, invert_affine, mesh_to_slab, slab_from_model

SUBSETS_300WLP = ("AFW", "HELEN", "IBUG", "LFPW")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
MESH_EXTS = (".obj", ".ply")
LANDMARK_EXTS = (".txt", ".npy")
# Without landmarks, a scan is cropped by its mesh's x-y box; a whole-face mesh's box is about
# this much larger (sqrt of the area) than its 68-landmark box, which the paper's crop uses.
MESH_BOX_TO_LANDMARK_BOX = 1.35
# Consistency checks between an image and its annotations (fractions of the face size).
ANNOTATION_TOLERANCE = 0.1
DATASETS = ("300wlp", "aflw2000", "folder")
SOURCES = {"300wlp": "300w-lp", "aflw2000": "aflw2000-3d", "folder": "folder"}
DEFAULT_SPLIT = {"300wlp": "train", "aflw2000": "test", "folder": "test"}


# ---------------------------------------------------------------------------------------------
# A fitted face, its image and its crop

@dataclass
class Face:
    """One face of 300W-LP / AFLW2000-3D rebuilt from its parameters.

    frontal: (N, 3) float64, the model mesh in image axes (x right, y down, z toward viewer),
        model units, frontal pose
    to_photo: (3, 4) float64, frontal model -> photo pixels (0-based, vrnkit's convention)
    angles: yaw, pitch, roll in degrees, vrnkit's convention (geometry.euler_to_matrix)
    """

    frontal: np.ndarray
    to_photo: np.ndarray
    angles: dict

    @classmethod
    def from_params(cls, model: MorphableModel, shape_para, exp_para, pose_para, *, image_height: int,
                    vertices=None) -> "Face":
        """``vertices``: the (N, 3) model mesh if already computed (saves the matrix product)."""
        v = model.vertices(shape_para, exp_para) if vertices is None else np.asarray(vertices, np.float64)
        return cls(v * [1.0, -1.0, 1.0], model_to_photo(pose_para, image_height), pose_angles(pose_para))

    def photo_vertices(self, index=None) -> np.ndarray:
        """(N, 3) (or (len(index), 3)) vertices on the photo: x, y pixels, z toward the viewer."""
        v = self.frontal if index is None else self.frontal[index]
        return v @ self.to_photo[:, :3].T + self.to_photo[:, 3]


def _check_in_image(points, shape, path):
    """Most landmarks must lie on (or just off) the image, or the image is not this .mat's."""
    h, w = shape[:2]
    x, y = points[:, 0], points[:, 1]
    on = (x >= -0.1 * w) & (x <= 1.1 * w) & (y >= -0.1 * h) & (y <= 1.1 * h)
    if on.mean() < 0.5:
        raise ValueError(f"{path}: the face's landmarks fall outside its {w}x{h} image (x {x.min():.0f}..{x.max():.0f}, "
                         f"y {y.min():.0f}..{y.max():.0f}); the image and its .mat do not belong together")


def _check_agreement(annotated, fitted, path, what, shape):
    """Annotated landmarks must lie near the fitted model's (a resized or swapped image fails)."""
    lo, hi = fitted.min(0), fitted.max(0)
    size = float(np.sqrt(max((hi - lo).prod(), 1e-12)))
    d = float(np.median(np.linalg.norm(annotated - fitted, axis=1)))
    if d > ANNOTATION_TOLERANCE * size:
        raise ValueError(f"{path}: {what} lie {d:.1f} px (median) from the fitted model's landmarks, for a face of "
                         f"{size:.0f} px in a {shape[1]}x{shape[0]} image; the image, its .mat and its landmarks do not "
                         "match (a resized image?)")


def _canonical(face: Face, faces, grid_shape):
    """The pose-free part of a face's slab: (front, mask, back, canonical -> model (3, 4)).

    It is exactly what voxel.slab_from_model computes before the pose, so faces that share
    a mesh (300W-LP's rotated views of one fit) can share it.
    """
    s = slab_from_model(face.frontal, faces, np.eye(3, 4), grid_shape=grid_shape)
    inv = invert_affine(canonical_fit(face.frontal, grid_shape))
    inv = np.stack([np.stack([np.asarray(x, np.float64) for x in row]) for row in inv])
    return s.front, s.mask, s.back, inv


def face_to_sample(image, face: Face, model: MorphableModel, spec: VolumeSpec, *, landmarks_xy=None,
                   keep_vertices: bool = False, canonical=None, path="") -> dict:
    """A photo (H, W, 3) uint8 and its fitted face -> a sample dict (see vrnkit.datasets.shards).

    landmarks_xy: (68, 2) annotated photo landmarks (pts_3d, pt3d_68), else the model's; their
        depth always comes from the mesh. The crop is the paper's, from these landmarks.
    keep_vertices: store ``vertices``, the face region (model.face_region) in the crop.
    canonical: the result of _canonical for this face's mesh, if already computed.
    """
    fitted = face.photo_vertices(model.landmarks)
    _check_in_image(fitted, image.shape, path)
    lm = fitted.copy()
    if landmarks_xy is not None:
        _check_agreement(landmarks_xy, fitted[:, :2], path, "the annotated landmarks", image.shape)
        lm[:, :2] = landmarks_xy
    frame = CropFrame.from_landmarks(lm, size=spec.height, face_size=spec.face_size, depth_span=spec.depth_span)
    model_to_crop = frame.matrix[:3] @ np.vstack([face.to_photo, [0, 0, 0, 1]])
    front, mask, back, inv = canonical if canonical is not None else _canonical(face, model.faces, (spec.height, spec.width))
    slab = Slab(front, mask, back, compose_affine(model_to_crop, inv))
    sample = dict(image=crop_image(image, frame, (spec.height, spec.width)),
                  landmarks=frame.photo_to_crop(lm).astype(np.float32),
                  front=slab.front, mask=slab.mask, back=np.float32(slab.back), affine=slab.affine,
                  frame=frame.to_array())
    if keep_vertices:
        sample["vertices"] = frame.photo_to_crop(face.photo_vertices(model.face_region)).astype(np.float32)
    return sample


def folder_sample(image_path, mesh_path, spec: VolumeSpec, *, landmarks_path=None, y_up: bool = False,
                  back=None) -> dict:
    """A photo and its mesh (image space, pixels) -> a sample dict.

    The slab's canonical frame is the crop (affine = identity): front = the mesh's front surface
    rasterised in the crop, back = ``back`` (crop pixels; default its deepest point). Crop: the
    paper's, from the landmarks; without them from the mesh's box (MESH_BOX_TO_LANDMARK_BOX) and
    ``landmarks`` is all NaN. The face's reference depth (the landmarks' mean depth, or the
    front surface's) goes to the middle of the volume.
    """
    image = read_image(image_path)
    v, f = read_mesh(mesh_path, y_up=y_up, image_height=image.shape[0])
    lm = read_landmarks(landmarks_path) if landmarks_path is not None else None
    grid = (spec.height, spec.width)
    if lm is not None:
        _check_in_image(lm, image.shape, landmarks_path)
        frame = CropFrame.from_landmarks(lm[:, :2], size=spec.height, face_size=spec.face_size)
    else:
        _check_in_image(v, image.shape, mesh_path)
        frame = CropFrame.from_landmarks(v[:, :2], size=spec.height,
                                         face_size=spec.face_size * MESH_BOX_TO_LANDMARK_BOX)
    # First pass: the front surface in the crop, to find the face's reference depth.
    first = mesh_to_slab(frame.photo_to_crop(v), f, grid_shape=grid, fill_holes=False)
    if not first.mask.any():
        raise ValueError(f"mesh {mesh_path} does not cover its image {image_path} near the face; "
                         "is it in the image's pixel coordinates (see --y-up)?")
    if lm is not None and lm.shape[1] == 3:
        z_ref = lm[:, 2].mean()
    else:  # the depth of the surface under the 2-D landmarks, or of the whole front surface
        z_crop = _depth_under(first, frame.photo_to_crop(lm)) if lm is not None else first.front[first.mask]
        z_ref = (z_crop.mean() - frame.tz) / frame.scale
    frame = CropFrame(frame.scale, frame.tx, frame.ty, spec.depth_span / 2 - frame.scale * z_ref)
    slab = mesh_to_slab(frame.photo_to_crop(v), f, grid_shape=grid, back=back)
    if lm is None:
        landmarks = np.full((68, 3), np.nan)
    elif lm.shape[1] == 3:
        landmarks = frame.photo_to_crop(lm)
    else:
        landmarks = np.column_stack([frame.photo_to_crop(lm), _depth_under(slab, frame.photo_to_crop(lm))])
    return dict(image=crop_image(image, frame, grid), landmarks=landmarks.astype(np.float32), front=slab.front,
                mask=slab.mask, back=np.float32(slab.back), affine=slab.affine, frame=frame.to_array())


def _depth_under(slab: Slab, xy) -> np.ndarray:
    """Front depth at the masked pixel nearest to each crop point (N, 2) -> (N,)."""
    rows, cols = np.nonzero(slab.mask)
    centres = np.column_stack([cols + 0.5, rows + 0.5])
    nearest = np.argmin(((xy[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    return slab.front[rows[nearest], cols[nearest]].astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Listing a dataset: sorted items, each a dict of input files and metadata

def list_300wlp(root, *, subsets=None) -> list[dict]:
    """300W-LP items; ``subsets`` default: those of AFW, HELEN, IBUG, LFPW that are present."""
    root = Path(root)
    if not subsets:  # a partial download converts what it has; name subsets to insist on them
        subsets = [s for s in SUBSETS_300WLP if (root / s).is_dir()] or list(SUBSETS_300WLP)
    items = []
    for sub in subsets:
        folder = root / sub
        if not folder.is_dir():
            have = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            raise FileNotFoundError(f"300W-LP subset folder {folder} does not exist (folders in {root}: {have}); "
                                    f"expected ROOT/<subset>/*.jpg + .mat for subsets {list(SUBSETS_300WLP)}")
        for img in sorted(folder.glob("*.jpg")):
            lm = root / "landmarks" / sub / f"{img.stem}_pts.mat"
            items.append(dict(id=f"{sub}/{img.stem}", identity=img.stem.rsplit("_", 1)[0], image=str(img),
                              mat=str(_partner(img, ".mat")), landmarks=str(lm) if lm.exists() else None))
    return items


def list_aflw2000(root) -> list[dict]:
    root = Path(root)
    images = sorted(Path(root).glob("*.jpg")) if root.is_dir() else []
    return [dict(id=img.stem, identity=img.stem, image=str(img), mat=str(_partner(img, ".mat"))) for img in images]


def list_folder(root) -> list[dict]:
    root = Path(root)
    files = sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else []
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTS]
    stems = [p.stem for p in images]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise ValueError(f"{root}: several images share the stems {dup}; pairs are matched by stem")
    meshes = {p.stem: p for p in files if p.suffix.lower() in MESH_EXTS}
    lms = {p.stem: p for p in files if p.suffix.lower() in LANDMARK_EXTS}
    lonely = [str(p) for p in images if p.stem not in meshes] + [str(p) for s, p in meshes.items() if s not in stems]
    if lonely:
        raise ValueError(f"{root}: files without a partner (each image needs a mesh of the same stem, and "
                         f"each mesh an image): {lonely}")
    return [dict(id=p.stem, identity=p.stem, image=str(p), mesh=str(meshes[p.stem]),
                 landmarks=str(lms[p.stem]) if p.stem in lms else None) for p in images]


def _partner(image: Path, suffix: str) -> Path:
    p = image.with_suffix(suffix)
    if not p.exists():
        raise FileNotFoundError(f"{image} has no {suffix} file beside it (expected {p})")
    return p


def list_items(kind: str, root, *, subsets=None) -> list[dict]:
    if kind not in DATASETS:
        raise ValueError(f"unknown dataset {kind!r}; choose one of {DATASETS}")
    if not Path(root).is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    items = {"300wlp": lambda: list_300wlp(root, subsets=subsets), "aflw2000": lambda: list_aflw2000(root),
             "folder": lambda: list_folder(root)}[kind]()
    if not items:
        raise FileNotFoundError(f"no {kind} samples in {root}; see `vrnkit prepare --help` for the expected layout")
    return items


# ---------------------------------------------------------------------------------------------
# Converting shards

def convert_items(kind: str, items: list[dict], spec: VolumeSpec, *, model=None, split=None,
                  y_up: bool = False) -> tuple[list[dict], list[dict]]:
    """Samples and metadata rows for a list of items (one shard's worth)."""
    split = split or DEFAULT_SPLIT[kind]
    meta = [dict(id=it["id"], split=split, source=SOURCES[kind], identity=it["identity"], expression="",
                 yaw=np.nan, pitch=np.nan, roll=np.nan) for it in items]
    if kind == "folder":
        return [folder_sample(it["image"], it["mesh"], spec, landmarks_path=it["landmarks"], y_up=y_up)
                for it in items], meta
    params = [read_params(it["mat"], model, extra=("pt3d_68",) if kind == "aflw2000" else ()) for it in items]
    # Faces that share parameters (300W-LP's rotated views of one fit) share a mesh and a slab.
    keys = [p["Shape_Para"].tobytes() + p["Exp_Para"].tobytes() for p in params]
    unique = [keys.index(k) for k in dict.fromkeys(keys)]  # first face with each parameter set
    meshes = model.vertices(np.stack([params[i]["Shape_Para"] for i in unique]),
                            np.stack([params[i]["Exp_Para"] for i in unique]))
    mesh_of = {keys[i]: mesh for i, mesh in zip(unique, meshes)}
    canon, samples = {}, []
    for it, p, key, row in zip(items, params, keys, meta):
        image = read_image(it["image"])
        face = Face.from_params(model, None, None, p["Pose_Para"], image_height=image.shape[0], vertices=mesh_of[key])
        if key not in canon:
            canon[key] = _canonical(face, model.faces, (spec.height, spec.width))
        lm_xy, where = None, f"{it['image']} with {Path(it['mat']).name}"
        if kind == "aflw2000":
            pt = np.asarray(p["pt3d_68"], np.float64)
            if pt.shape != (3, 68):
                raise ValueError(f"{it['mat']}: pt3d_68 has shape {pt.shape}; expected 3x68")
            lm_xy = pt[:2].T - 0.5  # MATLAB pixel centres are 1, 2, ...; vrnkit's 0.5, 1.5, ...
        elif it.get("landmarks"):
            where += f" and {it['landmarks']}"
            pts = read_mat(Path(it["landmarks"]), ["pts_3d"])["pts_3d"]
            if pts.shape != (68, 2):
                raise ValueError(f"{it['landmarks']}: pts_3d has shape {pts.shape}; expected 68x2")
            lm_xy = pts.astype(np.float64) - 0.5
        samples.append(face_to_sample(image, face, model, spec, landmarks_xy=lm_xy, canonical=canon[key],
                                      keep_vertices=kind == "aflw2000", path=where))
        row.update({k: round(a, 3) for k, a in face.angles.items()})  # as SynthFaces
    return samples, meta


_WORKER = {}


def _init_worker(kind, out, spec, model, split, y_up):
    _WORKER.update(kind=kind, out=out, spec=spec, model=model, split=split, y_up=y_up)


def _init_pool_worker(*init):
    ignore_ctrl_c()
    _init_worker(*init)


def _convert_shard(job):
    number, items = job
    w = _WORKER
    samples, meta = convert_items(w["kind"], items, w["spec"], model=w["model"], split=w["split"], y_up=w["y_up"])
    write_shard(w["out"], number, samples, meta)
    return number, len(samples)


def check_prepare_args(kind, root, out, *, shard_size, workers, limit, split, subsets) -> None:
    """Raise a clear error for the first bad argument of prepare(), with its allowed range."""
    if kind not in DATASETS:
        raise ValueError(f"unknown dataset {kind!r}; choose one of {DATASETS}")
    check_number(shard_size, "shard_size (--shard-size)", low=1, high=100_000, integer=True)
    check_number(workers, "workers (--workers)", low=1, high=1024, integer=True)
    check_number(limit, "limit (--limit), the number of samples to convert,", low=1, integer=True, optional=True)
    if split is not None and (not isinstance(split, str) or not split.strip()):
        raise ValueError(f"split (--split) must be a name such as train or test; got {split!r}")
    if subsets is not None and (isinstance(subsets, str) or not all(isinstance(s, str) and s.strip() for s in subsets)):
        raise ValueError(f"subsets (--subsets) must be folder names such as {','.join(SUBSETS_300WLP)}; "
                         f"got {subsets!r}")
    if not Path(root).is_dir():
        raise FileNotFoundError(f"dataset folder {root} (--root) does not exist or is not a folder")
    check_out_folder(out)
    if Path(out).resolve() == Path(root).resolve():
        raise ValueError(f"--out {out} is the dataset folder itself (--root); give another folder for the shards")


def prepare(kind: str, root, out, *, model=None, preset: str | None = None, split: str | None = None,
            shard_size: int = 64, workers: int = 2, subsets=None, limit: int | None = None,
            y_up: bool = False, progress: bool = True, force: bool = False):
    """Convert a dataset folder to shards in ``out``; returns the index table (pandas).

    kind: "300wlp", "aflw2000" or "folder"; model: a folder with the model files (or a loaded
    MorphableModel), needed for 300W-LP and AFLW2000-3D. Items are listed in sorted order and
    cut into shards of ``shard_size``; shard k is made from its own list of input files only,
    so a run that resumes (same settings) keeps the complete shards and writes the same bytes
    for the others. ``limit`` converts only the first items (a quick look); a later run with
    another limit and otherwise the same settings shortens or lengthens the same dataset (its
    shards beyond the new end are deleted, so that no sample appears twice). A folder holding
    another dataset (other settings, a SynthFaces set, shards without a manifest) is refused;
    ``force=True`` deletes that dataset first (--force).
    """
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    check_prepare_args(kind, root, out, shard_size=shard_size, workers=workers, limit=limit, split=split,
                       subsets=subsets)
    spec = resolve_volume_spec(preset)
    out = Path(out)
    model_arg = model
    if kind in ("300wlp", "aflw2000"):
        if model is None:
            raise FileNotFoundError(f"{kind} needs the morphable model: pass --model DIR.\n{WHERE_TO_GET}")
        if not isinstance(model, MorphableModel):
            model = load_morphable_model(model)
    items = list_items(kind, root, subsets=subsets)[:limit]
    jobs = [(k, items[i:i + shard_size]) for k, i in enumerate(range(0, len(items), shard_size))]

    split = split or DEFAULT_SPLIT[kind]
    model_dir = "DIR" if isinstance(model_arg, MorphableModel) else str(model_arg)  # a loaded model has no folder
    command = shlex.join(
        ["vrnkit", "prepare", kind, "--root", str(root), *(["--model", model_dir] if model is not None else []),
         *(["--preset", preset] if preset else []), "--split", split, "--shard-size", str(shard_size),
         *(["--subsets", ",".join(subsets)] if subsets else []), *(["--y-up"] if y_up else []),
         *(["--limit", str(limit)] if limit else []), "--out", str(out)])
    claim_folder(out, dict(kind=kind, source=str(Path(root).resolve()), model=getattr(model, "name", None),
                           spec=spec.to_dict(), preset=preset, split=split, y_up=y_up, shard_size=shard_size,
                           subsets=list(subsets or SUBSETS_300WLP) if kind == "300wlp" else None,
                           format_version=FORMAT_VERSION, samples=len(items), shards=len(jobs), command=command),
                 force=force)
    for stale in list_shards(out):  # written by an earlier run of this dataset with a larger --limit
        if int(stale.stem.split("-")[1]) >= len(jobs):
            print(f"removing {stale}: this run makes {len(jobs)} shards" + (f" (--limit {limit})" if limit else ""))
            stale.unlink()
    todo = [j for j in jobs if not shard_is_complete(shard_path(out, j[0]), [it["id"] for it in j[1]])]

    start = time.perf_counter()
    init = (kind, str(out), spec, model, split, y_up)
    n_new = sum(len(j[1]) for j in todo)
    with tqdm(total=n_new, unit="face", desc=f"prepare {kind}", disable=not progress) as bar:
        if workers > 1 and len(todo) > 1:
            # Each worker writes whole shards; the model reaches the workers once, at start-up.
            # fork shares the loaded model with the workers (Linux); elsewhere it is sent once each.
            ctx = get_context("fork" if sys.platform == "linux" else "spawn")
            with ctx.Pool(min(workers, len(todo)), initializer=_init_pool_worker, initargs=init) as pool:
                for _, n in pool.imap_unordered(_convert_shard, todo):
                    bar.update(n)
        else:
            _init_worker(*init)
            for job in todo:
                bar.update(_convert_shard(job)[1])
    seconds = time.perf_counter() - start
    index = write_index(out)
    if progress:
        print(f"{len(index)} samples in {len(jobs)} shards in {out} ({len(todo)} shards written, "
              f"{len(jobs) - len(todo)} kept; {n_new / max(seconds, 1e-9):.1f} faces/s)")
    return index
