"""The kiosk's entry log (tinydb on a crash-safe journal) and its outbox state."""
from .days import read_entries
from .log import EntryLog
from .storage import DurableStorage

__all__ = ["EntryLog", "DurableStorage", "read_entries"]
