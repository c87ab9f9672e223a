"""How every command ends when something goes wrong: one line that names the problem and the fix,
a non-zero exit status, no traceback (unless --debug), and no file that was there before changed.

The helpers here are shared by the other tests/test_errors_*.py files:

    rc, out, err = run(["synth", "--n", "0"], capsys)   # `vrnkit synth --n 0`, in this process
    expect_failure(rc, err, ["--n", ">= 1"], before)     # status 2, one line, those words, files kept
"""
from __future__ import annotations

import errno
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from vrnkit import cli


# ---------------------------------------------------------------------------------------------
# Shared helpers

def run(argv, capsys) -> tuple[int, str, str]:
    """`vrnkit ARGV` in this process -> (exit status, stdout, stderr)."""
    capsys.readouterr()  # drop what earlier steps printed
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def snapshot(*roots) -> dict:
    """{path: sha256} of every file under ``roots``: what must still be there, byte for byte."""
    files = [p for root in map(Path, roots) if root.exists()
             for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def expect_failure(rc, err, words, before=None, *, status=2, usage=False) -> None:
    """The command failed cleanly: ``status``, no traceback, one line on stderr holding each of
    ``words`` (argparse's usage errors: its usage lines, then that line), and every file of
    ``before`` (a snapshot) still there, byte for byte."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == status, (rc, err)
    assert "Traceback" not in err, err
    assert lines and (lines[0].startswith("usage:") if usage else len(lines) == 1), err
    for word in words:
        assert word in lines[-1], (word, err)
    if before is not None:
        changed = [p for p, digest in before.items() if snapshot(p).get(p) != digest]
        assert not changed, f"files that were there before changed or disappeared: {changed}"


def deny_writes(monkeypatch, folder) -> None:
    """Writes under ``folder`` fail with "permission denied", as for a folder owned by another
    user (chmod does not stop root, who runs the tests in some containers)."""
    import tempfile

    real = tempfile.mkstemp
    folder = str(Path(folder).resolve())

    def mkstemp(*a, dir=None, **k):
        if dir is not None and str(Path(dir).resolve()).startswith(folder):
            raise PermissionError(errno.EACCES, "Permission denied", str(Path(dir) / k.get("prefix", "x")))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def disk_full(*a, **k):
    """Stands in for a writer on a full disk (the system names no file: vrnkit must)."""
    raise OSError(errno.ENOSPC, "No space left on device")


def fill_disk_after_one_shard(monkeypatch) -> None:
    """The first shard is written; the second finds the disk full."""
    from vrnkit.datasets import shards

    real, calls = shards._savez, []

    def savez(tmp, arrays):
        calls.append(tmp)
        return real(tmp, arrays) if len(calls) == 1 else disk_full()

    monkeypatch.setattr(shards, "_savez", savez)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny training runs on one thread: as fast as two for these sizes, and not slowed down
    by another process on the same cores (two threads then wait for each other)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# What an OSError says, for each cause

@pytest.mark.parametrize("code, words", [
    (errno.EACCES, ["permission denied", "choose a folder you can write to"]),
    (errno.EPERM, ["permission denied"]),
    (errno.EROFS, ["read-only"]),
    (errno.ENOSPC, ["disk is full", "free some space"]),
    (errno.ENOTDIR, ["a file is where a folder is expected"]),
    (errno.EEXIST, ["is a file where a folder is expected"]),
    (errno.EISDIR, ["is a folder where a file is expected"]),
    (errno.ENOENT, ["does not exist"]),
    (errno.ENAMETOOLONG, ["too long"]),
])
def test_os_errors_name_the_path_and_the_fix(code, words):
    line = cli.describe_error(OSError(code, "system text", "/some/where/file.npz"))
    assert "/some/where/file.npz" in line and "\n" not in line
    for word in words:
        assert word in line


@pytest.mark.parametrize("error, words", [
    (MemoryError(), ["out of memory", "smaller"]),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: out of memory"), ["out of memory", "--batch-size"]),
    (ValueError("first line\nsecond line"), ["first line second line"]),
])
def test_other_errors_are_one_line(error, words):
    line = cli.describe_error(error)
    assert "\n" not in line and all(w in line for w in words)


# ---------------------------------------------------------------------------------------------
# --debug, Ctrl-C, and commands started as `python -m`

@pytest.mark.parametrize("argv", [["--debug", "synth", "--n", "0"], ["synth", "--n", "0", "--debug"]])
def test_debug_shows_the_traceback(argv):
    with pytest.raises(ValueError, match="--n"):
        cli.main(argv)


@pytest.mark.parametrize("command, resumable", [("synth", True), ("voxelise", False)])
def test_ctrl_c_is_one_line_and_status_130(monkeypatch, capsys, tmp_path, command, resumable):
    def interrupted(args):
        raise KeyboardInterrupt

    parser = cli.build_parser()
    args = parser.parse_args([command, str(tmp_path)] if command == "voxelise" else [command])
    rc = cli.run_command(interrupted, args, name=f"vrnkit {command}", resumable=command in cli.RESUMABLE)
    err = capsys.readouterr().err
    expect_failure(rc, err, ["interrupted"], status=130)
    assert ("run the same command again to resume" in err) == resumable


def test_a_bug_keeps_its_traceback(capsys):
    def bug(args):
        raise KeyError("a vrnkit bug, not a user error")

    with pytest.raises(KeyError):
        cli.run_command(bug, None, name="vrnkit test")


@pytest.mark.parametrize("argv, words", [
    (["-m", "vrnkit", "synth", "--n", "0"], ["vrnkit synth: error:", "--n", ">= 1"]),
    (["-m", "vrnkit", "train", "--batch-size", "0"], ["vrnkit train: error:", "--batch-size", "[1,"]),
])
def test_python_m_commands_end_in_one_line(tmp_path, argv, words):
    r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    expect_failure(r.returncode, r.stderr, words)
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("argv, words", [
    (["/nonexistent-run", "--name", "x"], ["model.pt", "does not exist"]),
    (["RUN", "--name", "x", "--eval", "/nonexistent-test"], ["no test folder", "vrnkit synth"]),
    (["RUN", "--name", "x", "--n", "0"], ["--n", "[1, 1000000]", "got 0"]),
])
def test_pretrained_export_errors_are_one_line(argv, words, tmp_path, monkeypatch, capsys):
    """`vrnkit export` checks its folders before it writes any weights."""
    from vrnkit import pretrained

    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path / "weights")
    run = tmp_path / "run"
    run.mkdir()
    argv = [str(run) if a == "RUN" else a for a in argv]
    assert cli.main(["export", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err
    assert not (tmp_path / "weights").exists()
