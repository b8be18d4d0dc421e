"""Entries the disk would not take, held in memory in a compact form until it does."""
from __future__ import annotations

import orjson

HOLD_BYTES = 16 * 2**20     # about 30,000 entries (an entry is ~520 bytes of JSON): a busy day


class Hold:
    """Entries kept as their JSON bytes, in the order they came, up to a size.

    :param int max_bytes: the most JSON bytes held; an entry past it is refused.
    """

    def __init__(self, max_bytes: int = HOLD_BYTES):
        self.max_bytes = max_bytes
        self.size = 0
        self._docs: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, entry_id: str) -> bool:
        return entry_id in self._docs

    def add(self, doc: dict) -> bool:
        """Hold `doc`; False (nothing held) if it would pass `max_bytes`."""
        data = orjson.dumps(doc)
        if self.size + len(data) > self.max_bytes:
            return False
        self._docs[doc["id"]] = data
        self.size += len(data)
        return True

    def get(self, entry_id: str) -> dict:
        """A copy of a held entry."""
        return orjson.loads(self._docs[entry_id])

    def docs(self) -> list[dict]:
        """Copies of every held entry, oldest held first."""
        return [orjson.loads(d) for d in self._docs.values()]

    def update(self, entry_id: str, fields: dict) -> None:
        """Set top-level fields of a held entry."""
        data = orjson.dumps({**orjson.loads(self._docs[entry_id]), **fields})
        self.size += len(data) - len(self._docs[entry_id])
        self._docs[entry_id] = data

    def remove(self, ids) -> None:
        """Forget entries (written to disk at last)."""
        for entry_id in ids:
            self.size -= len(self._docs.pop(entry_id))
