"""`vrnkit reconstruct` and `vrnkit demo` with bad command-line input: one line naming the
problem, before any model runs. (Bad photos themselves: tests/test_reconstruct.py.)"""
from __future__ import annotations

import pytest
from PIL import Image

from test_errors_cli import expect_failure, run, snapshot


@pytest.fixture
def place(tmp_path):
    """A folder with a photo, an empty folder, a folder of non-photos, a file and a bad .pt."""
    Image.new("RGB", (32, 32), (90, 60, 40)).save(tmp_path / "photo.png")
    Image.new("RGB", (32, 32)).save(tmp_path / "second.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "notes.txt").write_text("not a photo")
    (tmp_path / "a-file").write_text("a file")
    (tmp_path / "broken.pt").write_text("not a checkpoint")
    return tmp_path


RECONSTRUCT = [
    (["{t}/missing.jpg"], ["missing.jpg", "does not exist"]),
    (["{t}/empty"], ["no photos", "empty", "give photo files"]),
    (["{t}/texts"], ["no photos", "texts"]),
    (["{t}/photo.png", "--smooth", "-1"], ["--smooth", "[0, 20]", "got -1.0"]),
    (["{t}/photo.png", "--smooth", "nan"], ["--smooth", "got nan"]),
    (["{t}/photo.png", "--smooth", "100"], ["--smooth", "got 100.0"]),
    (["{t}/photo.png", "--model", "vrn-huge"], ["unknown model 'vrn-huge'", "vrn-guided-192"]),
    (["{t}/photo.png", "--model", "{t}/missing.pt"], ["missing.pt", "does not exist"]),
    (["{t}/photo.png", "--model", "{t}/broken.pt"], ["broken.pt", "truncated or corrupt"]),
    (["{t}/photo.png", "-o", "{t}/a-file"], ["-o/--out", "a-file", "is a file, not a folder"]),
    (["{t}/photo.png", "{t}/second.png", "--landmarks", "{t}/lm.txt"], ["--landmarks belongs to one photo"]),
    (["{t}/photo.png", "--landmarks", "{t}/lm.txt"], ["lm.txt", "does not exist"]),
    (["{t}/photo.png", "--device", "bogus"], ["--device", "'bogus' is not a device"]),
]

DEMO = [
    (["--device", "bogus"], ["--device", "'bogus' is not a device"]),
    (["--index", "-1"], ["--index", "[0, 1000000]", "got -1"]),
    (["--out", "{t}/a-file"], ["--out", "a-file", "is a file, not a folder"]),
    (["--model", "vrn-huge"], ["unknown model 'vrn-huge'"]),
    (["--model", "{t}/missing.pt"], ["missing.pt", "does not exist"]),
    (["--model", "{t}/broken.pt"], ["broken.pt", "truncated or corrupt"]),
]

CASES = [("reconstruct", a, w) for a, w in RECONSTRUCT] + [("demo", a, w) for a, w in DEMO]


@pytest.mark.parametrize("command, args, words", CASES, ids=[f"{c} {' '.join(a)}" for c, a, _ in CASES])
def test_bad_input_is_one_line_and_writes_nothing(place, capsys, command, args, words):
    args = [a.format(t=place) for a in args]
    out = ["-o", place / "out"] if command == "reconstruct" and "-o" not in args else []
    out = ["--out", place / "out"] if command == "demo" and "--out" not in args else out
    before = snapshot(place)
    rc, _, err = run([command, *args, *out, *(["--no-progress"] if command == "reconstruct" else [])], capsys)
    expect_failure(rc, err, [w.format(t=place) for w in words], before)
    assert snapshot(place) == before and not (place / "out").exists()


@pytest.mark.parametrize("argv, words", [
    (["reconstruct"], ["the following arguments are required"]),
    (["reconstruct", "x.jpg", "--smooth", "much"], ["--smooth", "invalid float value"]),
    (["reconstruct", "x.jpg", "--detector", "eyes"], ["--detector", "invalid choice"]),
    (["demo", "--index", "eleven"], ["--index", "invalid int value"]),
    (["demo", "--mode", "fast"], ["unrecognized arguments: --mode"]),  # demo has no modes: it runs the shipped models
])
def test_unparsable_options_give_the_usage(capsys, argv, words):
    rc, _, err = run(argv, capsys)
    expect_failure(rc, err, words, usage=True)
