"""Health declarations filled in on the kiosk's form, kept durably beside the entries."""
from __future__ import annotations

from tinydb import where

from .days import copies
from .storage import DurableDB

FOLDER = "declarations"


def read_declarations(log_path) -> list[dict]:
    """Every declaration of a log folder, oldest first, read-only (beside a running kiosk)."""
    from pathlib import Path

    folder = Path(log_path) / FOLDER
    if not folder.is_dir():
        return []
    db = DurableDB(folder, read_only=True)
    try:
        return sorted((dict(d) for d in db.table("declarations").all()), key=lambda d: d["time"])
    finally:
        db.close()


class Declarations:
    """The form's declarations in their own database; only the writer thread may use it.

    :param DurableDB db: the database (the log folder's `declarations` sub-folder).
    """

    def __init__(self, db: DurableDB):
        self.db = db
        self.table = db.table("declarations")

    def add(self, record: dict) -> None:
        """Keep a declaration (id, time, name, id_hash, flags, contact details)."""
        self.table.insert(record)

    def find(self, id_hash: str, since: str) -> dict | None:
        """The latest declaration for this keyed ID hash made at or after `since` (ISO UTC)."""
        found = self.table.search((where("id_hash") == id_hash) & (where("time") >= since))
        return copies([max(found, key=lambda d: d["time"])])[0] if found else None

    def since(self, since: str) -> list[dict]:
        """The declarations made at or after `since` (ISO UTC), oldest first."""
        return copies(sorted(self.table.search(where("time") >= since), key=lambda d: d["time"]))

    def purge(self, cutoff: str) -> None:
        """Remove the declarations made before `cutoff` (ISO UTC)."""
        self.table.remove(where("time") < cutoff)
