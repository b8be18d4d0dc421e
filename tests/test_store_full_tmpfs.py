"""The entry log on a real full filesystem (a small tmpfs): an entry held in memory while the
disk was full is written once when it frees, never twice (bench/soak.py found it twice)."""
from __future__ import annotations

import errno
import os
import subprocess

import pytest

from kiosk.store import EntryLog, read_entries

from .test_store_hardening import T0, entry


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MB tmpfs under tmp_path (root only; skipped where mounting is refused)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "fs"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if done.returncode:
        pytest.skip(f"mount refused: {done.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def fill(path) -> None:
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC


def test_an_entry_held_on_a_full_disk_is_written_once_when_it_frees(small_fs):
    log = EntryLog(small_fs / "log")
    log.start()
    try:
        assert log.append(entry(0, T0)) is True
        fill(small_fs / "ballast")
        # The journal's last page still has room for a few records; the first that does not
        # fit is cut short by the kernel and held in memory.
        held = None
        for i in range(1, 200):
            if log.append(entry(i, T0 + i)) is False:
                held = i
                break
        assert held is not None, "the full disk never refused a record"
        (small_fs / "ballast").unlink()
        assert log.retry() is True
        assert log.append(entry(500, T0 + 500)) is True
    finally:
        log.stop()
    ids = [d["id"] for d in read_entries(small_fs / "log")]
    assert len(ids) == len(set(ids)) == held + 2
