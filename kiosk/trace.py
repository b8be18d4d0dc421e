"""Stays (an entry matched with its exit) and the contact-tracing query over them.

Pure: entries in (their JSON form, as the kiosk's log and the central hold them), stays and
contacts out. No IO, no clock reads: every time is an argument (UNIX seconds).

"The same person" is the payload `fingerprint` (a keyed hash of the QR code): a site pass, a
DCC or a PC-Covid QR shown again by the same person gives the same fingerprint, at any gate
whose kiosk holds the same fingerprint key (docs/privacy.md, "Contact tracing"). A new site
pass (a new declaration) is a new code, hence a new person to this module.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from functools import partial
from operator import itemgetter
from typing import NamedTuple

from .model import CONFIRMED, LIKELY, NOT_DETECTED, TraceRow, iso, parse_iso

__all__ = ["Stay", "Contact", "is_exit", "admitted", "stays", "stays_from_rows", "inside_now", "contacts",
           "query", "query_rows", "TRACE_FIELDS"]

# Strongest first: a contact's app is the best outcome heard at any of their overlapping entries.
_APP_RANK = {CONFIRMED: 0, LIKELY: 1, NOT_DETECTED: 2}
# The JSON-lines fields of `kiosk trace` and `kiosk-central trace`, one contact per line.
TRACE_FIELDS = ("holder", "overlap_minutes", "stays", "app", "assumed")


# NamedTuples, not frozen dataclasses: a query builds tens of thousands of them, and a
# frozen dataclass costs ten times as much to build.
class Stay(NamedTuple):
    """One person's time at the site: from an entry to its exit, or assumed.

    :param start: UNIX seconds of the entry.
    :param end: UNIX seconds of the exit, or of the assumed end when `assumed`.
    :param assumed: no exit was matched: the end is `default_stay` after the entry, or the
        person's next entry when that came first.
    """

    person: str
    site: str
    start: float
    end: float
    entry_id: str
    exit_id: str | None
    entry_gate: str
    exit_gate: str | None
    assumed: bool
    holder: str | None
    app: str
    clock_unsynced: bool

    def to_json(self) -> dict:
        d = {"entry": self.entry_id, "exit": self.exit_id, "from": iso(self.start), "to": iso(self.end),
             "gates": [g for g in (self.entry_gate, self.exit_gate) if g], "assumed": self.assumed,
             "app": self.app}
        if self.clock_unsynced:
            d["clock_unsynced"] = True
        return d


class Contact(NamedTuple):
    """Another person whose stays overlapped the traced person's.

    :param overlap: seconds of overlap in total over the window.
    :param stays: the contact's stays that overlapped.
    :param assumed: some overlap rests on an assumed stay (theirs or the traced person's).
    """

    person: str
    holder: str | None
    overlap: float
    stays: tuple[Stay, ...]
    app: str
    assumed: bool
    clock_unsynced: bool
    phone: str | None = None

    def to_json(self) -> dict:
        d = {"holder": self.holder, "overlap_minutes": round(self.overlap / 60, 1),
             "stays": [s.to_json() for s in self.stays], "app": self.app, "assumed": self.assumed,
             "gates": sorted({g for s in self.stays for g in (s.entry_gate, s.exit_gate) if g}),
             "phone": self.phone}
        if self.clock_unsynced:
            d["clock_unsynced"] = True
        return d


def is_exit(d: Mapping) -> bool:
    """Whether an entry records someone leaving: an exit kiosk's, or marked "Ra về" by the guard."""
    return d["direction"] == "out" or (d.get("override") or {}).get("action") == "exit"


def admitted(d: Mapping) -> bool:
    """Whether an entry (not an exit) let its holder in, as far as the log tells.

    A guard's allow lets in, a guard's deny keeps out, a plain deny keeps out. A review the
    guard never answered counts as admitted: for tracing, a contact missed costs more than
    one called for nothing.
    """
    action = (d.get("override") or {}).get("action")
    if action in ("allow", "deny"):
        return action == "allow"
    return d["decision"] != "deny"


def stays(docs: Iterable[Mapping], default_stay: float, max_stay: float) -> list[Stay]:
    """The stays of every person in `docs` (entries of one or more sites, any order).

    An entry opens a stay; the person's first exit after it at the same site, within
    `max_stay` and before their next entry, closes it. Otherwise the stay is assumed: it
    ends `default_stay` after the entry, or at the person's next entry if sooner. An exit
    with no open stay (its entry fell before the entries given) makes none.

    :param default_stay: seconds of an assumed stay (trace.default_stay).
    :param max_stay: seconds after an entry beyond which an exit is not its own (trace.max_stay).
    :returns: stays ordered by person, then start.
    """
    by_person: dict[tuple[str, str], list[Mapping]] = {}
    for d in docs:
        if d.get("fingerprint"):
            by_person.setdefault((d["site"], d["fingerprint"]), []).append(d)
    out: list[Stay] = []
    for (site, person), events in by_person.items():
        events.sort(key=lambda d: (d["time"], d["id"]))
        opened: Mapping | None = None
        for d in events:
            t = parse_iso(d["time"])
            if is_exit(d):
                if opened is not None:
                    start = parse_iso(opened["time"])
                    if t - start <= max_stay:
                        out.append(_stay(site, person, opened, start, t, d))
                    else:
                        out.append(_stay(site, person, opened, start, start + default_stay, None))
                    opened = None
                continue
            if not admitted(d):
                continue
            if opened is not None:
                start = parse_iso(opened["time"])
                out.append(_stay(site, person, opened, start, min(start + default_stay, t), None))
            opened = d
        if opened is not None:
            start = parse_iso(opened["time"])
            out.append(_stay(site, person, opened, start, start + default_stay, None))
    out.sort(key=lambda s: (s.person, s.start))
    return out


def _stay(site: str, person: str, entry: Mapping, start: float, end: float, exit_doc: Mapping | None) -> Stay:
    return Stay(person=person, site=site, start=start, end=end, entry_id=entry["id"],
                exit_id=exit_doc["id"] if exit_doc else None, entry_gate=entry["kiosk"],
                exit_gate=exit_doc["kiosk"] if exit_doc else None, assumed=exit_doc is None,
                holder=(entry.get("declaration") or {}).get("holder"),
                app=(entry.get("ble") or {}).get("outcome") or NOT_DETECTED,
                clock_unsynced=bool(entry.get("clock_unsynced") or (exit_doc or {}).get("clock_unsynced")))


# One person's events in the order `stays` walks them: by time, then id.
_EVENT_ORDER = itemgetter(0, 1)
_PERSON_ORDER = itemgetter(1, 0)            # (site, person) by person


def stays_from_rows(rows: Iterable[TraceRow], default_stay: float, max_stay: float) -> list[Stay]:
    """The stays `stays` gives, from the entries' tracing rows (model.TraceRow: times
    already in UNIX seconds, as the entry log's tracing projection holds them).

    :param rows: the rows of entries with a fingerprint, any order.
    :param default_stay: seconds of an assumed stay (trace.default_stay).
    :param max_stay: seconds after an entry beyond which an exit is not its own (trace.max_stay).
    :returns: stays ordered by person, then start.
    """
    by_person: dict[tuple[str, str], list[TraceRow]] = {}
    for r in rows:
        key = (r[2], r[3])                                                   # site, person
        events = by_person.get(key)
        if events is None:
            by_person[key] = [r]
        else:
            events.append(r)
    out: list[Stay] = []
    add = out.append
    # People in order, each one's stays made in order of start: the order `stays` gives,
    # without one sort of every stay (20 ms at 30,000 stays, the interpreter lock held
    # throughout, while the door's appends wait for it).
    for site, person in sorted(by_person, key=_PERSON_ORDER):
        events = by_person[site, person]
        events.sort(key=_EVENT_ORDER)
        opened: TraceRow | None = None
        for r in events:
            t, _, _, _, _, direction, action, decision, _, _, _ = r
            if direction == "out" or action == "exit":                     # is_exit
                if opened is not None:
                    start = opened[0]
                    add(_row_stay(site, person, opened, t, r) if t - start <= max_stay else
                        _row_stay(site, person, opened, start + default_stay, None))
                    opened = None
                continue
            if action == "deny" or (action != "allow" and decision == "deny"):      # not admitted
                continue
            if opened is not None:
                add(_row_stay(site, person, opened, min(opened[0] + default_stay, t), None))
            opened = r
        if opened is not None:
            add(_row_stay(site, person, opened, opened[0] + default_stay, None))
    if len({site for site, _ in by_person}) > 1:
        out.sort(key=lambda s: (s.person, s.start))      # a person's stays at two sites interleave
    return out


# Tens of thousands of stays a query: tuple.__new__ straight, not the NamedTuple's own
# __new__ (a Python function with one argument per field, three times slower).
_new_stay = partial(tuple.__new__, Stay)


def _row_stay(site: str, person: str, entry: TraceRow, end: float, exit_row: TraceRow | None) -> Stay:
    t, entry_id, _, _, gate, _, _, _, holder, app, unsynced = entry
    if exit_row is None:
        return _new_stay((person, site, t, end, entry_id, None, gate, None, True, holder, app or NOT_DETECTED,
                          unsynced))
    return _new_stay((person, site, t, end, entry_id, exit_row[1], gate, exit_row[4], False, holder,
                      app or NOT_DETECTED, unsynced or exit_row[10]))


def inside_now(all_stays: Iterable[Stay], now: float) -> list[Stay]:
    """The stays going on at `now`: people inside, by their exit not yet seen (an assumed
    stay counts until its assumed end)."""
    return sorted((s for s in all_stays if s.start <= now < s.end), key=lambda s: s.start)


def contacts(target: Iterable[Stay], others: Iterable[Stay], min_overlap: float, since: float,
             until: float) -> list[Contact]:
    """Everyone whose stays overlapped the target's by at least `min_overlap` seconds in
    total within [since, until).

    A person's stays never overlap one another (a stay ends at the next entry), so the sum
    of pairwise overlaps is the time they were both inside.

    :param target: the traced person's stays.
    :param others: candidate stays (the target's own are skipped); same site as the target's.
    :returns: contacts, longest overlap first.
    """
    mine = sorted((s for s in target if s.end > since and s.start < until), key=lambda s: s.start)
    if not mine:
        return []
    me = {s.person for s in mine}
    # A person's stays do not overlap one another: sorted by start, their ends are sorted too.
    ends = [t.end for t in mine]
    found: dict[str, list] = {}
    for s in others:
        if s.person in me:
            continue
        i = bisect.bisect_right(ends, s.start)
        while i < len(mine) and mine[i].start < s.end:
            t = mine[i]
            i += 1
            if t.site != s.site:
                continue
            lo, hi = max(s.start, t.start, since), min(s.end, t.end, until)
            if hi > lo:
                found.setdefault(s.person, []).append((s, t, hi - lo))
    out = []
    for person, hits in found.items():
        total = sum(h[2] for h in hits)
        if total < min_overlap:
            continue
        theirs = tuple(sorted({h[0] for h in hits}, key=lambda s: s.start))
        named = [s.holder for s in theirs if s.holder]
        out.append(Contact(person=person, holder=named[-1] if named else None, overlap=total, stays=theirs,
                           app=min((s.app for s in theirs), key=lambda a: _APP_RANK.get(a, 3)),
                           assumed=any(h[0].assumed or h[1].assumed for h in hits),
                           clock_unsynced=any(h[0].clock_unsynced or h[1].clock_unsynced for h in hits)))
    out.sort(key=lambda c: (-c.overlap, c.holder or "", c.person))
    return out


def query(docs: Iterable[Mapping], person: str, site: str, since: float, until: float, default_stay: float,
          max_stay: float, min_overlap: float) -> tuple[list[Stay], list[Contact]]:
    """The traced person's stays at `site` within [since, until) and their contacts.

    :param docs: the site's entries from `max_stay` before `since` to `until` (an earlier
        entry cannot reach into the window).
    """
    every = [s for s in stays(docs, default_stay, max_stay) if s.site == site]
    mine = [s for s in every if s.person == person and s.end > since and s.start < until]
    return mine, contacts(mine, every, min_overlap, since, until)


def query_rows(rows: Iterable[TraceRow], person: str, site: str, since: float, until: float,
               default_stay: float, max_stay: float, min_overlap: float) -> tuple[list[Stay], list[Contact]]:
    """`query` on the entries' tracing rows (model.TraceRow) rather than their JSON form.

    :param rows: the site's rows from `max_stay` before `since` to `until`.
    """
    every = stays_from_rows((r for r in rows if r.site == site), default_stay, max_stay)
    mine = [s for s in every if s.person == person and s.end > since and s.start < until]
    return mine, contacts(mine, every, min_overlap, since, until)


# The health authority's CSV: one row per contact.
CSV_COLUMNS = ("holder", "phone", "overlap_minutes", "app", "assumed", "clock_unsynced", "gates", "first_in",
               "last_out", "stays")


def csv_row(contact: Contact, tz) -> list:
    """A contact as a CSV row; times local to `tz` (a tzinfo)."""
    from datetime import datetime

    def local(t: float) -> str:
        return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M")

    c = contact.to_json()
    return [c["holder"] or "", c["phone"] or "", c["overlap_minutes"], c["app"], "yes" if c["assumed"] else "no",
            "yes" if contact.clock_unsynced else "no", " ".join(c["gates"]),
            local(contact.stays[0].start), local(contact.stays[-1].end), len(contact.stays)]


def phone_for(holder: str | None, declarations: Iterable[Mapping], same) -> str | None:
    """The phone number of the latest declaration under the holder's name, or None.

    :param same: the name comparison (names.same).
    """
    if not holder:
        return None
    phones = [d.get("phone") for d in declarations if d.get("phone") and same(d.get("name"), holder)]
    return phones[-1] if phones else None
