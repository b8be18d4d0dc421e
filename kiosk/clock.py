"""Where the kiosk reads the time, whether it may trust it, and entry stamps that never go back.

Only the composition root and the thread loops read a clock; parsing, classification and
policy take the time (and whether it is trusted) as an argument.

A Raspberry Pi has no battery-backed clock: fake-hwclock restores the time it last saved
(hourly, and at a clean shutdown), so after a power cut the clock starts behind, and it
steps when NTP (systemd-timesyncd or chrony) reaches a server, possibly hours later on a
gate without network. `ClockWatch` tells the door whether the clock can be trusted;
`EntryStamps` keeps entry ids in order and each entry in the day folder of its stamp
across such a step.
"""
from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .model import id_parts, iso, ulid

__all__ = ["SystemClock", "ManualClock", "ClockState", "ClockWatch", "EntryStamps", "ntp_synchronised", "clock_view",
           "BUILD_FLOOR", "SYNCED", "UNSYNCED", "UNKNOWN", "BEHIND"]

logger = logging.getLogger(__name__)

# This release was built after this instant (2026-11-01 00:00 UTC): a clock that reads
# earlier is wrong whatever NTP says. Raise it with each release.
BUILD_FLOOR = 1_793_491_200.0

# The clock's states, as the health strip and `kiosk doctor` name them.
SYNCED = "synced"          # NTP says synchronised
UNSYNCED = "unsynced"      # NTP says not (yet) synchronised
UNKNOWN = "unknown"        # nothing says (no timedatectl: a container, CI, a laptop)
BEHIND = "behind"          # reads earlier than the build date or the newest entry

# A step back smaller than this is NTP's ordinary correction, not a wrong clock.
BEHIND_TOLERANCE = 1.0     # seconds
TIMEDATECTL_TIMEOUT = 2.0  # seconds; timedatectl asks systemd over D-Bus, which can hang
DAY_MS = 86_400_000
_NOTIFY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC")
# timesyncd touches this file once it has synchronised (systemd >= 239).
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


def ntp_synchronised(run=subprocess.run, timeout: float = TIMEDATECTL_TIMEOUT) -> bool | None:
    """Whether the system clock is synchronised, from `timedatectl show -p NTPSynchronized`
    (the kernel's flag, set by systemd-timesyncd and by chrony alike).

    Slow (a subprocess, up to `timeout` seconds): never call it on the door's path.

    :param float timeout: seconds to wait for timedatectl.
    :returns: True or False as timedatectl says, True if timesyncd's flag file is there,
        else None (no timedatectl, no systemd, no answer in time).
    """
    # systemd's tools (254 and later) report a failure to $NOTIFY_SOCKET ("ERRNO=112"): not
    # to the kiosk's own channel to systemd, which would read it as the kiosk's.
    env = {k: v for k, v in os.environ.items() if k not in _NOTIFY_VARIABLES}
    try:
        done = run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                   text=True, timeout=timeout, env={**env, "LC_ALL": "C"})
        answer = done.stdout.strip() if done.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        answer = ""
    if answer == "yes":
        return True
    if answer == "no":
        return False
    return True if TIMESYNCD_FLAG.exists() else None


class SystemClock:
    """Wall-clock UNIX seconds, synchronised as timedatectl says."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        """Seconds that never step (for durations)."""
        return time.monotonic()

    def synchronised(self) -> bool | None:
        """True/False as NTP says, None when nothing says (see ntp_synchronised; slow)."""
        return ntp_synchronised()


class ManualClock:
    """A clock that moves only when told to (for tests, the soak and `kiosk ble analyze`).

    :param float start: UNIX seconds it reads at first.
    :param synchronised: what it answers when asked whether NTP synchronised it (None:
        nothing says, as in a container).
    """

    def __init__(self, start: float = 1_795_000_000.0, synchronised: bool | None = None):
        self._now = start
        self._mono = 0.0
        self._synchronised = synchronised
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """Seconds that moved forward by advance() only: set() and a step back leave it."""
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> float:
        """Move by `seconds` (negative: a step back, as when NTP corrects a clock ahead)."""
        with self._lock:
            self._now += seconds
            self._mono += max(seconds, 0.0)
            return self._now

    def set(self, t: float) -> None:
        """Step the wall clock to `t` (time does not pass: monotonic() stays)."""
        with self._lock:
            self._now = t

    def synchronised(self) -> bool | None:
        return self._synchronised

    def set_synchronised(self, value: bool | None) -> None:
        """What NTP says from now on (True, False, or None for nothing)."""
        self._synchronised = value


@dataclass(frozen=True)
class ClockState:
    """Whether the kiosk may judge certificates and stamp entries by its clock."""

    status: str                  # SYNCED, UNSYNCED, UNKNOWN, BEHIND
    trusted: bool
    detail: str                  # one line for the guard's strip and the operator
    now: float                   # UNIX seconds the clock read
    floor: float                 # UNIX seconds it must not read less than

    def to_json(self) -> dict:
        return {"status": self.status, "trusted": self.trusted, "detail": self.detail,
                "now": iso(self.now), "floor": iso(self.floor)}


def judge(now: float, synchronised: bool | None, floor: float, require_sync: bool) -> ClockState:
    """The clock's state from what it reads, what NTP says and the sanity floor.

    :param float now: UNIX seconds the clock reads.
    :param synchronised: NTP's answer (None: nothing says).
    :param float floor: the newest entry's time (UNIX seconds), or 0 with no entry.
    :param bool require_sync: whether an unknown state counts as untrusted (clock.require_sync).
    """
    floor = max(floor, BUILD_FLOOR)
    if now < BUILD_FLOOR:
        return ClockState(BEHIND, False, f"reads {iso(now)}, before this release was built", now, floor)
    if synchronised is False:
        return ClockState(UNSYNCED, False, "NTP not synchronised", now, floor)
    behind = floor - now
    if synchronised is True:
        # NTP is the authority: the entries were stamped by a clock that ran ahead.
        detail = "NTP synchronised" + (f"; stepped back {behind:.0f} s below the newest entry"
                                       if behind > BEHIND_TOLERANCE else "")
        return ClockState(SYNCED, True, detail, now, floor)
    if behind > BEHIND_TOLERANCE:
        return ClockState(BEHIND, False, f"{behind:.0f} s behind the newest entry", now, floor)
    if require_sync:
        return ClockState(UNKNOWN, False, "cannot tell whether NTP synchronised it (clock.require_sync)",
                          now, floor)
    return ClockState(UNKNOWN, True, "cannot tell whether NTP synchronised it", now, floor)


def clock_view(state: dict, words: dict) -> tuple[bool, str]:
    """The health strip's clock part from Kiosk.clock_health(): (ok, one line in the guard's
    language). Not ok while the clock is not trusted; the detail follows in English, as the
    other parts' causes do.

    :param dict state: ClockState.to_json() (status, trusted, detail, now, floor).
    :param dict words: the guard's catalogue (web/i18n), with clock_<status> words.
    """
    text = words.get(f"clock_{state['status']}", state["status"])
    if not state["trusted"] or state["status"] != SYNCED:
        text += f" · {state['detail']}"
    return bool(state["trusted"]), text


class ClockWatch:
    """Whether the clock is trusted, kept up to date on its own thread so that the door only
    reads an answer (`state`), never waits for timedatectl.

    :param clock: SystemClock or ManualClock (has now() and synchronised()).
    :param floor: returns the newest entry's time (UNIX seconds; 0 with none).
    :param bool require_sync: count "cannot tell" as untrusted (clock.require_sync).
    :param float interval: seconds between two questions to NTP (clock.check_interval).
    :param on_change: called with the new ClockState when the status or trust changes.
    """

    def __init__(self, clock, floor: Callable[[], float] = lambda: 0.0, require_sync: bool = False,
                 interval: float = 30.0, on_change: Callable[[ClockState], None] | None = None):
        self.clock = clock
        self.floor = floor
        self.require_sync = require_sync
        self.interval = interval
        self.on_change = on_change
        self.synchronised: bool | None = None
        self.checked_at: float | None = None      # monotonic seconds of the last answer
        self._last: tuple[str, bool] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def state(self, at: float | None = None) -> ClockState:
        """The state now (cheap: uses NTP's last answer).

        :param at: the time to judge (UNIX seconds; a scan's), else the clock's now.
        """
        return judge(self.clock.now() if at is None else at, self.synchronised, self.floor(),
                     self.require_sync)

    def check(self) -> ClockState:
        """Ask NTP again (slow: a subprocess on a SystemClock) and return the state."""
        self.synchronised = self.clock.synchronised()
        self.checked_at = time.monotonic()
        state = self.state()
        key = (state.status, state.trusted)
        if key != self._last:
            self._last = key
            if self.on_change is not None:
                self.on_change(state)
        return state

    def start(self) -> None:
        """Ask once now, then every `interval` seconds on a thread."""
        self.check()
        self._thread = threading.Thread(target=self._loop, name="clock", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:      # the watch must outlive a surprise from timedatectl
                logger.exception("clock check failed")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


class EntryStamps:
    """Entry times and ids that never go back, whatever the clock does.

    Ids are ULIDs issued from a floor, the newest id issued (or found in the log at start):
    the milliseconds never decrease and, within one millisecond, the random part counts up
    (the ULID spec's monotonic mode), so ids sort in the order entries were logged.

    An entry lives in the folder of its stamp's UTC day, and the log finds it by its id's
    day, so the two must agree. After a step back within the floor's day the entry keeps
    the clock's reading (stamped earlier than an existing entry, in the same day). After a
    step back into an earlier UTC day its stamp moves to 00:00:00.000 of the floor's day:
    an id from that day cannot go in an earlier folder, and an earlier id would sort before
    entries already logged. Such an entry is reported as moved (marked clock_unsynced).
    """

    def __init__(self, newest_id: str | None = None):
        self._lock = threading.Lock()
        self._last: tuple[int, int] | None = id_parts(newest_id) if newest_id else None

    def seed(self, newest_id: str | None) -> None:
        """Continue after `newest_id` (the log's newest) if it is later than the floor."""
        if newest_id:
            with self._lock:
                parts = id_parts(newest_id)
                if self._last is None or parts > self._last:
                    self._last = parts

    @property
    def newest(self) -> float:
        """UNIX seconds of the newest id issued or seeded (0 with none)."""
        last = self._last
        return 0.0 if last is None else last[0] / 1000

    def issue(self, t: float, rand: bytes | None = None) -> tuple[float, str, bool]:
        """A stamp and an id for an entry seen at `t`.

        :param float t: UNIX seconds the clock read.
        :param rand: 10 random bytes (tests), else from os.urandom.
        :returns: (the stamp in UNIX seconds, whole milliseconds; the id; whether the stamp
            was moved from the clock's reading to stay in the floor's day).
        """
        ms = int(t * 1000)
        fresh = int.from_bytes(os.urandom(10) if rand is None else rand, "big")
        with self._lock:
            moved = False
            if self._last is None or ms > self._last[0]:
                id_ms, r = ms, fresh
            else:
                last_ms, last_rand = self._last
                day_start = last_ms - last_ms % DAY_MS
                if ms < day_start:
                    ms, moved = day_start, True
                id_ms, r = last_ms, last_rand + 1
                if r >= 1 << 80:             # 2^80 ids in one millisecond: take the next one
                    id_ms, r = last_ms + 1, fresh >> 1
                    ms = max(ms, id_ms - id_ms % DAY_MS)
            self._last = (id_ms, r)
        return ms / 1000, ulid(id_ms, r), moved


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

    def monotonic(self) -> float:
        """Seconds that never step: the offset moves the wall clock only."""
        return time.monotonic()

    def synchronised(self) -> bool | None:
        """What NTP says of the system clock under the offset (the soak steps the offset)."""
        return ntp_synchronised()
