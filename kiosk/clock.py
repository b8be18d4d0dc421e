"""Where the kiosk reads the time: the system clock, or a clock a test turns by hand.

Only the composition root and the thread loops read a clock; parsing, classification and
policy take the time as an argument.
"""
import threading
import time


class SystemClock:
    """Wall-clock UNIX seconds."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to (for tests and `kiosk ble analyze`)."""

    def __init__(self, start: float = 1_795_000_000.0):
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, t: float) -> None:
        with self._lock:
            self._now = t
