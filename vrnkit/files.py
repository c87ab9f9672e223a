"""Files and options: where a user's input meets vrnkit, so that each check is written once.

* ``atomic_write``: nothing is ever half written (shards, checkpoints, meshes, HTML);
  ``remove_temp_files``: what a killed ``atomic_write`` left behind is cleaned by the next run.
* ``check_number`` and ``check_out_folder``: every numeric option and output folder is checked
  before any work starts, with the allowed range in the message.
* ``read_image``, ``read_mesh``, ``read_landmarks``: the user's images, meshes and landmark
  files, read with errors that name the file and what was expected.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
>>> atomic_write(path, lambda tmp: pathlib.Path(tmp).write_text("hello"))
>>> path.read_text()
'hello'
>>> check_number(0, "--batch-size", low=1, integer=True)
Traceback (most recent call last):
...
ValueError: --batch-size must be a positive whole number >= 1; got 0
"""
from __future__ import annotations

import errno
import math
import numbers
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

# A writer that fails with this little space left on its disk ran out of space (torch.save,
# for one, reports a full disk as an obscure RuntimeError instead of an OSError).
NEARLY_FULL_BYTES = 64 * 2**20


def atomic_write(path, write, *, parents: bool = True) -> None:
    """Call ``write(tmp_path)``, flush the file to disk, then rename it to ``path``.

    The temporary file (``.NAME.XXXX.tmp``) sits in the same folder (so the rename is atomic)
    and is removed if ``write`` fails: a reader sees the old file or the new one, never half
    of one. A kill -9 can still leave the temporary file; ``remove_temp_files`` cleans it.
    ``parents``: create missing folders (else a missing folder raises FileNotFoundError).
    An OSError (permission denied, disk full...) names ``path``.
    """
    path = Path(path)
    try:
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        _name_the_path(e, path.parent)
        raise
    os.close(fd)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the bytes are on disk before the rename makes them visible
        finally:
            os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; these are ordinary files
        os.replace(tmp, path)
    except OSError as e:
        _name_the_path(e, path)
        raise
    except Exception as e:
        free = shutil.disk_usage(path.parent).free  # measured while the partial file still exists
        if free < NEARLY_FULL_BYTES:
            raise OSError(errno.ENOSPC, f"No space left on device ({free // 2**20} MB free)", str(path)) from e
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _name_the_path(e: OSError, path) -> None:
    """Raise ``e`` again naming ``path`` when the system named no file (a full disk does not)."""
    if e.filename is None and e.errno is not None:
        raise OSError(e.errno, e.strerror, str(path)) from e  # OSError(errno, ...) picks the subclass


def remove_temp_files(folder, names) -> list[Path]:
    """Delete the temporary files that ``atomic_write`` left in ``folder`` for files named
    ``names`` (glob patterns, e.g. "shard-*.npz") when a run was killed; returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = sorted({p for name in names for p in folder.glob(f".{name}.*.tmp")})
    for p in found:
        p.unlink(missing_ok=True)
    return found


def check_number(value, name: str, *, low=None, high=None, integer: bool = False,
                 above: bool = False, optional: bool = False):
    """Return ``value`` if it is a finite number in range, else raise one clear ValueError.

    name: how the user gave it (e.g. "--batch-size"); low / high: the allowed range, with
    ``above=True`` meaning strictly above ``low``; integer: whole numbers only; optional: None
    is allowed (the option was not given).
    """
    if value is None and optional:
        return value
    kind = "a whole number" if integer else "a number"
    if low is not None and (low > 0 or (low == 0 and above)):
        kind = "a positive " + kind[2:]
    if low is not None and high is not None:
        limits = f"in {'(' if above else '['}{low}, {high}]"
    elif low is not None:
        limits = f"{'>' if above else '>='} {low}"
    else:
        limits = "" if high is None else f"<= {high}"
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (not integer or float(value).is_integer())
    ok = ok and (low is None or (value > low if above else value >= low)) and (high is None or value <= high)
    if not ok:
        raise ValueError(f"{name} must be {kind} {limits}".rstrip() + f"; got {value!r}")
    return value


def check_out_folder(path, name: str = "--out") -> Path:
    """An output folder must be a folder (or not exist yet): a file there is an error, not a crash."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{name} {path} is a file, not a folder; give a folder (new or one "
                                 "this command made)")
    for parent in path.parents:  # a file where a parent folder should be
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{name} {path}: {parent} is a file, not a folder; choose another path")
            break
    return path


def read_image(path) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB (grey and RGBA images are converted)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} does not exist") from None
    except Exception as e:  # PIL raises several kinds for broken files
        raise ValueError(f"could not read image {path} ({type(e).__name__}: {e}); the file is truncated or not an image") from e


def read_mesh(path, *, y_up: bool = False, image_height: int | None = None):
    """A mesh file (.obj, .ply, .stl, .glb) -> (vertices (N, 3) float64, faces (M, 3) int64).

    ``y_up=True`` turns a y-up file into image space (y -> image_height - y, winding reversed).
    A missing, unreadable or face-less file raises an error that names it.
    """
    import trimesh

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"mesh file {path} does not exist")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a mesh file (.obj, .ply, .stl, .glb)")
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
        v, f = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    except Exception as e:  # trimesh raises many kinds for unreadable files
        raise ValueError(f"could not read mesh {path} ({type(e).__name__}: {e}); expected a triangle mesh (.obj or .ply)") from e
    if len(f) == 0 or v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"mesh {path} has no triangles; expected a triangle mesh")
    bad = ~np.isfinite(v).all(1)
    if bad.any():  # checked here, before any step spreads one NaN to every vertex (fitting, scaling)
        raise ValueError(f"mesh {path} has {int(bad.sum())} of {len(v)} vertices with NaN or infinite coordinates "
                         f"(the first: vertex {int(np.argmax(bad)) + 1}, counting from 1 as OBJ files do); fix them")
    if y_up:
        v = v * [1, -1, 1] + [0, image_height, 0]  # y_image = H - y; x and z keep their direction
        f = f[:, ::-1]  # mirroring y flips the winding; keep normals pointing out
    return v, f


def read_landmarks(path) -> np.ndarray:
    """68 landmarks from a .txt (68 rows of 2 or 3 numbers) or .npy file -> (68, 2|3) float64."""
    path = Path(path)
    try:
        a = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)
        a = np.asarray(a, np.float64)
    except Exception as e:
        raise ValueError(f"could not read landmarks {path} ({type(e).__name__}: {e})") from e
    if a.shape not in ((68, 2), (68, 3)) or not np.all(np.isfinite(a)):
        raise ValueError(f"landmarks {path} must be 68 finite rows of x y (or x y z); got shape {a.shape}")
    return a
