"""A sliding-window limit on requests per client address (one per app, kept in app.extensions)."""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class RateLimit:
    def __init__(self, limit: int, window: float = 60.0):
        self.limit = limit
        self.window = window
        self._recent: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, address: str) -> bool:
        """Count one request from `address`; False when it is over the limit."""
        now = time.monotonic()
        with self._lock:
            times = self._recent[address]
            while times and times[0] < now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                return False
            times.append(now)
            return True
