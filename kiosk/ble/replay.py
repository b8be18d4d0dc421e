"""A BLE scanner that replays a capture, or advertisements a test pushes.

Capture format (one JSON object a line, as `kiosk ble record` writes it):
{"t": UNIX_SECONDS, "addr": "aa:bb:cc:dd:ee:ff", "addr_type": "public"|"random",
 "rssi": INT, "raw": "HEX OF THE AD BYTES"}
Replayed reports are stamped with the kiosk's clock at delivery, so they line up with the
replay camera's frames.
"""
from __future__ import annotations

import json
import logging
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
    def __init__(self, clock, path: str | Path | None = None, speed: float = 1.0, period: float = 0.0):
        self._clock = clock
        self._records = read_capture(path) if path else None
        self._speed = speed
        self._period = period
        self._pushed = Handoff()

    @classmethod
    def from_settings(cls, settings, clock) -> ReplayScanner:
        return cls(clock, settings["ble.replay_path"] or None, settings["ble.replay_speed"],
                   settings["ble.replay_period"])

    # -- controls for tests ------------------------------------------------------------
    def advertise(self, addr: str, rssi: int, raw: bytes, addr_type: str = "random", times: int = 1) -> None:
        """A phone at `addr` sends `raw` heard at `rssi` dBm (stamped when the kiosk takes it)."""
        self._pushed.put((addr, rssi, raw, addr_type), times)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        return self._pushed.wait_idle(timeout)

    # -- AdvertisementSource ------------------------------------------------------------
    def run(self, deliver: Callable[[Advertisement], None], stop: threading.Event) -> None:
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
