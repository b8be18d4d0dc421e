"""A private PostgreSQL server on 127.0.0.1 from Debian's binaries, for the tests and
bench/sync.py: `with private_postgres() as new_database: url = new_database()`."""
from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import free_port

__all__ = ["PostgresMissing", "free_port", "private_postgres"]


class PostgresMissing(RuntimeError):
    """PostgreSQL's server binaries are not installed (Debian's postgresql package)."""


@contextlib.contextmanager
def private_postgres(durable: bool = False):
    """Yield a function that creates a fresh database and returns its SQLAlchemy URL.
    `durable=False` turns fsync off (tests); a benchmark keeps PostgreSQL's default (on)."""
    initdbs = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not initdbs:
        raise PostgresMissing("PostgreSQL is not installed (make test installs Debian's postgresql)")
    bindir = initdbs[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="kiosk-pg-"))
    as_postgres = []
    if os.getuid() == 0:                      # PostgreSQL refuses to run as root
        shutil.chown(folder, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    run = lambda *cmd: subprocess.run(as_postgres + list(cmd), check=True, capture_output=True, timeout=120)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "kiosk", "--no-sync")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1" + ("" if durable else " -c fsync=off")
    run(str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-w", "start", "-o", options)
    counter = itertools.count()

    def new_database() -> str:
        import sqlalchemy

        name = f"central_{next(counter)}"
        admin = sqlalchemy.create_engine(f"postgresql+psycopg://kiosk@127.0.0.1:{port}/postgres",
                                         isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
        admin.dispose()
        return f"postgresql+psycopg://kiosk@127.0.0.1:{port}/{name}"
    try:
        yield new_database
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "stop")
        shutil.rmtree(folder, ignore_errors=True)
