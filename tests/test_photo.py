"""Reading photos: every common file kind becomes an upright (H, W, 3) uint8 RGB array."""
import doctest
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from vrnkit import photo
from vrnkit.photo import downscale_for_detection, paste_image, read_photo


@pytest.fixture(scope="module")
def chelsea():
    return skimage.data.chelsea()  # (300, 451, 3) uint8: not symmetric, so rotations show


def save(tmp_path, name, image, **kw):
    path = tmp_path / name
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(path, **kw)
    return path


def test_docstring_examples_run():
    assert doctest.testmod(photo).failed == 0


def test_rgb_file_round_trips(tmp_path, chelsea):
    out = read_photo(save(tmp_path, "cat.png", chelsea))
    assert out.dtype == np.uint8 and out.shape == chelsea.shape and out.flags.writeable
    assert np.array_equal(out, chelsea)


def test_16_bit_png_and_tiff_keep_their_values_instead_of_turning_white(tmp_path):
    import tifffile  # a dependency of scikit-image

    ramp = np.linspace(0, 65535, 32 * 48).reshape(32, 48).astype(np.uint16)
    expected = np.round(ramp / 257.0)  # 65535 -> 255
    grey = read_photo(save(tmp_path, "ramp16.png", ramp))  # Pillow opens it as mode "I;16"
    assert np.abs(grey[:, :, 0] - expected).max() <= 1
    assert (grey == 255).mean() < 0.01  # Pillow's own convert("RGB") clips: ~99% white
    dark = read_photo(save(tmp_path, "dark16.png", np.full((20, 20), 1000, np.uint16)))
    assert np.all(dark == 4)  # 1000 / 257: a dark 16-bit photo is not taken for 8-bit
    rgb16 = np.stack([ramp, ramp // 2, 65535 - ramp], axis=-1)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16, photometric="rgb")
    rgb = read_photo(tmp_path / "rgb16.tif")
    assert np.abs(rgb - np.round(rgb16 / 257.0)).max() <= 1


def test_grey_palette_cmyk_and_transparent_files(tmp_path, chelsea):
    im = Image.fromarray(chelsea)
    grey = read_photo(save(tmp_path, "grey.png", im.convert("L")))
    assert np.all(grey[:, :, 0] == grey[:, :, 1]) and np.all(grey[:, :, 1] == grey[:, :, 2])
    palette = read_photo(save(tmp_path, "palette.png", im.convert("P", palette=Image.Palette.ADAPTIVE)))
    assert np.abs(palette.astype(int) - chelsea).mean() < 8  # 256 colours approximate the photo
    cmyk = read_photo(save(tmp_path, "cmyk.jpg", im.convert("CMYK"), quality=95))
    assert np.abs(cmyk.astype(int) - chelsea).mean() < 8
    rgba = np.dstack([chelsea, np.zeros(chelsea.shape[:2], np.uint8)])
    rgba[:150, :, 3] = 255  # top half opaque, bottom half transparent
    out = read_photo(save(tmp_path, "rgba.png", rgba))
    assert np.array_equal(out[:150], chelsea[:150]) and np.all(out[150:] == 255)  # on white
    la = read_photo(save(tmp_path, "la.png", Image.fromarray(rgba).convert("LA")))
    assert np.all(la[150:] == 255) and la.shape == chelsea.shape


@pytest.mark.parametrize("orientation, turn", [(6, 1), (8, -1)])
def test_exif_orientation_is_applied(tmp_path, chelsea, orientation, turn):
    # Orientation 6 means "turn 90 deg clockwise to view", so the camera stored the upright
    # picture turned 90 deg anticlockwise (np.rot90 k=1); 8 is the opposite.
    stored = np.ascontiguousarray(np.rot90(chelsea, k=turn))
    exif = Image.Exif()
    exif[photo.EXIF_ORIENTATION] = orientation
    out = read_photo(save(tmp_path, "sideways.jpg", stored, exif=exif, quality=95))
    assert out.shape == chelsea.shape
    assert np.abs(out.astype(int) - chelsea).mean() < 4  # upright (JPEG noise only)
    assert np.abs(out.astype(int) - np.rot90(chelsea, 2)).mean() > 20  # and not upside down


def test_arrays_of_other_types():
    assert read_photo(np.full((20, 20), 65535, np.uint16))[0, 0].tolist() == [255, 255, 255]
    assert read_photo(np.full((20, 20), 32896, np.uint16))[0, 0].tolist() == [128, 128, 128]
    assert read_photo(np.full((20, 20, 3), 0.5))[0, 0].tolist() == [128, 128, 128]
    assert read_photo(np.ones((20, 20), bool))[0, 0].tolist() == [255, 255, 255]
    with pytest.raises(ValueError, match=r"floats in \[0, 255\]; expected \[0, 1\]"):
        read_photo(np.linspace(0, 255, 20 * 20 * 3).reshape(20, 20, 3))
    with pytest.raises(ValueError, match=r"shape \(20, 20, 5\)"):
        read_photo(np.zeros((20, 20, 5), np.uint8))


def one_line_error(source, *, match):
    with pytest.raises(ValueError, match=match) as e:
        read_photo(source)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_clear_errors_name_the_file_and_the_fix(tmp_path, chelsea):
    tiny = save(tmp_path, "tiny.png", np.zeros((1, 1, 3), np.uint8))
    assert "tiny.png" in one_line_error(tiny, match="1x1 px.*at least 16 px")
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo\n")
    assert "notes.jpg" in one_line_error(text, match="not an image.*expected a JPEG, PNG")
    whole = save(tmp_path, "whole.jpg", chelsea).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole[: len(whole) // 2])
    assert "cut.jpg" in one_line_error(cut, match="truncated or corrupt")
    one_line_error(tmp_path / "missing.jpg", match="does not exist; check the path")


def test_downscaling_maps_points_exactly():
    image = np.zeros((800, 1200, 3), np.uint8)
    image[400:408, 600:608] = 255  # an 8x8 block at x 600..608, y 400..408
    small, scale = downscale_for_detection(image, max_side=300)
    assert small.shape == (200, 300, 3) and scale == 0.25
    ys, xs = np.nonzero(small[:, :, 0] == 255)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (150, 152, 100, 102)  # block * 0.25
    same, one = downscale_for_detection(small, max_side=300)
    assert same is small and one == 1.0


def test_a_huge_jpeg_can_be_read_small_without_holding_the_full_photo(tmp_path):
    # 8000 x 8000 x 3 = 192 MB of pixels in full; draft decoding reads it at 1/8 size.
    big = np.full((8000, 8000, 3), 180, np.uint8)
    big[4000:4800, 2400:3200] = 20
    path = save(tmp_path, "huge.jpg", big, quality=80)
    del big
    code = ("from vrnkit.photo import read_photo; "
            f"a = read_photo(r'{path}', max_side=1024); print(a.shape, a[4400 // 8, 2800 // 8].tolist())")
    out = run_measuring_memory(code).split()
    assert " ".join(out[:3]) == "(1000, 1000, 3)"
    assert abs(int(out[3].strip("[,")) - 20) < 10  # the dark square, at its place / 8
    peak_mb = float(out[-1])
    assert peak_mb < 180, f"reading at 1/8 size took {peak_mb:.0f} MB at peak"


def run_measuring_memory(code: str) -> str:
    """Run Python code in a fresh process; its output, then its peak resident memory in MB.

    The peak is read from /proc (VmHWM): unlike ru_maxrss, it is not inherited from the
    forking pytest process."""
    if sys.platform != "linux":
        pytest.skip("peak memory is read from Linux's /proc")
    code += "; print([int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_paste_image_moves_landmarks_with_the_image():
    background = np.zeros((100, 100, 3), np.uint8)
    patch = np.zeros((20, 20, 3), np.uint8)
    patch[5:7, 10:12] = 255  # a 2x2 dot centred at (11, 6)
    out, lm = paste_image(background, patch, xy=(30, 40), scale=2.0, landmarks=[[11.0, 6.0, 3.0]])
    assert lm.tolist() == [[52.0, 52.0, 6.0]]
    ys, xs = np.nonzero(out[:, :, 0] > 128)
    assert abs(xs.mean() + 0.5 - 52) < 0.5 and abs(ys.mean() + 0.5 - 52) < 0.5
    with pytest.raises(ValueError, match="does not fit"):
        paste_image(background, patch, xy=(90, 0))
