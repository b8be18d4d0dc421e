"""Durable file writes: what a power cut on an SD card leaves is the old file or the new one."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir", "write_atomically"]


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new file in the folder `path` durable: POSIX makes a rename durable
    only once its folder is fsync'ed, not the file alone."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str | Path, data: bytes, tmp: str | Path | None = None) -> None:
    """Replace the file at `path` with `data`: a temp file beside it, fsync'ed, renamed over
    it, then its folder fsync'ed. A reader, or the next boot after a power cut, sees the old
    content or the new, never half of one.

    :param path: the file to replace (its folder must exist).
    :param bytes data: the whole new content.
    :param tmp: the temp file, in the same folder (default: `path` + ".tmp"); a name of its
        own for each process that may write the same file at the same time.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp") if tmp is None else Path(tmp)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
