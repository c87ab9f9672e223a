"""Writing files so that nothing is ever half written: one helper that every module uses.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
>>> atomic_write(path, lambda tmp: pathlib.Path(tmp).write_text("hello"))
>>> path.read_text()
'hello'
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path, write, *, parents: bool = True) -> None:
    """Call ``write(tmp_path)``, flush the file to disk, then rename it to ``path``.

    The temporary file sits in the same folder (so the rename is atomic) and is removed if
    ``write`` fails: a reader sees the old file or the new one, never half of one.
    ``parents``: create missing folders (else a missing folder raises FileNotFoundError).
    """
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
