"""Which required-app beacons were near the door around a time t, and new there.

The rules (docs/ble.md has the reasoning):

* A *beacon* is one (address, family, rotating id). Phones rotate address and id together
  about every 15 minutes; a beacon that appears within ROTATION_GAP seconds of another of
  the same family going quiet, at a similar RSSI, continues that one's *lineage*.
* A beacon's RSSI at t is the mean of its sightings in the SMOOTH seconds up to its latest
  one in [t - window, t + GRACE]. It is *near* when that is >= rssi_near.
* A near beacon counts for the visitor scanned at t when its lineage *arrived* (was first
  heard, or heard again after more than `window` seconds of silence) within
  `arrival_window` seconds before t, or when it *rose* by at least `rise_db` over its own
  level BASELINE_FROM..BASELINE_TO seconds before t. A guard's phone lying by the door for an
  hour is near but neither new nor rising, so it is credited to no one.
* Strong evidence gives "confirmed", weak (the iOS overflow bit) "likely".

Memory is bounded: RSSI is kept per second (sum, count) for HISTORY seconds per lineage,
and beacons unheard for longer than that are forgotten.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from ..model import CONFIRMED, LIKELY, NOT_DETECTED, Advertisement, Presence
from . import advertising, families

SMOOTH = 2.0           # s of RSSI averaging: a phone's RSSI jumps by several dB between packets
GRACE = 2.0            # s: frame and advertisement stamps come from different threads
ROTATION_GAP = 3.0     # s between the last packet of an old identity and the first of the new
ROTATION_DB = 8        # dB: a rotated identity is heard at about the same strength
BASELINE_FROM, BASELINE_TO = 120.0, 30.0   # s before the scan: the beacon's "usual" level
HISTORY = BASELINE_FROM + 10.0


@dataclass
class _Lineage:
    """One phone across its identity rotations."""
    first_seen: float                                 # start of its current stay near the kiosk
    seconds: deque = field(default_factory=deque)     # [second, rssi sum, count], oldest first

    def add(self, t: float, rssi: int, away: float) -> None:
        second = int(t)
        if self.seconds and second - self.seconds[-1][0] > away:
            self.first_seen = t                       # it left and came back: a new arrival
        if self.seconds and self.seconds[-1][0] == second:
            self.seconds[-1][1] += rssi
            self.seconds[-1][2] += 1
        else:
            self.seconds.append([second, rssi, 1])
        while self.seconds and self.seconds[0][0] < second - HISTORY:
            self.seconds.popleft()

    def level(self, start: float, end: float) -> float | None:
        """Median of the per-second mean RSSI in [start, end), or None when not heard."""
        means = sorted(s / n for sec, s, n in self.seconds if start <= sec < end)
        return means[len(means) // 2] if means else None


@dataclass
class _Beacon:
    family: str
    strength: str
    lineage: _Lineage
    sightings: deque = field(default_factory=deque)   # (t, rssi) within the look-back window
    succeeded: bool = False                           # a newer identity took over its lineage

    @property
    def last(self) -> tuple[float, int]:
        return self.sightings[-1]


class PresenceTracker:
    def __init__(self, required: tuple[str, ...] = ("bluezone", "gaen"), window: float = 30.0,
                 rssi_near: int = -75, arrival_window: float = 180.0, rise_db: float = 10.0):
        self.required = tuple(required)
        self.window = window
        self.rssi_near = rssi_near
        self.arrival_window = arrival_window
        self.rise_db = rise_db
        self._beacons: dict[tuple[str, str, str], _Beacon] = {}
        self._lock = threading.Lock()
        self.heard = 0
        self.last_heard: float | None = None
        self._swept = float("-inf")

    @classmethod
    def from_settings(cls, settings) -> "PresenceTracker":
        return cls(tuple(settings["ble.required_families"]), settings["ble.window"],
                   settings["ble.rssi_near"], settings["ble.arrival_window"], settings["ble.rise_db"])

    def __len__(self) -> int:
        return len(self._beacons)

    # -- hearing ---------------------------------------------------------------------------
    def record(self, advert: Advertisement) -> list[families.Match]:
        """Parse, classify and remember one advertisement; return what it matched."""
        matches = families.classify(advertising.parse(advert.raw))
        with self._lock:
            self.heard += 1
            self.last_heard = advert.t
            for m in matches:
                key = (advert.addr, m.family, m.beacon_id)
                beacon = self._beacons.get(key)
                if beacon is None:
                    beacon = self._beacons[key] = _Beacon(
                        m.family, m.strength, self._lineage_for(m.family, advert.t, advert.rssi))
                beacon.sightings.append((advert.t, advert.rssi))
                beacon.lineage.add(advert.t, advert.rssi, away=self.window)
                while beacon.sightings[0][0] < advert.t - self.window - SMOOTH:
                    beacon.sightings.popleft()
            if advert.t - self._swept > 1.0:          # at most once a second: O(beacons)
                self._swept = advert.t
                self._forget_before(advert.t - HISTORY)
        return matches

    def _lineage_for(self, family: str, t: float, rssi: int) -> _Lineage:
        best = None
        for beacon in self._beacons.values():
            last_t, last_rssi = beacon.last
            if beacon.family == family and not beacon.succeeded and 0 < t - last_t <= ROTATION_GAP \
                    and abs(last_rssi - rssi) <= ROTATION_DB:
                if best is None or abs(last_rssi - rssi) < abs(best.last[1] - rssi):
                    best = beacon
        if best is None:
            return _Lineage(first_seen=t)
        best.succeeded = True
        return best.lineage

    def _forget_before(self, t: float) -> None:
        for key in [k for k, b in self._beacons.items() if b.last[0] < t]:
            del self._beacons[key]

    # -- asking ------------------------------------------------------------------------------
    def at(self, t: float) -> Presence:
        """The app outcome for a visitor scanned at time t."""
        near = []
        with self._lock:
            for beacon in self._beacons.values():
                if beacon.family not in self.required:
                    continue
                rssi = self._rssi(beacon, t)
                if rssi is None or rssi < self.rssi_near:
                    continue
                arrived = beacon.lineage.first_seen >= t - self.arrival_window
                usual = beacon.lineage.level(t - BASELINE_FROM, t - BASELINE_TO)
                rose = usual is not None and rssi - usual >= self.rise_db
                if arrived or rose:
                    near.append((beacon.strength == families.STRONG, rssi, beacon.family))
        if not near:
            return Presence(NOT_DETECTED)
        strong, rssi, family = max(near)
        return Presence(CONFIRMED if strong else LIKELY, family, rssi, len(near))

    def _rssi(self, beacon: _Beacon, t: float) -> int | None:
        heard = [(ts, r) for ts, r in beacon.sightings if t - self.window <= ts <= t + GRACE]
        if not heard:
            return None
        latest = heard[-1][0]
        recent = [r for ts, r in heard if ts >= latest - SMOOTH]
        return round(sum(recent) / len(recent))

    def strongest(self, t: float, n: int = 5) -> list[dict]:
        """The n strongest beacons of any app family heard around t (for calibration)."""
        rows = []
        with self._lock:
            for (addr, family, _), beacon in self._beacons.items():
                rssi = self._rssi(beacon, t)
                if rssi is not None:
                    rows.append({"addr": addr, "family": family, "strength": beacon.strength,
                                 "rssi": rssi, "near": rssi >= self.rssi_near,
                                 "heard_for": round(t - beacon.lineage.first_seen)})
        return sorted(rows, key=lambda r: -r["rssi"])[:n]
