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


class OffsetFileClock:
    """The system clock plus an offset in seconds read from a file: a test's way to step the
    clock of a running kiosk process (bench/soak.py), since libfaketime 0.9.10 makes
    Python 3.11's time.sleep fail with EINVAL. Never for a real gate.

    :param path: File holding one number, the offset in seconds (missing or unreadable = 0).
    :param float reread: Seconds between looks at the file.
    """

    def __init__(self, path, reread: float = 0.5):
        self._path = path
        self._reread = reread
        self._offset = 0.0
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def offset(self) -> float:
        """The offset now in force, in seconds."""
        with self._lock:
            if time.monotonic() - self._checked >= self._reread:
                self._checked = time.monotonic()
                try:
                    with open(self._path, encoding="ascii") as f:
                        self._offset = float(f.read().strip() or 0)
                except (OSError, ValueError):
                    self._offset = 0.0
            return self._offset

    def now(self) -> float:
        return time.time() + self.offset()
