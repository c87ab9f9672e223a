"""Faces and their 68 landmarks in your own photos (dlib), or landmarks read from a file.

VRN crops each face by its 68 landmarks (``CropFrame.from_landmarks``); this module finds them:

* :func:`detect_faces`: dlib's HOG face detector (fast; frontal and up to about 45 deg of yaw)
  and, where it finds nothing, dlib's CNN detector (about 15x slower on a CPU, finds profiles
  too); then dlib's 68-point shape predictor on each face, at the photo's full resolution.
  On synthetic faces of ~90 px (benchmarks/bench_detect.py) HOG found 70% / 45% / 5% of faces
  at 0-30 / 30-60 / 60-90 deg of yaw and HOG + CNN 85% / 90% / 70%; the landmarks' mean error
  grows from ~5% of the face size (frontal) to ~30% for profiles, where the predictor, trained
  on mostly frontal faces, is unreliable.
* :func:`landmarks_from_file` and :func:`face_from_landmarks`: landmarks you already have
  (.npy, .txt or iBUG .pts), for photos where detection fails or to use better annotations.

Install with ``pip install 'vrnkit[photos]'``: ``dlib-bin`` (dlib built for pip) and
``face_recognition_models``, which ships the model files (shape_predictor_68_face_landmarks.dat,
100 MB, and mmod_human_face_detector.dat, the CNN detector). Nothing is downloaded at run time.

Licences: dlib is under the Boost licence. The 68-point model was trained by dlib's author on
the iBUG 300-W dataset, whose terms exclude commercial use: its author notes that the trained
model therefore cannot be used in a commercial product (whatever the licence of the package that
ships the file says). For commercial work, use your own landmarks through
:func:`landmarks_from_file` or a model trained on data that allows it.

Coordinates: vrnkit's image space (x right, y down, pixels; pixel (i, j) covers [i, i+1) x
[j, j+1)). dlib reports a landmark as the integer index of its pixel, i.e. that pixel's centre,
so vrnkit adds 0.5; a dlib box (left, top, right, bottom) includes its right and bottom pixels,
so its vrnkit box is (left, top, right + 1, bottom + 1). Landmarks follow the 68-point iBUG
scheme, 0-based (``geometry.LANDMARK_GROUPS``).

>>> import numpy as np
>>> face = face_from_landmarks(np.array([[10.0, 20.0]] * 67 + [[50.0, 80.0]]))
>>> face.box, face.landmarks.shape, face.detector
((10.0, 20.0, 50.0, 80.0), (68, 2), 'file')
"""
from __future__ import annotations

import functools
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .photo import DETECT_MAX_SIDE, downscale_for_detection, read_photo

INSTALL_HINT = "pip install 'vrnkit[photos]'"
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
CNN_FILE = "mmod_human_face_detector.dat"
DETECTORS = ("auto", "hog", "cnn")
N_LANDMARKS = 68
WEAK_SCORE = 0.5  # detections scoring below this rank as smaller than they are (see detect_faces)


@dataclass
class Face:
    """One face in a photo.

    box: (x0, y0, x1, y1) float, the face box in the photo's pixels (edges, x1 and y1 excluded)
    landmarks: (68, 2) float32, the iBUG 68 points in the photo's pixels (vrnkit convention)
    score: the detector's confidence: HOG's SVM margin (> 0; about 1 or more for clear faces),
        the CNN's confidence (> 0), or 1.0 for landmarks given from a file. HOG's and the CNN's
        scores are on different scales: compare scores of one detector only.
    detector: "hog", "cnn" or "file"
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    detector: str

    @property
    def area(self) -> float:
        """The box's area in square pixels (faces are sorted by it, largest first, weak ones last)."""
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)


# ---------------------------------------------------------------------------------------------
# dlib and its models, loaded once

def _dlib():
    try:
        import dlib
    except ImportError:
        raise ImportError(f"face detection needs dlib: {INSTALL_HINT}") from None
    return dlib


@functools.lru_cache(maxsize=None)
def model_path(name: str) -> Path:
    """The path of one of face_recognition_models' files, e.g. ``model_path(PREDICTOR_FILE)``.

    Found without importing the package (its ``__init__`` needs pkg_resources, which newer
    Pythons lack). Raises FileNotFoundError, one line with the fix, where it is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"dlib's model files are missing (package face_recognition_models): {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall the models: pip install --force-reinstall face_recognition_models")
    return path


@functools.lru_cache(maxsize=None)
def _hog_detector():
    return _dlib().get_frontal_face_detector()


@functools.lru_cache(maxsize=None)
def _cnn_detector():
    return _dlib().cnn_face_detection_model_v1(str(model_path(CNN_FILE)))


@functools.lru_cache(maxsize=None)
def _shape_predictor():
    return _dlib().shape_predictor(str(model_path(PREDICTOR_FILE)))


def cnn_available() -> bool:
    """True if the CNN detector's model file is installed (``detector="cnn"`` can run)."""
    try:
        model_path(CNN_FILE)
    except FileNotFoundError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Detection

def detect_faces(image, *, detector: str = "auto", upsample: int = 1,
                 max_side: int = DETECT_MAX_SIDE, timings: dict | None = None) -> list[Face]:
    """All faces in a photo with their 68 landmarks, largest (and confident) first; [] if none.

    image: a path or an array that :func:`vrnkit.photo.read_photo` accepts, e.g. (H, W, 3) uint8.
    detector: "hog" (dlib's HOG + linear SVM: 20-100 ms for a 512x512 photo; misses faces turned
        beyond about 45 deg), "cnn" (dlib's MMOD CNN: about 1.5 s for 512x512 on a CPU; also
        finds profiles, but the 68 landmarks on profiles are poor), or "auto": HOG, and the CNN only where HOG finds nothing.
    upsample: how many times HOG doubles the photo first. Its smallest face box is about 60 px
        wide at 0 and 30 px at 1 (which costs 4x, and can fire on round things: the astronaut's
        mission patch). The CNN always runs without upsampling here, since it is so slow; its
        smallest face box is then about 60 px (measured on the astronaut, shrunk).
    max_side: detection runs on a copy shrunk by an integer factor so its longer side is at
        most this (an 8000 px photo is searched at 1000 px); boxes are mapped back to the full
        photo and the landmarks are predicted on the full photo (the predictor reads only a few
        hundred pixels per face, so its cost does not grow with the photo's size).
    timings: if a dict, the seconds spent in each stage are added to it under "read",
        "downscale", "hog", "cnn" and "landmarks" (for benchmarks/bench_detect.py).

    Returns a list of :class:`Face` in the full photo's pixels.
    """
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; choose one of {DETECTORS}")
    dlib = _dlib()
    clock = _Clock(timings)
    photo = clock("read", read_photo, image)
    small, scale = clock("downscale", downscale_for_detection, photo, max_side=max_side)
    found = []  # (box in small's pixels, score, detector name)
    if detector in ("hog", "auto"):
        found = clock("hog", _run_hog, small, upsample)
    if detector == "cnn" or (detector == "auto" and not found and cnn_available()):
        found = clock("cnn", _run_cnn, small)
    faces = []
    for box, score, name in found:
        full_box = tuple(float(v / scale) for v in box)
        landmarks = clock("landmarks", predict_landmarks, photo, full_box, dlib=dlib)
        faces.append(Face(full_box, landmarks, float(score), name))
    # Largest first, but a weak detection counts as smaller: HOG at upsample 1 also fires on the
    # astronaut's round mission patch (score 0.12, a box within 1 % of her face's, score 1.16).
    return sorted(faces, key=lambda f: f.area * min(1.0, f.score / WEAK_SCORE), reverse=True)


class _Clock:
    """Calls a function and adds its run time to ``timings[stage]`` (when timings is a dict)."""

    def __init__(self, timings: dict | None):
        self.timings = timings

    def __call__(self, stage: str, func, *args, **kwargs):
        start = time.perf_counter()
        result = func(*args, **kwargs)
        if self.timings is not None:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start
        return result


def _box_of_rect(r) -> tuple[float, float, float, float]:
    """A dlib rectangle (inclusive pixel indices) -> vrnkit box (x0, y0, x1, y1) of pixel edges."""
    return (float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1))


def _run_hog(image: np.ndarray, upsample: int) -> list:
    rects, scores, _ = _hog_detector().run(image, int(upsample), 0.0)
    return [(_box_of_rect(r), s, "hog") for r, s in zip(rects, scores)]


# The 68-point predictor was trained on HOG's boxes; the CNN's sit a little higher and further
# left and are a little smaller. Moving them to HOG's frame (centre + (0.035, 0.037) x width,
# size x 1.04: means over 106 synthetic faces that both detectors found) cut the landmark
# error on CNN boxes by about 15% on held-out faces.
CNN_TO_HOG_BOX = (0.035, 0.037, 1.04)


def _run_cnn(image: np.ndarray) -> list:
    dx, dy, k = CNN_TO_HOG_BOX
    found = []
    for d in _cnn_detector()(image, 0):
        x0, y0, x1, y1 = _box_of_rect(d.rect)
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2 + dx * w, (y0 + y1) / 2 + dy * w
        found.append(((cx - k * w / 2, cy - k * h / 2, cx + k * w / 2, cy + k * h / 2), d.confidence, "cnn"))
    return found


def predict_landmarks(image: np.ndarray, box, *, dlib=None) -> np.ndarray:
    """dlib's 68 landmarks of the face in ``box`` = (x0, y0, x1, y1) of ``image`` (H, W, 3)
    uint8 -> (68, 2) float32 in vrnkit's pixel convention (dlib's pixel index + 0.5)."""
    dlib = dlib or _dlib()
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    shape = _shape_predictor()(image, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.array([[p.x, p.y] for p in shape.parts()], np.float32) + 0.5


# ---------------------------------------------------------------------------------------------
# Landmarks you already have

def landmarks_from_file(path) -> np.ndarray:
    """68 landmarks from a file -> (68, 2) or (68, 3) float64 in vrnkit's pixel coordinates.

    .npy: an array of shape (68, 2) or (68, 3), in vrnkit's coordinates.
    .txt: 68 rows of "x y" or "x y z", separated by spaces, tabs or commas (lines starting with
        # are skipped), in vrnkit's coordinates.
    .pts: the iBUG 300-W format (``version: 1``, ``n_points: 68``, then the points between
        ``{`` and ``}``). iBUG counts pixels from 1 and puts a point on a pixel's centre, so
        the first pixel's centre is (1, 1) there and (0.5, 0.5) in vrnkit: each coordinate
        has 0.5 subtracted (1-based -> 0-based: -1; pixel centre: +0.5).

    Raises ValueError, one line naming the file, for a missing or unreadable file or a shape
    other than (68, 2) / (68, 3).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"landmarks file {path} does not exist; check the path")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".txt", ".pts"):
        raise ValueError(f"landmarks file {path} has an unknown type; expected .npy, .txt or .pts")
    try:
        if suffix == ".npy":
            points = np.load(path, allow_pickle=False)
        elif suffix == ".pts":
            points = _read_pts(path.read_text()) - 0.5
        else:
            text = path.read_text().replace(",", " ")
            points = np.loadtxt(text.splitlines(), ndmin=2, comments="#")
        points = np.asarray(points, np.float64)
    except (ValueError, OSError) as e:  # numpy's and our parsers' errors for malformed files
        raise ValueError(f"could not read landmarks file {path} ({e}); expected 68 rows of numbers") from None
    if points.ndim != 2 or points.shape[0] != N_LANDMARKS or points.shape[1] not in (2, 3):
        raise ValueError(f"landmarks file {path} holds shape {points.shape}; expected (68, 2) or (68, 3): "
                         "68 rows of x y (or x y z) in the iBUG 68-point order")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"landmarks file {path} contains NaN or infinite values; expected finite coordinates")
    return points


def _read_pts(text: str) -> np.ndarray:
    """The points of an iBUG .pts text -> (n, 2) array, as written (1-based)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "{" not in lines or "}" not in lines:
        raise ValueError("no '{' ... '}' block of points (iBUG .pts format)")
    rows = lines[lines.index("{") + 1:lines.index("}")]
    points = np.array([[float(v) for v in row.split()] for row in rows]).reshape(len(rows), -1)
    header = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[:lines.index("{")])}
    if "n_points" in header and int(header["n_points"]) != len(points):
        raise ValueError(f"n_points says {header['n_points']} but {len(points)} points follow")
    return points


def face_from_landmarks(landmarks) -> Face:
    """A :class:`Face` from known landmarks (68, 2) or (68, 3) (z is dropped): box = their
    bounding box, score 1.0, detector "file"."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 2 or lm.shape[0] != N_LANDMARKS or lm.shape[1] not in (2, 3):
        raise ValueError(f"landmarks have shape {lm.shape}; expected (68, 2) or (68, 3)")
    xy = lm[:, :2]
    box = tuple(float(v) for v in (*xy.min(0), *xy.max(0)))
    return Face(box, xy.astype(np.float32), 1.0, "file")
