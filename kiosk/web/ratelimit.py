"""Limits on what clients of the kiosk's listeners may take: requests a minute per address,
long-lived event streams, and wrong guard PINs. One of each per app, kept in app.extensions."""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["PinLockout", "RateLimit", "Slot", "StreamSlots"]


class RateLimit:
    """A sliding-window limit on requests per client address.

    :param limit: requests allowed per window from one address.
    :param window: length of the window in seconds.
    :param clock: monotonic seconds (time.monotonic; a test may pass its own).
    """

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self._clock = clock
        self._recent: dict[str, deque] = {}
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def allow(self, address: str) -> bool:
        """Count one request from `address`.

        :returns: False when it is over the limit (the request is then not counted).
        """
        now = self._clock()
        with self._lock:
            if now >= self._next_prune:
                self._prune(now)
            times = self._recent.setdefault(address, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                return False
            times.append(now)
            return True

    def _prune(self, now: float) -> None:
        # Once a window, forget the addresses with nothing inside it: without this the table
        # grows by one entry per address ever seen (a LAN scan, a phone per visitor).
        self._recent = {a: t for a, t in self._recent.items() if t and t[-1] > now - self.window}
        self._next_prune = now + self.window

    def __len__(self) -> int:
        """Addresses currently remembered."""
        return len(self._recent)


class Slot:
    """One admitted stream; `ended` is set when a newer stream has taken its place."""

    def __init__(self, address: str, wake: Callable[[], None]):
        self.address = address
        self.ended = threading.Event()
        self._wake = wake

    def end(self) -> None:
        self.ended.set()
        self._wake()


class StreamSlots:
    """At most `total` long-lived streams, at most `per_client` from one address; a new stream
    over either bound ends the oldest one it competes with (that client's own first).

    Each stream holds one of the web server's worker threads for as long as it is open, so
    keeping `total` below the thread count keeps threads for the pages and the API.

    :param total: streams open at once.
    :param per_client: streams open at once from one address.
    """

    def __init__(self, total: int, per_client: int):
        self.total = total
        self.per_client = per_client
        self._open: list[Slot] = []          # oldest first
        self._lock = threading.Lock()

    def open(self, address: str, wake: Callable[[], None]) -> Slot:
        """Admit a stream from `address`; `wake` interrupts its wait when it must end.

        :returns: its Slot; call `close(slot)` when the stream finishes.
        """
        slot = Slot(address, wake)
        ended = []
        with self._lock:
            mine = [s for s in self._open if s.address == address]
            while len(mine) >= self.per_client:
                ended.append(mine.pop(0))
                self._open.remove(ended[-1])
            while len(self._open) >= self.total:
                ended.append(self._open.pop(0))
            self._open.append(slot)
        for old in ended:
            old.end()
        return slot

    def close(self, slot: Slot) -> None:
        with self._lock:
            if slot in self._open:
                self._open.remove(slot)

    def __len__(self) -> int:
        """Streams open now."""
        with self._lock:
            return len(self._open)


class PinLockout:
    """Backoff after wrong PINs: `free` wrong tries, then each further one locks the PIN for
    `base` seconds, doubling up to `most`. A right PIN starts the count again.

    The lock is on the PIN, not on an address: the guard's screen and anyone guessing share
    loopback, and a guesser would change address. Monotonic time, so a clock step (NTP
    arriving on a Pi without a real-time clock) neither lifts nor stretches a lock.

    :param free: wrong PINs allowed before the first lock.
    :param base: seconds of the first lock.
    :param most: longest lock in seconds.
    :param clock: monotonic seconds.
    """

    def __init__(self, free: int = 3, base: float = 30.0, most: float = 900.0,
                 clock: Callable[[], float] = time.monotonic):
        self.free, self.base, self.most = free, base, most
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        self._until = 0.0

    def wait(self) -> float:
        """Seconds until a PIN may be tried again (0 = now)."""
        with self._lock:
            return max(0.0, self._until - self._clock())

    def failed(self) -> float:
        """Count a wrong PIN.

        :returns: seconds the PIN is now locked for (0 = not locked).
        """
        with self._lock:
            self.failures += 1
            over = self.failures - self.free
            if over <= 0:
                return 0.0
            seconds = min(self.most, self.base * 2 ** min(over - 1, 32))
            self._until = self._clock() + seconds
            return seconds

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self._until = 0.0
