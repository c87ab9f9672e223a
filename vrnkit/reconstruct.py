"""From a photo to a 3D face: vrnkit's one inference entry point.

    photo -> faces and 68 landmarks (vrnkit.detect, or a landmarks file)
          -> the paper's crop (CropFrame.from_landmarks: 90 px face in a 192 px crop)
          -> VRN-Guided (image + landmark heatmaps) or VRN (image) -> soft volume (D, H, W)
          -> 0.5 iso-surface (marching cubes) -> back to the photo's pixels -> colours from the photo

>>> from skimage.data import astronaut
>>> rec = reconstruct(astronaut())                                       # doctest: +SKIP
>>> rec.vertices.shape, rec.faces_found                                  # doctest: +SKIP
((61234, 3), 1)
>>> rec.save("out/astronaut")                                            # doctest: +SKIP

``vrnkit reconstruct PHOTO|DIR... -o OUT`` runs the same path over files and folders.

Precision: the network runs in float32 everywhere. On an H100 at batch 1, bf16 autocast was
slower (vrn-guided-192: 15.3 ms float32, 25.5 ms bf16; vrn-192: 12.1 / 13.0 ms): one photo is
too little work for the tensor cores to pay for the casts (benchmarks/gpu_train_192.py prints it).
"""
from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import VolumeSpec
from .geometry import CropFrame
from .surface import SMOOTH, vertex_normals  # SMOOTH: the default ``smooth``; notebooks read it here


@dataclass
class Reconstruction:
    """One reconstructed face. Coordinates are the photo's pixels: x right, y down, z toward the
    viewer (z = 0 at the crop's mid-depth), so the mesh lies on the face in the photo."""

    vertices: np.ndarray  # (N, 3) float32, photo pixels
    faces: np.ndarray  # (M, 3) int32 triangles, outward normals
    colours: np.ndarray  # (N, 3) uint8, sampled from the photo under each vertex
    volume: np.ndarray  # (D, S, S) float32 voxel probabilities, in the crop
    frame: CropFrame  # photo -> crop
    landmarks: np.ndarray  # (68, 2|3) float32, photo pixels (detected or given)
    crop: np.ndarray  # (S, S, 3) uint8, the network's input
    box: tuple  # (x0, y0, x1, y1) face box in photo pixels
    source: str  # where the landmarks came from: "hog", "cnn" or "file"
    faces_found: int  # faces the detector found in the photo (1 with a landmarks file)
    model: str  # the model's name or checkpoint path
    spec: VolumeSpec = field(repr=False, default=None)
    seconds: dict = field(default_factory=dict)  # per stage: detect, landmarks, crop, network, surface, colours

    def info(self) -> dict:
        """What the JSON file next to the mesh holds."""
        return {"model": self.model, "landmarks_from": self.source, "faces_found": self.faces_found,
                "box": [float(b) for b in self.box], "crop_frame": self.frame.to_array().tolist(),
                "crop_frame_fields": ["scale", "tx", "ty", "tz"], "volume_shape": list(self.volume.shape),
                "vertices": int(len(self.vertices)), "landmarks": np.round(self.landmarks, 3).tolist(),
                "seconds": {k: round(v, 4) for k, v in self.seconds.items()}}

    def save(self, stem, *, formats=("obj", "ply", "glb"), volume: bool = False, picture: bool = True,
             photo=None) -> dict:
        """Write STEM.obj/.ply/.glb (y-up export frame, vertex colours), STEM.json (crop frame,
        landmarks, timings), STEM.png (see :meth:`picture`; ``photo`` as there) and, with
        ``volume``, STEM_volume.npy (float16). Every file is written atomically. Returns {kind: path}."""
        from .files import atomic_write
        from .surface import export_mesh

        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        paths = {}
        for ext in formats:
            paths[ext] = Path(export_mesh(stem.with_suffix(f".{ext}"), self.vertices, self.faces, colours=self.colours))
        paths["json"] = stem.with_suffix(".json")
        atomic_write(paths["json"], lambda tmp: Path(tmp).write_text(json.dumps(self.info(), indent=1)))
        if volume:
            paths["volume"] = stem.parent / f"{stem.name}_volume.npy"

            def save_npy(tmp):
                with open(tmp, "wb") as fh:  # a handle: np.save(path) would append ".npy"
                    np.save(fh, self.volume.astype(np.float16))

            atomic_write(paths["volume"], save_npy)
        self.seconds["export"] = time.perf_counter() - t
        if picture:
            import matplotlib.pyplot as plt

            paths["png"] = stem.with_suffix(".png")
            fig = self.picture(photo=photo)
            atomic_write(paths["png"], lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
            plt.close(fig)
        return paths

    def picture(self, *, photo=None, size: int = 320):
        """The photo around the face with its landmarks, the mesh drawn over it, and the mesh from
        the front and both sides -> matplotlib Figure. ``photo``: the full photo (default: the
        crop, which shows the same face at the network's resolution)."""
        import matplotlib.pyplot as plt

        from .meshviz import overlay_mesh, render_mesh

        if photo is None:  # draw in the crop: the mesh and landmarks mapped into it
            region, v, lm = self.crop, self.frame.photo_to_crop(self.vertices), self.frame.photo_to_crop(self.landmarks)
        else:
            region, v, lm = _face_region(np.asarray(photo), self.vertices, self.landmarks, self.box, size)
        fig, ax = plt.subplots(1, 5, figsize=(16, 3.5))
        ax[0].imshow(region)
        ax[0].scatter(lm[:, 0] - 0.5, lm[:, 1] - 0.5, s=6, c="lime", edgecolors="k", linewidths=0.3)
        ax[0].set_title(f"{self.source} landmarks ({self.faces_found} face{'s' * (self.faces_found != 1)} found)",
                        fontsize=9)
        ax[0].axis("off")
        overlay_mesh(region, v, self.faces, alpha=0.6, ax=ax[1], title="mesh over the photo")
        for a, yaw, title in ((ax[2], 0.0, "front, photo colours"), (ax[3], -60.0, "turned: its right side"),
                              (ax[4], 60.0, "turned: its left side")):
            a.imshow(render_mesh(self.vertices, self.faces, colours=self.colours if yaw == 0 else None,
                                 size=256, yaw=yaw))
            a.set_title(title, fontsize=9)
            a.axis("off")
        stages = {k: v for k, v in self.seconds.items() if k != "export"}  # the reconstruction itself
        fig.tight_layout(rect=(0, 0, 1, 0.88))  # room for the title above the panels' own
        fig.suptitle(f"{self.model}: {len(self.vertices):,} vertices in {sum(stages.values()):.2f} s ("
                     + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in stages.items()) + ")", fontsize=9)
        return fig


def _face_region(photo, vertices, landmarks, box, size: int):
    """The photo around the face box (margin 40 %), scaled to at most ``size`` px, with the mesh
    and landmarks moved into it (so an 8000 px photo is drawn at a few hundred pixels)."""
    from skimage.transform import resize

    x0, y0, x1, y1 = box
    m = 0.4 * max(x1 - x0, y1 - y0)
    H, W = photo.shape[:2]
    a, b = int(max(0, np.floor(x0 - m))), int(max(0, np.floor(y0 - m)))
    c, d = int(min(W, np.ceil(x1 + m))), int(min(H, np.ceil(y1 + m)))
    k = min(1.0, size / max(c - a, d - b))
    region = photo[b:d, a:c]
    if k < 1:
        region = (resize(region, (round((d - b) * k), round((c - a) * k)), anti_aliasing=True) * 255).astype(np.uint8)
    shift = np.array([a, b, 0.0])
    v = (np.asarray(vertices, np.float64) - shift) * k
    lm = (np.asarray(landmarks, np.float64)[:, :2] - shift[:2]) * k
    return region, v.astype(np.float32), lm


@functools.lru_cache(maxsize=4)
def _cached(name: str, device: str, mtime: float):
    """A shipped model or a checkpoint file, loaded once per (name, device, file time)."""
    from .checkpoint import load_checkpoint
    from .pretrained import load_pretrained

    return load_pretrained(name, device=device) if mtime < 0 else load_checkpoint(name, map_location=device)


def load_model(model=None, *, device=None):
    """(network in eval mode, VolumeSpec, name) from a shipped name, a checkpoint path, or a
    network. None: the default photo model (``pretrained.PHOTO_MODEL``). Loaded once per name."""
    import torch

    from .checkpoint import volume_spec_of
    from .pretrained import PHOTO_MODEL, PRETRAINED

    device = str(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = PHOTO_MODEL if model is None else model
    if isinstance(model, torch.nn.Module):
        return model.eval(), volume_spec_of(model.config), type(model).__name__
    name = str(model)
    if name in PRETRAINED:
        net, config, extra = _cached(name, device, -1.0)
    elif Path(name).suffix == ".pt" or Path(name).exists():
        # a folder of photos reconstructs with one load; a rewritten file is loaded again
        mtime = Path(name).stat().st_mtime if Path(name).is_file() else 0.0
        net, config, extra = _cached(name, device, mtime)
    else:
        raise ValueError(f"unknown model {name!r}: give one of {sorted(PRETRAINED)} or the path of a .pt "
                         f"checkpoint written by `vrnkit train`")
    return net, volume_spec_of(config, extra), name


def reconstruct(photo, *, landmarks=None, model=None, device=None, all_faces: bool = False,
                detector: str = "auto", smooth: float = SMOOTH, level: float = 0.5):
    """Reconstruct the face in a photo as a coloured mesh in the photo's pixels.

    photo: a file path, or an (H, W, 3) / (H, W) array (uint8, uint16, or float in [0, 1]).
    landmarks: (68, 2|3) photo pixels, or a .npy/.txt/.pts file: skips detection.
    model: a shipped name ("vrn-guided-192", the default; "vrn-192"; "vrn-cpu"), a checkpoint
        path or a network. VRN-Guided is guided by the landmarks; VRN sees the image alone.
    all_faces: reconstruct every detected face (largest first) and return a list.
    detector: "auto" (dlib's HOG detector, then its CNN detector when HOG finds nothing), "hog", "cnn".
    smooth: Gaussian sigma in voxels applied to the soft volume before the iso-surface (0: none).
    Returns a :class:`Reconstruction` (a list of them with ``all_faces``). Raises ValueError with
    one line naming the problem and the fix: unreadable file, no face, a bad landmarks array...
    """
    from . import detect, photo as photo_io

    t = time.perf_counter()
    image = photo_io.read_photo(photo)
    if landmarks is not None:
        lm = detect.landmarks_from_file(landmarks) if isinstance(landmarks, (str, Path)) else landmarks
        found = [detect.face_from_landmarks(lm)]
    else:
        timings = {}
        found = detect.detect_faces(image, detector=detector, timings=timings)
        if not found:
            where = f" in {photo}" if isinstance(photo, (str, Path)) else ""
            tried = {"auto": "dlib's HOG and CNN detectors", "hog": "dlib's HOG detector",
                     "cnn": "dlib's CNN detector"}.get(detector, detector)
            hint = "try detector='cnn' (--detector cnn) for profiles, or give" if detector == "hog" else "give"
            raise ValueError(f"no face found{where} by {tried}; {hint} its 68 landmarks (--landmarks FILE)")
    before = {"detect": time.perf_counter() - t}  # reading and detection; the landmarks apart:
    if landmarks is None:
        before["landmarks"] = timings.get("landmarks", 0.0)
        before["detect"] -= before["landmarks"]
    net, spec, name = load_model(model, device=device)
    results = [_reconstruct_face(image, face, net, spec, name, smooth=smooth, level=level,
                                 faces_found=len(found), seconds=dict(before))
               for face in (found if all_faces else found[:1])]
    return results if all_faces else results[0]


def _reconstruct_face(image, face, net, spec: VolumeSpec, name: str, *, smooth: float, level: float,
                      faces_found: int, seconds: dict) -> Reconstruction:
    from .geometry import crop_image
    from .surface import mesh_crop_to_photo, sample_vertex_colours, volume_to_mesh

    t = time.perf_counter()
    frame = CropFrame.from_landmarks(face.landmarks[:, :2], size=spec.width, face_size=spec.face_size,
                                     depth_span=spec.depth_span)
    crop = crop_image(image, frame, spec.width)
    crop_lm = frame.photo_to_crop(face.landmarks[:, :2])
    seconds["crop"] = time.perf_counter() - t
    t = time.perf_counter()
    volume = predict_volume(net, crop, landmarks=crop_lm)
    seconds["network"] = time.perf_counter() - t
    t = time.perf_counter()
    try:
        v, f = volume_to_mesh(volume, spec, level=level, smooth=smooth)
    except ValueError as e:
        raise ValueError(f"the network found no face in the crop ({e}); check the landmarks or try another model") from e
    v = mesh_crop_to_photo(v, frame)
    seconds["surface"] = time.perf_counter() - t
    t = time.perf_counter()
    colours = sample_vertex_colours(v, image)
    seconds["colours"] = time.perf_counter() - t
    return Reconstruction(vertices=v, faces=f, colours=colours, volume=volume, frame=frame,
                          landmarks=np.asarray(face.landmarks, np.float32), crop=crop, box=tuple(face.box),
                          source=face.detector, faces_found=faces_found, model=name, spec=spec, seconds=seconds)


def _as_batch(images) -> tuple[torch.Tensor, bool]:
    """Crops -> ((B, 3, S, S) float32 tensor in [0, 1], whether one image was given)."""
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"an image tensor must be (B, 3, S, S) float in [0, 1]; got {tuple(images.shape)}")
        return images.float(), False
    arr = np.asarray(images)
    single = arr.ndim == 3
    arr = arr[None] if single else arr
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"images must be (S, S, 3) or (B, S, S, 3) crops; got shape {np.shape(images)}")
    if arr.dtype == np.uint8:
        x = torch.from_numpy(np.array(arr, np.uint8)).float() / 255  # a copy: arrays may be read-only
    elif arr.dtype.kind == "f":  # already in [0, 1]: never cast floats to uint8 (that gives black)
        if arr.size and (arr.min() < -1e-3 or arr.max() > 1 + 1e-3):
            raise ValueError(f"float crops must hold values in [0, 1]; got [{arr.min():.3g}, {arr.max():.3g}] "
                             f"(pass uint8 for 0..255)")
        x = torch.from_numpy(np.clip(arr, 0, 1).astype(np.float32))
    else:
        raise ValueError(f"crops must be uint8 or float in [0, 1]; got dtype {arr.dtype}")
    return x.permute(0, 3, 1, 2), single


@torch.no_grad()
def predict_volume(model, images, *, landmarks=None, device=None) -> np.ndarray:
    """Voxel probabilities from crops.

    images: (S, S, 3) or (B, S, S, 3) crops, uint8 or float in [0, 1], or a (B, 3, S, S) float
        tensor in [0, 1].
    landmarks: VRN-Guided only: (68, 2|3) or (B, 68, 2|3) landmarks in crop pixels, drawn as the
        Gaussian heatmaps that guide the volume (as in training). None: the model's own landmark
        network draws them.
    Returns (D, S, S) or (B, D, S, S) float32 probabilities (sigmoid of the logits).
    """
    from .augment import landmarks_to_heatmaps

    if model.config.kind == "direct":
        raise ValueError("a direct-regression model predicts vertices, not a volume: use model(images)['vertices'] "
                         "or vrnkit.evaluate; for photos use a VRN model")
    x, single = _as_batch(images)
    size = model.config.image_size
    if tuple(x.shape[-2:]) != (size, size):
        raise ValueError(f"this model takes {size}x{size} crops; got {tuple(x.shape[-2:])}: crop the face first")
    device = device or next(model.parameters()).device
    x = x.to(device)
    kwargs = {}
    if landmarks is not None and model.config.kind == "guided":
        lm = torch.as_tensor(np.asarray(landmarks, np.float32), device=device)
        lm = lm[None] if lm.ndim == 2 else lm
        if lm.ndim != 3 or lm.shape[0] != x.shape[0] or lm.shape[1] != model.config.num_landmarks:
            raise ValueError(f"landmarks must be ({model.config.num_landmarks}, 2|3) per image; got "
                             f"{tuple(np.shape(landmarks))} for {x.shape[0]} image(s)")
        kwargs["heatmaps"] = landmarks_to_heatmaps(lm, size // 4, sigma=model.config.heatmap_sigma)
    out = torch.sigmoid(model(x, **kwargs)["volume"].float()).cpu().numpy()
    return out[0] if single else out


def front_facing(vertices, faces, affine) -> tuple[np.ndarray, np.ndarray]:
    """The part of a predicted iso-surface whose normals face the way the face looks -> (V, F).

    The face's forward direction is its slab's canonical z axis posed into the crop; the sides
    and flat back of the predicted solid face away from it and are left out of the NME. A
    triangle is kept when its three corners face forward; vertices of no kept triangle go.
    """
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    forward = np.asarray(affine, np.float64)[:, 2]
    forward /= np.linalg.norm(forward)
    front = vertex_normals(v, f) @ forward > 0.3
    kept = f[front[f].all(1)]
    used, inverse = np.unique(kept, return_inverse=True)
    return v[used], inverse.reshape(-1, 3)
