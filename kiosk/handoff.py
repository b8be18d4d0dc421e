"""A queue between a test (or demo driver) and a kiosk thread, with a way to wait until
everything handed over has been handled. Used by the replay camera and replay scanner."""
from __future__ import annotations

import queue
import threading


class Handoff:
    def __init__(self):
        self._queue: queue.Queue = queue.Queue()
        self._pending = 0
        self._taken = 0
        self._done = threading.Condition()

    def put(self, item, times: int = 1) -> None:
        with self._done:
            self._pending += times
        for _ in range(times):
            self._queue.put(item)

    def take(self, timeout: float):
        """Next item, or None after `timeout`. Calling it again marks the last one handled:
        the consumer thread does all its work on an item before it comes back for more."""
        self.handled()
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        self._taken = 1
        return item

    def handled(self) -> None:
        with self._done:
            self._pending -= self._taken
            self._taken = 0
            self._done.notify_all()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        with self._done:
            return self._done.wait_for(lambda: self._pending == 0, timeout)
