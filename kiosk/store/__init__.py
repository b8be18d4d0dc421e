"""The kiosk's entry log (tinydb on a crash-safe journal) and its outbox state."""
from .log import EntryLog, read_entries
from .storage import DurableStorage

__all__ = ["EntryLog", "DurableStorage", "read_entries"]
