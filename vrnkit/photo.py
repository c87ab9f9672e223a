"""Reading your own photos: any common file or array -> an upright (H, W, 3) uint8 RGB image.

Photos from phones and cameras come in many forms; :func:`read_photo` turns each into the one
form the rest of vrnkit uses:

* EXIF orientation is applied, so a portrait shot that the camera stored sideways is upright;
* grey, palette, CMYK, YCbCr and 1-bit images become RGB;
* transparent images (RGBA, grey + alpha, palette with transparency) are composited on white
  (dropping alpha instead would show whatever colour hides under transparent pixels, often black);
* 16-bit images are scaled 0..65535 -> 0..255 (Pillow's own ``convert`` clips them, which turns
  most of a 16-bit photo white);
* arrays: uint8, uint16, bool, other integers within 0..255 or 0..65535, and floats in [0, 1].

A very large photo is detected on a smaller copy (:func:`downscale_for_detection`); a huge JPEG
can also be read at a reduced size directly (``read_photo(path, max_side=...)``), which decodes
it at 1/2, 1/4 or 1/8 size and never holds the full-size pixels in memory.

Coordinates follow :mod:`vrnkit.geometry`: x right, y down, in pixels, pixel (i, j) covering
[i, i+1) x [j, j+1). Shrinking by an integer factor k (each small pixel the mean of a k x k
block) maps a point x of the photo to x / k exactly.

>>> import numpy as np
>>> read_photo(np.full((20, 30), 65535, np.uint16))[0, 0]      # 16-bit white stays 255, grey -> RGB
array([255, 255, 255], dtype=uint8)
>>> read_photo(np.zeros((20, 30, 4), np.uint8))[0, 0]         # fully transparent -> white
array([255, 255, 255], dtype=uint8)
>>> small, scale = downscale_for_detection(np.zeros((8000, 6000, 3), np.uint8), max_side=1024)
>>> small.shape, scale
((1000, 750, 3), 0.125)
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

MIN_SIDE = 16  # smaller photos cannot hold a detectable face
DETECT_MAX_SIDE = 1024  # detection runs on a copy at most this long (HOG time grows with pixels)
FILE_TYPES = "a JPEG, PNG, TIFF, BMP or WebP photo"
EXIF_ORIENTATION = 0x0112  # the EXIF tag that says how to turn the stored pixels upright


# ---------------------------------------------------------------------------------------------
# Reading

def read_photo(source, *, max_side: int | None = None) -> np.ndarray:
    """A photo file or an image array -> (H, W, 3) uint8 RGB, upright.

    source: a path (str or Path) or an array (H, W), (H, W, 1|2|3|4) of uint8, uint16, bool,
        integers in 0..255 / 0..65535 or floats in [0, 1]. Two channels are grey + alpha, four
        RGBA; alpha is composited on white. An (H, W, 3) uint8 array is returned as it is.
    max_side: if given, a larger photo is shrunk by an integer factor k (k x k block means) so
        its longer side is at most max_side; JPEGs are decoded at reduced size directly. Points
        found on the result are in its own pixels (multiply by k for the file's pixels).

    Raises ValueError, one line naming the file and the fix, for a missing file, a file that is
    not an image, a truncated image, unsupported values, or a photo under 16 px on a side.

    >>> import numpy as np
    >>> read_photo(np.ones((16, 16, 3), np.float32) * 0.5)[0, 0]
    array([128, 128, 128], dtype=uint8)
    >>> read_photo(np.ones((4, 4), np.uint8))
    Traceback (most recent call last):
    ValueError: image array is 4x4 px; vrnkit needs a photo at least 16 px on each side
    """
    if isinstance(source, (str, os.PathLike)):
        rgb, name = _read_file(Path(source), max_side), str(source)
    else:
        rgb, name = _array_to_rgb(np.asarray(source), "image array"), "image array"
        if max_side is not None:
            rgb = downscale_for_detection(rgb, max_side=max_side)[0]
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"{name} is {w}x{h} px; vrnkit needs a photo at least {MIN_SIDE} px on each side")
    return rgb


def _read_file(path: Path, max_side: int | None) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.is_file():
        raise ValueError(f"photo {path} does not exist; check the path (expected {FILE_TYPES})")
    try:
        with Image.open(path) as im:
            if max_side is not None and im.format == "JPEG":
                # The JPEG decoder can skip detail and decode at 1/2, 1/4 or 1/8 size.
                im.draft(None, _target_size(im.size, max_side))
            if im.getexif().get(EXIF_ORIENTATION, 1) != 1:  # only then: transposing copies
                im = ImageOps.exif_transpose(im)
            pixels = _pil_to_array(im)  # decodes, so a truncated file fails here
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image that Pillow can read; expected {FILE_TYPES}") from None
    except (OSError, SyntaxError) as e:  # Pillow's errors for truncated and corrupt files
        raise ValueError(f"photo {path} is truncated or corrupt ({e}); re-export or copy the file again") from None
    del im  # frees Pillow's copy of the pixels before we make ours
    rgb = _array_to_rgb(pixels, f"photo {path}")  # Pillow's arrays are read-only: copy them
    if not rgb.flags.writeable:
        rgb = rgb.copy()
    if max_side is not None:
        rgb = downscale_for_detection(rgb, max_side=max_side)[0]
    return rgb


def _target_size(size, max_side: int) -> tuple[int, int]:
    """The smallest (w, h) that still needs shrinking to fit max_side (a lower bound for draft)."""
    f = min(1.0, max_side / max(size))
    return max(1, math.ceil(size[0] * f)), max(1, math.ceil(size[1] * f))


def _pil_to_array(im) -> np.ndarray:
    """A Pillow image -> an array that :func:`_array_to_rgb` understands (keeps 16-bit values)."""
    if im.mode in ("P", "PA", "La", "RGBa"):
        im = im.convert("RGBA")  # a palette may carry transparency; premultiplied -> plain
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode not in ("L", "LA", "RGB", "RGBA", "F") and not im.mode.startswith("I"):
        im = im.convert("RGB")  # CMYK, YCbCr, HSV, RGBX, LAB...
    return np.asarray(im)


def _array_to_rgb(a: np.ndarray, name: str) -> np.ndarray:
    """(H, W) or (H, W, 1|2|3|4) array of any supported dtype -> (H, W, 3) uint8 RGB."""
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"{name} has shape {a.shape}; expected (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA")
    if a.dtype == np.uint8 and a.shape[2] == 3:
        return np.ascontiguousarray(a)  # the common case: nothing to convert
    unit = _to_unit(a, name)  # float32 in [0, 1]
    if unit.shape[2] in (2, 4):  # composite on white: out = colour * alpha + white * (1 - alpha)
        alpha = unit[:, :, -1:]
        unit = unit[:, :, :-1] * alpha + (1.0 - alpha)
    if unit.shape[2] == 1:
        unit = np.repeat(unit, 3, axis=2)
    return np.round(unit * 255.0).astype(np.uint8)


def _to_unit(a: np.ndarray, name: str) -> np.ndarray:
    """Scale an integer, bool or float array to float32 in [0, 1], by its dtype's range."""
    if a.dtype == bool:
        return a.astype(np.float32)
    if a.dtype.kind == "u" and a.dtype.itemsize in (1, 2):  # uint8, uint16 (either byte order)
        return a.astype(np.float32) / (255.0 if a.dtype.itemsize == 1 else 65535.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    # Other integers (Pillow's 32-bit mode "I", int64 arrays) carry no bit depth: read by range.
    if np.issubdtype(a.dtype, np.integer):
        if lo >= 0 and hi <= 255:
            return a.astype(np.float32) / 255.0
        if lo >= 0 and hi <= 65535:
            return a.astype(np.float32) / 65535.0
        raise ValueError(f"{name} holds integers in [{lo:g}, {hi:g}]; expected 0..255 or 0..65535")
    if np.issubdtype(a.dtype, np.floating):
        if not (np.isfinite(lo) and np.isfinite(hi) and lo >= -1e-6 and hi <= 1 + 1e-6):
            raise ValueError(f"{name} holds floats in [{lo:g}, {hi:g}]; expected [0, 1] (divide 0..255 values by 255)")
        return np.clip(a.astype(np.float32), 0.0, 1.0)
    raise ValueError(f"{name} has dtype {a.dtype}; expected uint8, uint16 or float in [0, 1]")


# ---------------------------------------------------------------------------------------------
# Shrinking for detection

def downscale_for_detection(image, *, max_side: int = DETECT_MAX_SIDE) -> tuple[np.ndarray, float]:
    """A copy at most ``max_side`` long for the face detector, and its scale.

    image: (H, W, C) uint8. Returns (small, scale): small is (H // k, W // k, C) uint8, each
    pixel the mean of a k x k block with k = ceil(max(H, W) / max_side), and scale = 1 / k, so
    a point p of the image is at p * scale in small (exactly, in vrnkit's pixel convention).
    An image that already fits is returned as it is, with scale 1.0. The k x k sums are added
    up one block offset at a time, so the only extra memory is the small image itself.

    >>> import numpy as np
    >>> small, scale = downscale_for_detection(np.arange(16, dtype=np.uint8).reshape(4, 4, 1), max_side=2)
    >>> small[:, :, 0], scale
    (array([[ 2,  4],
           [10, 12]], dtype=uint8), 0.5)
    """
    image = np.asarray(image)
    if max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels; got {max_side}")
    k = math.ceil(max(image.shape[:2]) / max_side)
    if k <= 1:
        return image, 1.0
    h, w = image.shape[0] // k, image.shape[1] // k
    total = np.zeros((h, w) + image.shape[2:], np.float32)
    for dy in range(k):
        for dx in range(k):
            total += image[dy:h * k:k, dx:w * k:k]  # one pixel of every k x k block
    return np.round(total / (k * k)).astype(np.uint8), 1.0 / k


# ---------------------------------------------------------------------------------------------
# Synthetic test photos (used by the tests and benchmarks/bench_detect.py)

BACKGROUNDS = ("coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "gravel", "brick")


def background_photo(index: int = 0, *, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A photo-like background without people: one of scikit-image's bundled pictures
    (``BACKGROUNDS``, cycled by index), resized to ``size`` = (H, W). Returns (H, W, 3) uint8.

    >>> background_photo(1, size=(48, 64)).shape
    (48, 64, 3)
    """
    import skimage.data
    from PIL import Image

    rgb = read_photo(getattr(skimage.data, BACKGROUNDS[index % len(BACKGROUNDS)])())
    return np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.BILINEAR))


def paste_image(background, image, *, xy: tuple[float, float], scale: float = 1.0,
                landmarks=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Paste ``image`` scaled by ``scale`` into a copy of ``background``, its top-left corner
    at integer pixel ``xy`` = (x, y); for building test photos with a known face position.

    background: (H, W, 3) uint8; image: (h, w, 3) uint8; landmarks: None or (N, 2|3) points of
    image. Returns (photo (H, W, 3) uint8, landmarks moved into the photo: p * scale + xy, with
    z, if any, multiplied by scale). The scaled image must fit inside the background.

    >>> import numpy as np
    >>> photo, lm = paste_image(np.zeros((40, 40, 3), np.uint8), np.ones((10, 10, 3), np.uint8),
    ...                         xy=(5, 8), scale=2.0, landmarks=[[0.0, 0.0], [10.0, 10.0]])
    >>> lm
    array([[ 5.,  8.],
           [25., 28.]])
    """
    from PIL import Image

    x, y = int(xy[0]), int(xy[1])
    w, h = round(image.shape[1] * scale), round(image.shape[0] * scale)
    photo = np.array(background, np.uint8, copy=True)
    if x < 0 or y < 0 or x + w > photo.shape[1] or y + h > photo.shape[0]:
        raise ValueError(f"a {w}x{h} image at ({x}, {y}) does not fit in a {photo.shape[1]}x{photo.shape[0]} background")
    # Resizing maps the image's extent [0, w0) onto [0, w): p -> p * (w / w0), about p * scale.
    photo[y:y + h, x:x + w] = np.asarray(Image.fromarray(image).resize((w, h), Image.BICUBIC))
    if landmarks is None:
        return photo, None
    lm = np.array(landmarks, np.float64)
    lm[:, 0] = lm[:, 0] * (w / image.shape[1]) + x
    lm[:, 1] = lm[:, 1] * (h / image.shape[0]) + y
    if lm.shape[1] == 3:
        lm[:, 2] *= scale
    return photo, lm
