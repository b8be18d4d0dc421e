"""A BLE scanner that replays a capture, or advertisements a test pushes.

Capture format (one JSON object a line, as `kiosk ble record` writes it):
{"t": UNIX_SECONDS, "addr": "aa:bb:cc:dd:ee:ff", "addr_type": "public"|"random",
 "rssi": INT, "raw": "HEX OF THE AD BYTES"}
Replayed reports are stamped with the kiosk's clock at delivery, so they line up with the
replay camera's frames. With `follow` the file is read as it grows, as `tail -F` does
(bench/soak.py writes a phone's advertisements there while its owner walks up).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..handoff import Handoff
from ..model import Advertisement
from . import AdvertisementSource

log = logging.getLogger(__name__)


def read_capture(path: str | Path) -> list[Advertisement]:
    """Load a capture; a line that is not a valid record is skipped with a warning."""
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(Advertisement.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError) as e:
                log.warning("%s:%d: skipped, not an advertisement record (%s)", path, number, e)
    records.sort(key=lambda a: a.t)
    return records


class ReplayScanner(AdvertisementSource):
    def __init__(self, clock, path: str | Path | None = None, speed: float = 1.0, period: float = 0.0,
                 follow: bool = False):
        self._clock = clock
        self._follow = Path(path) if path and follow else None
        self._state = "starting"
        self._records = read_capture(path) if path and not follow else None
        self._speed = speed
        self._period = period
        self._pushed = Handoff()

    @classmethod
    def from_settings(cls, settings, clock) -> ReplayScanner:
        return cls(clock, settings["ble.replay_path"] or None, settings["ble.replay_speed"],
                   settings["ble.replay_period"], settings["ble.replay_follow"])

    # -- controls for tests ------------------------------------------------------------
    def advertise(self, addr: str, rssi: int, raw: bytes, addr_type: str = "random", times: int = 1) -> None:
        """A phone at `addr` sends `raw` heard at `rssi` dBm (stamped when the kiosk takes it)."""
        self._pushed.put((addr, rssi, raw, addr_type), times)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        return self._pushed.wait_idle(timeout)

    # -- AdvertisementSource ------------------------------------------------------------
    def status(self) -> str:
        return self._state

    def _run_follow(self, deliver: Callable[[Advertisement], None], stop: threading.Event) -> None:
        """Deliver each line appended to the followed file; reopen it when it is replaced."""
        follow = self._follow
        assert follow is not None, "run() follows only with a path"
        first = True
        while not stop.is_set():
            try:
                # open() blocks on a FIFO until a writer comes: the soak's hung helper.
                f = open(follow, encoding="utf-8")
            except FileNotFoundError:
                self._state = f"capture gone: {self._follow}"
                stop.wait(1.0)
                continue
            with f:
                self._state = "ok"
                if first and follow.is_file():
                    f.seek(0, os.SEEK_END)   # only what is heard from now on, also after a restart
                first = False
                inode = os.fstat(f.fileno()).st_ino
                partial = ""
                while not stop.is_set():
                    line = f.readline()
                    if line:
                        partial += line
                        if not partial.endswith("\n"):
                            continue          # the writer is mid-line
                        line, partial = partial, ""
                        try:
                            a = Advertisement.from_json(json.loads(line))
                        except (ValueError, KeyError, TypeError) as e:
                            log.warning("%s: skipped, not an advertisement record (%s)", self._follow, e)
                            continue
                        deliver(Advertisement(a.addr, a.rssi, self._clock.now(), a.raw, a.addr_type))
                        continue
                    try:
                        replaced = os.stat(follow).st_ino != inode
                    except FileNotFoundError:
                        replaced = True
                    if replaced:
                        break
                    stop.wait(0.05)

    def run(self, deliver: Callable[[Advertisement], None], stop: threading.Event) -> None:
        if self._follow is not None:
            self._run_follow(deliver, stop)
            return
        self._state = "ok"            # pushed by tests, or a capture read whole: nothing to wait for
        if self._records is None:
            while not stop.is_set():
                item = self._pushed.take(timeout=0.1)
                if item is not None:
                    addr, rssi, raw, addr_type = item
                    deliver(Advertisement(addr, rssi, self._clock.now(), raw, addr_type))
            return
        if not self._records:
            stop.wait()
            return
        start, t0 = time.monotonic(), self._records[0].t
        lap = 0
        while not stop.is_set():
            for record in self._records:
                due = start + (lap * self._period + record.t - t0) / self._speed
                if stop.wait(max(0.0, due - time.monotonic())):
                    return
                deliver(Advertisement(record.addr, record.rssi, self._clock.now(), record.raw,
                                      record.addr_type))
            if self._period <= 0:
                stop.wait()
                return
            lap += 1
