"""The contact-tracing audit log: one JSON line per query, appended and fsynced, kept."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

__all__ = ["AUDIT_FILE", "append_audit", "read_audit"]

AUDIT_FILE = "trace-audit.jsonl"
# One process may answer queries on several threads; O_APPEND keeps the lines whole between
# processes (the API and `kiosk trace`), the lock between threads.
_LOCK = threading.Lock()


def append_audit(data_dir: str | Path, record: dict) -> None:
    """Append one query (who, at, kind, for, reason, listed, from, to) and fsync it.

    :raises OSError: when the disk refuses; the caller answers nothing then.
    """
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
    with _LOCK:
        fd = os.open(Path(data_dir) / AUDIT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def read_audit(data_dir: str | Path, limit: int) -> list[dict]:
    """The latest `limit` queries, newest first (a torn last line is skipped)."""
    try:
        lines = (Path(data_dir) / AUDIT_FILE).read_bytes().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in reversed(lines):
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
        if len(out) >= limit:
            break
    return out
