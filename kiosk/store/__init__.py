"""The kiosk's entry log (tinydb on a crash-safe journal) and its outbox state."""
from .log import EntryLog
from .storage import DurableStorage

__all__ = ["EntryLog", "DurableStorage"]
