"""Which required-app beacons were near the door around a time t, and new there.

The rules (docs/ble.md has the reasoning and the sources of every number):

* A *beacon* is one (address, family, rotating id). Phones change address and id together
  (GAEN every 10-20 minutes, Bluezone's id every 10 minutes), and an Android advertiser may
  take a fresh address whenever it restarts. A beacon heard first within `window` seconds of
  another going quiet continues that one's *lineage* (one phone) when it carries the same id,
  or when what does not change across an identity change agrees: the family and the shape of
  the advertisement, the level at the junction, the position in the duty cycle (a paused
  advertiser does not resume early) and the advertising interval. The decision waits
  JUNCTION seconds for the new beacon's level; a scan before that uses the best match so far.
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

Over the house's ~300 lines: the lineage rules above are one judgement, each step tied to
the numbers in docs/ble.md; split, they would be read apart from their reasons.
"""
from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..model import CONFIRMED, LIKELY, NOT_DETECTED, Advertisement, Presence
from . import advertising, families

__all__ = ["PresenceTracker"]

SMOOTH = 2.0           # s of RSSI averaging: a phone's RSSI jumps by several dB between packets
GRACE = 2.0            # s: frame and advertisement stamps come from different threads
BASELINE_FROM, BASELINE_TO = 120.0, 30.0   # s before the scan: the beacon's "usual" level
HISTORY = BASELINE_FROM + 10.0

# -- What does not change when a phone changes its identity ------------------------------
# Level: a phone lying still is heard at the same median level before and after; single
# packets differ by several dB (the three advertising channels fade differently, +-3-5 dB
# at a door), so the medians of JUNCTION seconds on each side are compared. A visitor walking
# up is first heard 15-30 dB below a phone at the kiosk.
ROTATION_DB = 8
JUNCTION = 3.0         # s of the new identity's first sightings (3 packets at 1/s)
TAIL_PACKETS = 5       # the old identity's level: its last JUNCTION s, at least this many packets
# Duty cycle: a silence longer than PAUSE ends a burst. Android's slowest advertising mode
# sends one packet a second (ADVERTISE_MODE_LOW_POWER), so PAUSE is five lost packets in a
# row (0.2% of bursts at 30% loss), and well under Bluezone's 15 s pause. Bluezone pauses 15 s
# between 15 s bursts, timed by exact alarms (setExactAndAllowWhileIdle), which fire late but
# never early: a new identity first heard sooner into a pause than the shortest pause its
# lineage has shown, by more than CYCLE_EARLY (lost packets at a burst's edges make a measured
# pause look longer), is another phone. Likewise a burst does not run past its usual length:
# a new identity first heard just after the old one's burst should have ended, by more than
# CYCLE_LATE, comes while that phone is paused (the lineage's longest burst, measured from
# heard packets, is short of the true one by the packets lost at its edges: two or three at
# 30% loss).
PAUSE = 6.0
CYCLE_EARLY = 3.0
CYCLE_LATE = 3.0
# Advertising interval: Android's modes send every 100, 250 or 1000 ms, GAEN every 200-270 ms
# (Exposure Notification Bluetooth Specification v1.2); 1.8x separates Android's modes and
# keeps GAEN's spread. The interval is the shortest gap between packets (lost packets only
# lengthen gaps), counted from MIN_GAP: the Core spec's shortest advertising interval is
# 20 ms, and shorter gaps are reports stamped together.
INTERVAL_RATIO = 1.8
MIN_GAP = 0.02
INTERVAL_GAPS = 3      # gaps before a faster interval is trusted (lost packets cannot fake it)
INTERVAL_GAPS_SLOWER = 8   # a slower one needs more: a run of losses looks slower
SHOWN_IDENTITIES = 8   # identities a lineage remembers for `kiosk ble analyze`


def _median(values: list) -> float | None:
    values = sorted(values)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


@dataclass(eq=False)                                  # one phone: compared by identity
class _Lineage:
    """One phone across its identity changes."""
    id: int
    first_seen: float                                 # start of its current stay near the kiosk
    seconds: deque = field(default_factory=deque)     # [second, rssi sum, count], oldest first
    bursts: deque = field(default_factory=lambda: deque(maxlen=6))   # [start, end] of bursts
    identities: deque = field(default_factory=lambda: deque(maxlen=SHOWN_IDENTITIES))

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
        if self.bursts and t - self.bursts[-1][1] <= PAUSE:
            self.bursts[-1][1] = max(self.bursts[-1][1], t)
        else:
            self.bursts.append([t, t])

    def absorb(self, other: _Lineage) -> None:
        """Take over the sightings of `other`, a newer identity of the same phone."""
        for second, total, count in other.seconds:
            if self.seconds and self.seconds[-1][0] == second:
                self.seconds[-1][1] += total
                self.seconds[-1][2] += count
            else:
                self.seconds.append([second, total, count])
        if any(a[0] > b[0] for a, b in itertools.pairwise(self.seconds)):
            self.seconds = deque(sorted(self.seconds))
        for start, end in other.bursts:
            if self.bursts and start - self.bursts[-1][1] <= PAUSE:
                self.bursts[-1][1] = max(self.bursts[-1][1], end)
            else:
                self.bursts.append([start, end])
        self.identities.extend(other.identities)

    def shortest_pause(self) -> float | None:
        """The shortest silence between two bursts seen in this lineage (s), if any."""
        pauses = [b[0] - a[1] for a, b in itertools.pairwise(self.bursts)]
        return min(pauses) if pauses else None

    def burst_should_end(self) -> float | None:
        """When the current burst should end by the longest complete burst seen, if any."""
        complete = list(itertools.islice(self.bursts, 0, len(self.bursts) - 1))
        return self.bursts[-1][0] + max(end - start for start, end in complete) if complete else None

    def level(self, start: float, end: float) -> float | None:
        """Median of the per-second mean RSSI in [start, end), or None when not heard."""
        return _median([s / n for sec, s, n in self.seconds if start <= sec < end])


@dataclass(eq=False)
class _Beacon:
    addr: str
    family: str
    strength: str
    beacon_id: str
    kind: tuple                                       # what an identity change keeps: family, shape
    lineage: _Lineage
    first: float
    sightings: deque = field(default_factory=deque)   # (t, rssi) within the look-back window
    head: list = field(default_factory=list)          # rssi of the first JUNCTION seconds
    settled: bool = False                             # its lineage is decided
    successor: _Beacon | None = None                # the newer identity that took over its lineage
    joined: dict | None = None                        # why it continues an older identity

    @property
    def last(self) -> tuple[float, int]:
        return self.sightings[-1]

    def interval(self, gaps_needed: int) -> float | None:
        """Shortest gap between packets within a burst (s), once `gaps_needed` are seen."""
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(self.sightings)]
        gaps = [g for g in gaps if MIN_GAP <= g <= PAUSE]
        return min(gaps) if len(gaps) >= gaps_needed else None

    def describe(self) -> dict:
        """This identity as `kiosk ble analyze` shows it (the id's first 8 hex digits)."""
        return {"addr": self.addr, "id": self.beacon_id[:8], "from": self.first, "to": self.last[0],
                **(self.joined or {"joined_by": []})}


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
        self._lineage_ids = itertools.count(1)
        self.heard = 0
        self.last_heard: float | None = None
        self._swept = float("-inf")

    @classmethod
    def from_settings(cls, settings) -> PresenceTracker:
        return cls(tuple(settings["ble.required_families"]), settings["ble.window"],
                   settings["ble.rssi_near"], settings["ble.arrival_window"], settings["ble.rise_db"])

    def __len__(self) -> int:
        return len(self._beacons)

    # -- hearing ---------------------------------------------------------------------------
    def record(self, advert: Advertisement) -> list[families.Match]:
        """Parse, classify and remember one advertisement; return what it matched."""
        ad = advertising.parse(advert.raw)
        matches = families.classify(ad)
        with self._lock:
            self.heard += 1
            self.last_heard = advert.t
            for m in matches:
                key = (advert.addr, m.family, m.beacon_id)
                beacon = self._beacons.get(key)
                if beacon is None:
                    lineage = _Lineage(next(self._lineage_ids), first_seen=advert.t)
                    beacon = self._beacons[key] = _Beacon(
                        advert.addr, m.family, m.strength, m.beacon_id,
                        (m.family, m.strength, ad.flags, len(advert.raw), advert.addr_type),
                        lineage, advert.t)
                    lineage.identities.append(beacon)
                if beacon.successor is not None:      # heard again: its "successor" is another phone
                    self._split(beacon)
                beacon.sightings.append((advert.t, advert.rssi))
                if advert.t - beacon.first <= JUNCTION:
                    beacon.head.append(advert.rssi)
                beacon.lineage.add(advert.t, advert.rssi, away=self.window)
                while beacon.sightings[0][0] < advert.t - self.window - SMOOTH:
                    beacon.sightings.popleft()
                if not beacon.settled and advert.t - beacon.first >= JUNCTION:
                    self._settle(beacon)
            if advert.t - self._swept > 1.0:          # at most once a second: O(beacons)
                self._swept = advert.t
                for beacon in [b for b in self._beacons.values()
                               if not b.settled and advert.t - b.first >= JUNCTION]:
                    self._settle(beacon)
                self._forget_before(advert.t - HISTORY)
        return matches

    def _evidence(self, new: _Beacon, old: _Beacon) -> dict | None:
        """Why `new` is the next identity of `old`'s phone, or None when it cannot be."""
        if old is new or old.successor is not None or old.kind != new.kind or old.lineage is new.lineage:
            return None
        gap = new.first - old.last[0]
        if gap < 0 or gap > self.window:              # heard together: two phones
            return None
        shown: dict[str, float | list[int]] = {"gap_s": round(gap, 1)}
        if new.beacon_id and new.beacon_id == old.beacon_id:
            return {"joined_by": ["same_id"], **shown}
        tail = [r for ts, r in old.sightings if ts >= old.last[0] - JUNCTION]
        if len(tail) < TAIL_PACKETS:
            tail = [r for ts, r in itertools.islice(old.sightings, max(0, len(old.sightings) - TAIL_PACKETS), None)]
        new_level, old_level = _median(new.head), _median(tail)
        # Both are heard: `new` was heard for JUNCTION s before it settles, `old` has a last sighting.
        assert new_level is not None and old_level is not None
        level_db = new_level - old_level
        if abs(level_db) > ROTATION_DB:
            return None
        by = ["family", "level"]
        if gap <= PAUSE:
            should_end = old.lineage.burst_should_end()
            if should_end is not None and new.first > should_end + CYCLE_LATE:
                return None                           # the old phone is in its pause
            by.append("same_burst")
        else:
            shortest = old.lineage.shortest_pause()
            if shortest is not None:
                if gap < shortest - CYCLE_EARLY:      # resumed sooner than it ever pauses
                    return None
                by.append("cycle")
        old_interval = old.interval(INTERVAL_GAPS)
        new_interval = new.interval(INTERVAL_GAPS)
        if old_interval and new_interval:
            if new_interval * INTERVAL_RATIO < old_interval:
                return None
            slower = new.interval(INTERVAL_GAPS_SLOWER)
            if slower and slower > old_interval * INTERVAL_RATIO:
                return None
            by.append("interval")
            shown["interval_ms"] = [round(old_interval * 1000), round(new_interval * 1000)]
        return {"joined_by": by, "level_db": level_db, **shown}

    @staticmethod
    def _rank(evidence: dict) -> tuple:
        """Order of preference: the same id, then more that agrees, a closer level, a shorter gap."""
        return (evidence["joined_by"] == ["same_id"], len(evidence["joined_by"]),
                -abs(evidence.get("level_db", 0)), -evidence["gap_s"])

    def _best_predecessor(self, new: _Beacon) -> tuple[_Beacon | None, dict | None]:
        """The older identity `new` most likely continues, with the evidence; (None, None)."""
        best: _Beacon | None = None
        best_evidence: dict | None = None
        for old in self._beacons.values():
            evidence = self._evidence(new, old)
            if evidence is not None and (best_evidence is None or self._rank(evidence) > self._rank(best_evidence)):
                best, best_evidence = old, evidence
        return best, best_evidence

    def _settle(self, new: _Beacon) -> None:
        """Decide, once JUNCTION seconds of it are heard, whether `new` continues a lineage."""
        new.settled = True
        old, evidence = self._best_predecessor(new)
        if old is None:
            return
        old.successor = new
        new.joined = evidence
        absorbed, lineage = new.lineage, old.lineage
        lineage.absorb(absorbed)
        for beacon in self._beacons.values():         # newer identities already joined to it
            if beacon.lineage is absorbed:
                beacon.lineage = lineage

    def _split(self, old: _Beacon) -> None:
        """Undo the join of `old`'s successor: both are heard, so they are two phones. The
        successor and the identities that continued it get a lineage of their own."""
        new, old.successor = old.successor, None
        assert new is not None                        # only a beacon with a successor is split
        new.joined = None
        shared = new.lineage
        lineage = _Lineage(next(self._lineage_ids), first_seen=new.first)
        moved = []
        beacon: _Beacon | None = new
        while beacon is not None and beacon.lineage is shared:
            moved.append(beacon)
            beacon.lineage = lineage
            beacon = beacon.successor
        for t, rssi in sorted(s for b in moved for s in b.sightings):
            lineage.add(t, rssi, away=self.window)
        lineage.first_seen = new.first
        lineage.identities.extend(moved)
        shared.identities = deque((b for b in shared.identities if b not in moved),
                                  maxlen=SHOWN_IDENTITIES)

    def _provisional(self) -> dict:
        """Lineages for identities heard for less than JUNCTION seconds: the best match so
        far, each older identity continued by at most one newer."""
        pairs = []
        for new in self._beacons.values():
            if not new.settled:
                for old in self._beacons.values():
                    evidence = self._evidence(new, old)
                    if evidence is not None:
                        pairs.append((self._rank(evidence), id(new), new, old, evidence))
        links, taken = {}, set()
        for _, _, new, old, evidence in sorted(pairs, key=lambda p: p[:2], reverse=True):
            if id(new) not in links and id(old) not in taken:
                links[id(new)] = (old, evidence)
                taken.add(id(old))
        return links

    def _forget_before(self, t: float) -> None:
        for key in [k for k, b in self._beacons.items() if b.last[0] < t]:
            del self._beacons[key]

    # -- asking ------------------------------------------------------------------------------
    def _assess(self, t: float) -> list[dict]:
        """The near beacons of the required families at t, each with its lineage and whether
        it counts for the visitor scanned at t. Call with the lock held."""
        links = self._provisional()
        rows = []
        for beacon in self._beacons.values():
            if beacon.family not in self.required:
                continue
            rssi = self._rssi(beacon, t)
            if rssi is None or rssi < self.rssi_near:
                continue
            chain: list[tuple[_Beacon, dict]] = []
            lineage, current = beacon.lineage, beacon
            link = links.get(id(beacon))
            while link is not None and len(chain) < SHOWN_IDENTITIES:   # not yet settled
                old, evidence = link
                chain.append((current, evidence))
                current, lineage, link = old, old.lineage, links.get(id(old))
            arrived = lineage.first_seen >= t - self.arrival_window
            usual = lineage.level(t - BASELINE_FROM, t - BASELINE_TO)
            rose = usual is not None and rssi - usual >= self.rise_db
            rows.append({"beacon": beacon, "rssi": rssi, "lineage": lineage, "provisional": chain,
                         "arrived": arrived, "usual": usual, "rose": rose})
        return rows

    def at(self, t: float) -> Presence:
        """The app outcome for a visitor scanned at time t."""
        with self._lock:
            near = [(r["beacon"].strength == families.STRONG, r["rssi"], r["beacon"].family)
                    for r in self._assess(t) if r["arrived"] or r["rose"]]
        if not near:
            return Presence(NOT_DETECTED)
        strong, rssi, family = max(near)
        return Presence(CONFIRMED if strong else LIKELY, family, rssi, len(near))

    def lineage_at(self, t: float) -> dict | None:
        """The lineage behind the outcome at t: the counted beacon's, or when none counts the
        strongest near one's; None when no required beacon is near.

        :returns: {"id", "counted", "why", "first_seen", "identities": [{"addr", "id" (first
            8 hex digits), "from", "to", "joined_by", "gap_s", "level_db", "interval_ms"}]}
        """
        with self._lock:
            rows = self._assess(t)
            if not rows:
                return None
            row = max(rows, key=lambda r: (r["arrived"] or r["rose"],
                                           r["beacon"].strength == families.STRONG, r["rssi"]))
            lineage = row["lineage"]
            identities = [b.describe() for b in lineage.identities]
            for beacon, evidence in reversed(row["provisional"]):
                identities.append({**beacon.describe(), **evidence, "provisional": True})
        usual = row["usual"]
        if row["arrived"]:
            why = f"arrived {t - lineage.first_seen:.0f} s before"
        elif row["rose"]:
            why = f"rose {row['rssi'] - usual:.0f} dB over its usual {usual:.0f} dBm"
        else:
            why = (f"near for {t - lineage.first_seen:.0f} s, not new (arrival window "
                   f"{self.arrival_window:.0f} s)" + ("" if usual is None else
                   f" and not rising ({row['rssi']} dBm, usual {usual:.0f} dBm)"))
        for identity in identities:
            if "level_db" in identity:
                identity["level_db"] = round(identity["level_db"], 1)
        return {"id": lineage.id, "counted": row["arrived"] or row["rose"], "why": why,
                "first_seen": lineage.first_seen, "identities": identities}

    def _rssi(self, beacon: _Beacon, t: float) -> int | None:
        heard = [(ts, r) for ts, r in beacon.sightings if t - self.window <= ts <= t + GRACE]
        if not heard:
            return None
        latest = heard[-1][0]
        recent = [r for ts, r in heard if ts >= latest - SMOOTH]
        return round(sum(recent) / len(recent))

    def strongest(self, t: float, n: int = 5) -> list[dict]:
        """The n strongest beacons of any app family heard around t (for calibration)."""
        rows: list[dict[str, Any]] = []
        with self._lock:
            for (addr, family, _), beacon in self._beacons.items():
                rssi = self._rssi(beacon, t)
                if rssi is not None:
                    rows.append({"addr": addr, "family": family, "strength": beacon.strength,
                                 "rssi": rssi, "near": rssi >= self.rssi_near,
                                 "heard_for": round(t - beacon.lineage.first_seen)})
        return sorted(rows, key=lambda r: -r["rssi"])[:n]
