"""Running a capture through the door's parser, classifier and tracker (`kiosk ble analyze`)."""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from ..model import Advertisement
from . import advertising, families
from .presence import PresenceTracker


def presence_at(records: Iterable[Advertisement], tracker: PresenceTracker, times: list[float]) -> list[dict]:
    """The outcome at each time, as the door would have seen it then: the tracker has heard
    exactly the advertisements stamped at or before that time. `lineage` is the phone behind
    the outcome and the identities joined into it, with why (PresenceTracker.lineage_at)."""
    records = sorted(records, key=lambda a: a.t)
    results = {}
    i = 0
    for at in sorted(set(times)):
        while i < len(records) and records[i].t <= at:
            tracker.record(records[i])
            i += 1
        p = tracker.at(at)
        results[at] = {"at": at, "outcome": p.outcome, "family": p.family, "rssi": p.rssi,
                       "lineage": tracker.lineage_at(at)}
    return [results[at] for at in times]


def summary(records: Iterable[Advertisement]) -> dict:
    """Families heard in a capture, with advertisement and identity counts."""
    adverts: Counter[str] = Counter()
    beacons: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)
    strengths: defaultdict[str, Counter[str]] = defaultdict(Counter)
    total = not_app = malformed = 0
    first: float | None = None
    last: float | None = None
    for advert in records:
        total += 1
        first = advert.t if first is None else min(first, advert.t)
        last = advert.t if last is None else max(last, advert.t)
        ad = advertising.parse(advert.raw)
        malformed += ad.malformed
        matches = families.classify(ad)
        if not matches:
            not_app += 1
        for m in matches:
            adverts[m.family] += 1
            beacons[m.family].add((advert.addr, m.beacon_id))
            strengths[m.family][m.strength] += 1
    return {"adverts": total, "seconds": round(last - first, 3) if first is not None and last is not None else 0.0,
            "not_app": not_app, "malformed": malformed,
            "families": {f: {"adverts": adverts[f], "identities": len(beacons[f]),
                             **dict(strengths[f])} for f in sorted(adverts)}}
