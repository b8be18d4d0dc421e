"""Which required-app beacons were near the door around a time t.

The rule (thin for now; docs/architecture.md): a beacon counts for a scan at t when it was
heard within [t - window, t + grace] and its RSSI, averaged over its sightings in the
SMOOTH seconds up to its latest one before t + grace, is at or above `rssi_near`. A phone
that walked away (RSSI falling) stops counting even while it is still heard.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from ..model import CONFIRMED, LIKELY, NOT_DETECTED, Advertisement, Presence
from . import advertising, families

SMOOTH = 2.0      # seconds of RSSI averaging: phones' RSSI jumps by ±8 dB between packets
GRACE = 2.0       # a beacon first heard just after the code was read still counts


@dataclass
class _Beacon:
    family: str
    strength: str
    sightings: deque = field(default_factory=deque)   # (t, rssi), oldest first


class PresenceTracker:
    def __init__(self, required: tuple[str, ...] = ("bluezone", "gaen"), window: float = 30.0,
                 rssi_near: int = -75):
        self.required = tuple(required)
        self.window = window
        self.rssi_near = rssi_near
        self._beacons: dict[tuple[str, str, str], _Beacon] = {}
        self._lock = threading.Lock()
        self.heard = 0
        self.last_heard: float | None = None

    @classmethod
    def from_settings(cls, settings) -> "PresenceTracker":
        return cls(tuple(settings["ble.required_families"]), settings["ble.window"],
                   settings["ble.rssi_near"])

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
                    beacon = self._beacons[key] = _Beacon(m.family, m.strength)
                beacon.sightings.append((advert.t, advert.rssi))
                while beacon.sightings and beacon.sightings[0][0] < advert.t - self.window - SMOOTH:
                    beacon.sightings.popleft()
            self._forget_before(advert.t - 2 * (self.window + SMOOTH))
        return matches

    def _forget_before(self, t: float) -> None:
        stale = [k for k, b in self._beacons.items() if b.sightings[-1][0] < t]
        for k in stale:
            del self._beacons[k]

    def at(self, t: float) -> Presence:
        near = []
        with self._lock:
            for beacon in self._beacons.values():
                if beacon.family not in self.required:
                    continue
                heard = [(ts, r) for ts, r in beacon.sightings if t - self.window <= ts <= t + GRACE]
                if not heard:
                    continue
                latest = heard[-1][0]
                recent = [r for ts, r in heard if ts >= latest - SMOOTH]
                rssi = round(sum(recent) / len(recent))
                if rssi >= self.rssi_near:
                    near.append((beacon.strength == families.STRONG, rssi, beacon.family))
        if not near:
            return Presence(NOT_DETECTED)
        strong, rssi, family = max(near)
        return Presence(CONFIRMED if strong else LIKELY, family, rssi, len(near))
