"""The contact-tracing query on the window's rows held as arrays (numpy), for the kiosk.

The same answers as trace.query_rows (the same stays, totals, order and contacts), without a
Python object per row, per stay or per contact not asked for: the rows are columns (times,
and codes into one table of strings), the stays and the overlaps are computed on arrays,
and Contact objects are built for the page asked only. Pure like kiosk/trace.py: no IO, no
clock reads.

The kiosk answers on a Raspberry Pi 4 core, about a quarter of a desktop core
(docs/performance.md), within a second for 100k entries: hence arrays.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import partial
from operator import itemgetter, methodcaller

import numpy as np

from .model import NOT_DETECTED, TraceRow, iso, parse_iso
from .names import normalise
from .trace import _APP_RANK, Contact, Stay, contacts

__all__ = ["TraceColumns", "ColumnsBuilder", "StayArrays", "iso_seconds", "columns_of_rows", "columns_of_docs",
           "stay_arrays", "query_columns", "inside_count", "people_named"]

# The interned fields of a row, as the tracing projection keeps them (store/tracing.py).
INTERNED = ("site", "person", "gate", "direction", "action", "decision", "holder", "app")
_new_stay = partial(tuple.__new__, Stay)
_new_row = partial(tuple.__new__, TraceRow)


# The form model.iso writes, the form of every time in the log (model.entry_problem). Year
# 0000 is left to parse_iso: numpy takes it, datetime has no year 0.
_ISO_MS_LINES = re.compile(r"(?:(?!0000)[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\n)*")


def iso_seconds(times: list[str]) -> np.ndarray:
    """model.parse_iso of each time, as float64: the same floats (whole milliseconds over
    1000, rounded once either way), parsed by numpy when all are in model.iso's form."""
    if _ISO_MS_LINES.fullmatch("\n".join(times) + "\n" if times else ""):
        try:
            ms = np.array([s[:-1] for s in times], "datetime64[ms]").astype(np.int64)
            return ms / 1000.0
        except ValueError:                     # a day that is no date (02-30): parse_iso says so
            pass
    return np.fromiter(map(parse_iso, times), np.float64, len(times))


class TraceColumns:
    """Tracing rows (model.TraceRow) as arrays, one element per row, in no particular order.

    :param strings: the table every code indexes (code 0 is None).
    :param t: float64 UNIX seconds of each row.
    :param id: the entries' ids (an object array of str).
    :param codes: for each field of INTERNED, an int32 array of codes into `strings`.
    :param clock_unsynced: a bool array.
    """

    def __init__(self, strings: list, t: np.ndarray, id: np.ndarray, codes: dict[str, np.ndarray],
                 clock_unsynced: np.ndarray):
        self.strings = strings
        self.t = t
        self.id = id
        self.codes = codes
        self.clock_unsynced = clock_unsynced
        self._index: dict | None = None

    def __len__(self) -> int:
        return len(self.t)

    def code(self, value) -> int:
        """The code of `value` in `strings`, or -1 (no row holds it)."""
        if self._index is None:
            self._index = {s: i for i, s in enumerate(self.strings)}
        return self._index.get(value, -1)

    def select(self, mask: np.ndarray) -> TraceColumns:
        """The rows where `mask` holds (the same string table)."""
        return TraceColumns(self.strings, self.t[mask], self.id[mask], {k: v[mask] for k, v in self.codes.items()},
                            self.clock_unsynced[mask])

    def rows(self) -> list[TraceRow]:
        """The rows as model.TraceRow tuples."""
        lookup = self.strings.__getitem__
        fields = [self.t.tolist(), self.id.tolist(), *(map(lookup, self.codes[k].tolist()) for k in INTERNED),
                  self.clock_unsynced.tolist()]
        return list(map(_new_row, zip(*fields, strict=True)))


class ColumnsBuilder:
    """Puts the window's rows together, day by day, into one TraceColumns: a closed day's
    from its projection's columns (their strings mapped to one table), an open day's from
    the entries' documents."""

    def __init__(self) -> None:
        self.strings: list = [None]
        self.index: dict = {None: 0}
        self._t: list[np.ndarray] = []
        self._ids: list = []
        self._codes: dict[str, list[np.ndarray]] = {k: [] for k in INTERNED}
        self._unsynced: list[np.ndarray] = []

    def _lookup(self, values: list) -> np.ndarray:
        """The codes of `values` in the one table (the new ones added to it)."""
        index, strings = self.index, self.strings
        try:
            return np.fromiter(map(index.__getitem__, values), np.int32, len(values))
        except KeyError:
            for v in values:
                if v not in index:
                    index[v] = len(strings)
                    strings.append(v)
        return np.fromiter(map(index.__getitem__, values), np.int32, len(values))

    def _add(self, t: np.ndarray, ids: list, codes: dict[str, np.ndarray], unsynced: np.ndarray) -> None:
        self._t.append(t)
        self._ids += ids
        for k in INTERNED:
            self._codes[k].append(codes[k])
        self._unsynced.append(unsynced)

    def add_columns(self, cols: Mapping) -> None:
        """Add a day held in the projection's form (store/tracing.py `columns`).

        :raises ValueError: the columns do not make rows (a code past the day's strings, a
            value of the wrong type, columns of unequal lengths); nothing is added then.
        """
        try:
            local = cols["strings"]
            lookup = self._lookup(local)
            n = len(cols["t"])
            t = np.fromiter(cols["t"], np.float64, n)
            codes = {}
            for k in INTERNED:
                raw = cols[k]
                if len(raw) != n:
                    raise ValueError(f"the column {k} is not as long as the times")
                raw = np.fromiter(raw, np.int64, n)
                if n and (raw.min() < 0 or raw.max() >= len(local)):
                    raise ValueError(f"the column {k} does not index the strings")
                codes[k] = lookup[raw]
            ids, unsynced = cols["id"], cols["clock_unsynced"]
            if len(ids) != n or len(unsynced) != n:
                raise ValueError("the columns are not of one length")
            unsynced = np.fromiter(unsynced, bool, n)
        except (TypeError, KeyError) as e:
            raise ValueError(f"the columns do not read: {e!r}") from None
        self._add(t, list(ids), codes, unsynced)

    def add_arrays(self, cols: TraceColumns) -> None:
        """Add the rows of another TraceColumns (their codes mapped to this table)."""
        lookup = self._lookup(cols.strings)
        self._add(cols.t, cols.id.tolist(), {k: lookup[cols.codes[k]] for k in INTERNED}, cols.clock_unsynced)

    def add_docs(self, docs: Iterable[Mapping]) -> None:
        """Add entries in their JSON form, as model.TraceRow.of reads them (those without a
        fingerprint are left out)."""
        docs = [d for d in docs if d.get("fingerprint")]
        n = len(docs)
        if not n:
            return
        # Field by field through map (the loop in C): a day of the writer's documents is
        # read at every trace and every count of who is inside.
        def field(key: str) -> list:
            return list(map(itemgetter(key), docs))

        def inner(key: str, name: str) -> list:
            # An object of JSON is a dict: anything else counts as absent (TraceRow.of).
            return [o.get(name) if isinstance(o, dict) else None for o in map(methodcaller("get", key), docs)]

        values = {"site": field("site"), "person": field("fingerprint"), "gate": field("kiosk"),
                  "direction": field("direction"), "action": inner("override", "action"),
                  "decision": field("decision"), "holder": inner("declaration", "holder"),
                  "app": inner("ble", "outcome")}
        unsynced = np.fromiter(map(bool, map(methodcaller("get", "clock_unsynced"), docs)), bool, n)
        self._add(iso_seconds(field("time")), field("id"), {k: self._lookup(values[k]) for k in INTERNED}, unsynced)

    def add_rows(self, rows: list[TraceRow]) -> None:
        """Add rows (model.TraceRow)."""
        if not rows:
            return
        t, ids, *fields, unsynced = zip(*rows, strict=True)
        self._add(np.array(t, np.float64), list(ids),
                  {k: self._lookup(list(v)) for k, v in zip(INTERNED, fields, strict=True)},
                  np.array(unsynced, bool))

    def build(self, since: float | None = None, until: float | None = None) -> TraceColumns:
        """The rows added with since <= t < until (None: no bound)."""
        if self._t:
            t = np.concatenate(self._t)
            codes = {k: np.concatenate(v) for k, v in self._codes.items()}
            unsynced = np.concatenate(self._unsynced)
        else:
            t, unsynced = np.empty(0, np.float64), np.empty(0, bool)
            codes = {k: np.empty(0, np.int32) for k in INTERNED}
        ids = np.empty(len(self._ids), object)
        ids[:] = self._ids
        cols = TraceColumns(self.strings, t, ids, codes, unsynced)
        if since is None and until is None:
            return cols
        keep = np.ones(len(t), bool)
        if since is not None:
            keep &= t >= since
        if until is not None:
            keep &= t < until
        return cols if keep.all() else cols.select(keep)


def columns_of_rows(rows: Iterable[TraceRow]) -> TraceColumns:
    """Rows (model.TraceRow) as TraceColumns."""
    b = ColumnsBuilder()
    b.add_rows(list(rows))
    return b.build()


def columns_of_docs(docs: Iterable[Mapping]) -> TraceColumns:
    """Entries in their JSON form as TraceColumns (those with a fingerprint)."""
    b = ColumnsBuilder()
    b.add_docs(docs)
    return b.build()


class StayArrays:
    """Stays (trace.Stay) as arrays, one element per stay, ordered by (site, person), then
    as trace.stays_from_rows makes a person's: by start.

    :param entry: the row (in the TraceColumns) of each stay's entry.
    :param exit: the row of its exit, or -1 when assumed.
    """

    def __init__(self, cols: TraceColumns, entry: np.ndarray, exit: np.ndarray, start: np.ndarray,
                 end: np.ndarray):
        self.cols = cols
        self.entry = entry
        self.exit = exit
        self.start = start
        self.end = end
        self.site = cols.codes["site"][entry]
        self.person = cols.codes["person"][entry]
        self.assumed = exit < 0
        self.clock_unsynced = cols.clock_unsynced[entry] | (~self.assumed & cols.clock_unsynced[exit])

    def __len__(self) -> int:
        return len(self.entry)

    def stay(self, i: int) -> Stay:
        """The i-th stay as a trace.Stay."""
        cols, s = self.cols, self.cols.strings
        codes = cols.codes
        e, x = int(self.entry[i]), int(self.exit[i])
        app = s[codes["app"][e]]
        return _new_stay((s[codes["person"][e]], s[codes["site"][e]], float(self.start[i]), float(self.end[i]),
                          cols.id[e], cols.id[x] if x >= 0 else None, s[codes["gate"][e]],
                          s[codes["gate"][x]] if x >= 0 else None, x < 0, s[codes["holder"][e]],
                          app or NOT_DETECTED, bool(self.clock_unsynced[i])))


def stay_arrays(cols: TraceColumns, default_stay: float, max_stay: float) -> StayArrays:
    """The stays of every (site, person) in `cols`: those trace.stays_from_rows makes.

    A row that is no exit and let nobody in changes nothing, so it is dropped; sorted by
    (site, person, time, id), an entry's stay then ends at the person's next event: an exit
    within `max_stay` (its end), an exit later than that (assumed: `default_stay`), another
    entry (assumed: `default_stay`, or that entry if sooner), none (assumed). An exit after
    an exit finds nothing open and makes nothing.

    :param default_stay: seconds of an assumed stay (trace.default_stay).
    :param max_stay: seconds after an entry beyond which an exit is not its own (trace.max_stay).
    """
    c = cols.codes
    out, exit_action = cols.code("out"), cols.code("exit")
    allow, deny = cols.code("allow"), cols.code("deny")
    is_exit = (c["direction"] == out) | (c["action"] == exit_action)
    refused = (c["action"] == deny) | ((c["action"] != allow) & (c["decision"] == deny))
    idx = np.flatnonzero(is_exit | ~refused)
    site, person, t = c["site"][idx], c["person"][idx], cols.t[idx]
    order = np.lexsort((t, person, site))
    idx, site, person, t = idx[order], site[order], person[order], t[order]
    # Events of one person at the same instant go by id, as trace.stays orders them.
    same = (site[1:] == site[:-1]) & (person[1:] == person[:-1]) & (t[1:] == t[:-1])
    if same.any():
        ids = cols.id
        for a, b in _runs(same):
            idx[a:b] = sorted(idx[a:b].tolist(), key=ids.__getitem__)
    x = is_exit[idx]
    n = len(idx)
    ent = np.flatnonzero(~x)
    nxt = np.minimum(ent + 1, n - 1) if n else ent
    has_next = (ent + 1 < n)
    has_next &= (site[nxt] == site[ent]) & (person[nxt] == person[ent])
    start = t[ent]
    assumed_end = start + default_stay
    next_exit = has_next & x[nxt]
    closes = next_exit & (t[nxt] - start <= max_stay)
    cut = has_next & ~x[nxt]
    end = np.where(closes, t[nxt], np.where(cut, np.minimum(assumed_end, t[nxt]), assumed_end))
    exit_row = np.where(closes, idx[nxt], -1)
    return StayArrays(cols, idx[ent], exit_row, start, end)


def _runs(same: np.ndarray) -> list[tuple[int, int]]:
    """[a, b) of each run of equal neighbours, `same[i]` telling whether i and i + 1 are."""
    edges = np.diff(np.concatenate(([0], same.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) + 1).tolist(), strict=True))


def inside_count(cols: TraceColumns, now: float, default_stay: float, max_stay: float) -> int:
    """How many stays go on at `now` (trace.inside_now's length, every site of `cols`)."""
    s = stay_arrays(cols, default_stay, max_stay)
    return int(np.count_nonzero((s.start <= now) & (now < s.end)))


def query_columns(cols: TraceColumns, person: str, site: str, since: float, until: float, default_stay: float,
                  max_stay: float, min_overlap: float, limit: int | None = None,
                  offset: int = 0) -> tuple[list[Stay], int, list[Contact]]:
    """trace.query_rows on columns: the traced person's stays at `site` within [since,
    until), how many contacts they have, and the contacts from `offset`, at most `limit`
    (None: all), in trace.contacts' order; each the same as query_rows gives.

    :param cols: the site's rows from `max_stay` before `since` to `until` (others are left out).
    :param min_overlap: seconds together in total to be listed.
    """
    site_code, me = cols.code(site), cols.code(person)
    if site_code < 0 or me < 0:
        return [], 0, []
    cols = cols.select(cols.codes["site"] == site_code)
    every = stay_arrays(cols, default_stay, max_stay)
    mine_at = np.flatnonzero((every.person == me) & (every.end > since) & (every.start < until))
    mine = [every.stay(i) for i in mine_at.tolist()]
    if not mine:
        return [], 0, []
    if default_stay > max_stay:
        # Then a person's stays may overlap one another (an exit past max_stay leaves the
        # stay its default length, past their next entry), and trace.contacts' walk along
        # the traced stays' ends is what defines the answer: it is taken as it is.
        found = contacts(mine, (every.stay(i) for i in range(len(every))), min_overlap, since, until)
        return mine, len(found), found[offset:None if limit is None else offset + limit]
    # Each pair (their stay, my stay) overlapping within the window. In the order
    # trace.contacts adds them up (their stays by start, then mine by start), so that each
    # person's total is the same float, whatever the times.
    pair_stay, pair_mine, pair_overlap = [], [], []
    others = every.person != me
    for k, i in enumerate(mine_at.tolist()):
        lo = np.maximum(every.start, max(float(every.start[i]), since))
        hi = np.minimum(every.end, min(float(every.end[i]), until))
        hit = np.flatnonzero(others & (hi > lo))
        pair_stay.append(hit)
        pair_mine.append(np.full(len(hit), k))
        pair_overlap.append(hi[hit] - lo[hit])
    stay_of = np.concatenate(pair_stay)
    if not len(stay_of):
        return mine, 0, []
    mine_of, overlap = np.concatenate(pair_mine), np.concatenate(pair_overlap)
    order = np.lexsort((mine_of, stay_of))
    stay_of, mine_of, overlap = stay_of[order], mine_of[order], overlap[order]
    who = every.person[stay_of]
    totals = np.bincount(who, weights=overlap, minlength=len(cols.strings))
    people = np.unique(who)
    people = people[totals[people] >= min_overlap]
    if not len(people):
        return mine, 0, []
    # Each contact's name: that of their latest overlapping stay that has one (stays run by
    # person, then start: the named stay of highest index).
    strings = cols.strings
    holder_of = cols.codes["holder"][every.entry[stay_of]]
    named = np.array([bool(s) for s in strings])[holder_of]
    latest = np.full(len(strings), -1, np.int64)
    np.maximum.at(latest, who[named], stay_of[named])
    holder = np.where(latest >= 0, cols.codes["holder"][every.entry[np.maximum(latest, 0)]], 0)    # 0: None
    ranked = sorted((-totals[p], strings[holder[p]] or "", strings[p], p) for p in people.tolist())
    total = len(ranked)
    page = ranked[offset:None if limit is None else offset + limit]
    if not page:
        return mine, total, []
    # The pairs of the page's people only, grouped by person.
    by_person = np.argsort(who, kind="stable")
    sorted_who = who[by_person]
    found = []
    for _, _, key, p in page:
        lo, hi = np.searchsorted(sorted_who, p, "left"), np.searchsorted(sorted_who, p, "right")
        pairs = by_person[lo:hi]
        theirs_at = np.unique(stay_of[pairs])                 # their stays, by start
        theirs = tuple(every.stay(i) for i in theirs_at.tolist())
        assumed = bool(every.assumed[stay_of[pairs]].any() or every.assumed[mine_at[mine_of[pairs]]].any())
        unsynced = bool(every.clock_unsynced[stay_of[pairs]].any()
                        or every.clock_unsynced[mine_at[mine_of[pairs]]].any())
        found.append(Contact(person=key, holder=strings[holder[p]],
                             overlap=float(totals[p]), stays=theirs,
                             app=min((s.app for s in theirs), key=lambda a: _APP_RANK.get(a, 3)),
                             assumed=assumed, clock_unsynced=unsynced))
    return mine, total, found


def people_named(cols: TraceColumns, text: str, limit: int = 50) -> list[dict]:
    """The tracing name search on columns: people whose holder name holds `text` as
    names.normalise folds them; person key, name, last seen, site, the latest entry.

    :returns: at most `limit`, most recently seen first (the same list as a plain walk of the rows).
    """
    needle = normalise(text)
    strings, codes = cols.strings, cols.codes
    holder = codes["holder"]
    # Each name folded once, however often it is seen.
    hits = [c for c in np.unique(holder).tolist() if strings[c] and needle in normalise(strings[c])]
    rows = np.flatnonzero(np.isin(holder, hits))
    if not len(rows):
        return []
    newest_first = rows[np.argsort(cols.id[rows], kind="stable")[::-1]]
    key = codes["site"][newest_first].astype(np.int64) * len(strings) + codes["person"][newest_first]
    _, first = np.unique(key, return_index=True)       # each person's latest entry named so
    out = []
    for i in newest_first[np.sort(first)][:limit].tolist():
        out.append({"person": strings[codes["person"][i]], "site": strings[codes["site"][i]],
                    "holder": strings[holder[i]], "last_seen": iso(float(cols.t[i])), "last_entry": cols.id[i]})
    return out
