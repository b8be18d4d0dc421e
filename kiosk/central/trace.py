"""Contact tracing on the central: stays kept in a table, GET /api/v1/trace and a page.

Stays (kiosk/trace.py) are kept in the `stays` table. Before each query, the stays of the
people whose entries arrived or changed since are rebuilt from their entries at every kiosk
of the site (`catch_up`), so an exit at another gate (synced before or after the entry)
closes the stay, and ingest, the constant load, pays nothing for the rare query. The tracing query reads the traced
person's stays, then the stays overlapping them. On PostgreSQL the time together is summed
per person in SQL (a GiST index on tstzrange(start, end) with `&&`), the sums ranked, and
only a page's people have their stays read; the CSV's rows are aggregated in SQL too. On
SQLite the overlapping stays are found by a range of start times (a stay lasts at most
MAX_SPAN) and summed in Python (kiosk/trace.py), the same answers for a small site.

Only a credential with the role "tracer" may trace (an operator's gets 403); one bound to a
site traces that site only. Every query is written to `trace_audit` in the transaction that
reads the answer; answers are never cached (Cache-Control: no-store).
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request
from sqlalchemy import ARRAY, String, and_, delete, desc, func, insert, literal, or_, select, text, update

from .. import trace
from ..config import SETTINGS
from ..export import csv_chunks
from ..model import iso, parse_iso, text_problem
from ..names import normalise
from ..web.params import is_entry_id, trace_page
from . import db

bp = Blueprint("trace", __name__, template_folder="templates")

_DEFAULTS = {s.name: s.default for s in SETTINGS}
# The central applies the kiosks' default stay rules (one definition: kiosk/config.py).
DEFAULT_STAY = _DEFAULTS["trace.default_stay"] * 3600      # seconds
MAX_STAY = _DEFAULTS["trace.max_stay"] * 3600              # seconds
WINDOW_DAYS = _DEFAULTS["trace.window_days"]
MIN_OVERLAP = _DEFAULTS["trace.min_overlap"]               # minutes
# The longest a stay lasts: what the start-time range of the overlap query reaches back.
MAX_SPAN = max(DEFAULT_STAY, MAX_STAY)
MAX_REASON = 200            # characters of the reason typed in
MAX_QUERY = 100             # characters of a name search
MAX_PEOPLE = 50             # people per name search
MAX_AUDIT_LIST = 1000       # audit records per GET /trace/audit
MAX_DAYS = 28               # days a query may reach back
CATCH_UP_CHUNK = 5000       # entries taken into the stays per transaction

_OVERLAP_PG = ("tstzrange(to_timestamp(stays.start_t), to_timestamp(stays.end_t)) "
               "&& tstzrange(to_timestamp(:lo{i}), to_timestamp(:hi{i}))")


def catch_up(engine) -> int:
    """Bring the stays up to date with every entry stored or changed since (stayed = 0),
    CATCH_UP_CHUNK entries per transaction; entries stored before the central kept a person
    column get it here. One process at a time (a PostgreSQL advisory lock; SQLite has one
    writer); another waits, then finds nothing left to do.

    :returns: how many entries were taken in.
    """
    e = db.entries.c
    done = 0
    while True:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(18)"))      # issue 18
            rows = conn.execute(select(e.id, e.person, e.body).where(e.stayed == 0).order_by(e.id)
                                .limit(CATCH_UP_CHUNK)).all()
            if not rows:
                return done
            docs = [json.loads(r.body) for r in rows]
            for r, d in zip(rows, docs, strict=True):
                if r.person is None:
                    # "" for an entry without a fingerprint: no person, never looked at again.
                    conn.execute(update(db.entries).where(e.id == r.id).values(person=d.get("fingerprint") or ""))
            refresh_stays(conn, docs)
            ids = [r.id for r in rows]
            conn.execute(update(db.entries).where(
                e.id == func.any(literal(ids, ARRAY(String))) if conn.dialect.name == "postgresql" else e.id.in_(ids))
                .values(stayed=1))
            done += len(rows)


def _among(column, people: list[str], pg: bool):
    """`column` is one of `people`. PostgreSQL: the people as one array parameter (thousands of
    IN placeholders cost more to send than the statement to run)."""
    return column == func.any(literal(people, ARRAY(String))) if pg else column.in_(people)


def refresh_stays(conn, docs: list[dict]) -> None:
    """Recompute the stays that entries `docs` (just stored or changed) can affect.

    A stay depends on its entry and the person's next entry or exit within MAX_SPAN; so for
    the people of `docs`, the stays starting from MAX_SPAN before the earliest of `docs` to
    the latest are rebuilt from those people's entries in that span and MAX_SPAN past it.
    Three statements per site, whatever the batch holds.
    """
    by_site: dict[str, list] = {}
    for d in docs:
        if d.get("fingerprint"):
            by_site.setdefault(d["site"], []).append(d)
    e, s = db.entries.c, db.stays.c
    pg = conn.dialect.name == "postgresql"
    for site, group in by_site.items():
        times = [parse_iso(d["time"]) for d in group]
        first, last = min(times) - MAX_SPAN, max(times)
        people = sorted({d["fingerprint"] for d in group})
        bodies = conn.execute(select(e.body).where(e.site == site, _among(e.person, people, pg), e.time >= iso(first),
                                                   e.time <= iso(last + MAX_SPAN))).scalars()
        fresh = [x for x in trace.stays((json.loads(b) for b in bodies), DEFAULT_STAY, MAX_STAY)
                 if first <= x.start <= last]
        conn.execute(delete(db.stays).where(s.site == site, _among(s.person, people, pg), s.start_t >= first,
                                            s.start_t <= last))
        if fresh and pg:
            conn.execute(_PG_INSERT_STAYS, {"rows": json.dumps([stay_row(x) for x in fresh], ensure_ascii=False)})
        elif fresh:
            conn.execute(insert(db.stays), [stay_row(x) for x in fresh])


_PG_INSERT_STAYS = text(
    "INSERT INTO stays (entry_id, site, person, start_t, end_t, exit_id, entry_gate, exit_gate, assumed, holder, "
    "holder_key, app, clock_unsynced) SELECT r.entry_id, r.site, r.person, r.start_t, r.end_t, r.exit_id, "
    "r.entry_gate, r.exit_gate, r.assumed, r.holder, r.holder_key, r.app, r.clock_unsynced "
    "FROM json_to_recordset(CAST(:rows AS json)) AS r(entry_id text, site text, person text, start_t float8, "
    "end_t float8, exit_id text, entry_gate text, exit_gate text, assumed integer, holder text, holder_key text, "
    "app text, clock_unsynced integer)")


def stay_row(x: trace.Stay) -> dict:
    """A Stay as a row of the stays table."""
    return {"entry_id": x.entry_id, "site": x.site, "person": x.person, "start_t": x.start, "end_t": x.end,
            "exit_id": x.exit_id, "entry_gate": x.entry_gate, "exit_gate": x.exit_gate, "assumed": int(x.assumed),
            "holder": x.holder, "holder_key": normalise(x.holder) if x.holder is not None else None, "app": x.app,
            "clock_unsynced": int(x.clock_unsynced)}


# The stays table's columns in the order of trace.Stay's fields: a row is built by position
# (by name costs ten times as much: a page builds thousands).
_STAY_COLUMNS = ("person", "site", "start_t", "end_t", "entry_id", "exit_id", "entry_gate", "exit_gate", "assumed",
                 "holder", "app", "clock_unsynced")
_STAY_SQL = ", ".join("s." + c for c in _STAY_COLUMNS)


def _stays_of(rows) -> list[trace.Stay]:
    """Stays from rows of _STAY_COLUMNS."""
    return [trace.Stay(person, site, start, end, entry_id, exit_id, entry_gate, exit_gate, bool(assumed), holder,
                       app, bool(unsynced))
            for person, site, start, end, entry_id, exit_id, entry_gate, exit_gate, assumed, holder, app, unsynced
            in rows]


def _stay_select():
    return select(*(db.stays.c[c] for c in _STAY_COLUMNS))


def overlapping(conn, site: str, ranges: list[tuple[float, float]]) -> list[trace.Stay]:
    """The site's stays overlapping any of `ranges` (UNIX seconds, [lo, hi))."""
    s = db.stays.c
    if not ranges:
        return []
    if conn.dialect.name == "postgresql":
        clause = text(" OR ".join("(" + _OVERLAP_PG.format(i=i) + ")" for i in range(len(ranges))))
        params = {k: v for i, (lo, hi) in enumerate(ranges) for k, v in ((f"lo{i}", lo), (f"hi{i}", hi))}
        q = _stay_select().where(s.site == site, clause).params(**params)
    else:
        q = _stay_select().where(s.site == site, or_(*(and_(s.start_t >= lo - MAX_SPAN, s.start_t < hi,
                                                              s.end_t > lo) for lo, hi in ranges)))
    return _stays_of(conn.execute(q))


def trace_entry(conn, entry_id: str, since: float, until: float):
    """(the entry's row, the traced person's stays in the window) or None without that entry."""
    e, s = db.entries.c, db.stays.c
    row = conn.execute(select(e.site, e.person, e.body).where(e.id == entry_id)).first()
    if row is None or not row.person:
        return None
    mine = _stays_of(conn.execute(_stay_select().where(
        s.site == row.site, s.person == row.person, s.end_t > since, s.start_t < until,
        s.start_t >= since - MAX_SPAN).order_by(s.start_t)))
    return row, mine


# The traced person's stays, clipped to the window, joined to the site's stays overlapping
# them (GiST && on the tstzrange index, db.py), one row per pair with the time together.
# Times are UNIX seconds after 2004 (>= 2**30): an overlap is a difference of two of them,
# exact (Sterbenz), a multiple of 2**-22 s, and the sum of such multiples below 2**31 s is
# exact in any order. So PostgreSQL's sum and kiosk/trace.py's agree to the bit, whatever
# order each adds in, and the 15-minute rule and the order by overlap come out the same.
_PG_MINE = """
WITH mine AS (
  SELECT * FROM unnest(CAST(:lo AS float8[]), CAST(:hi AS float8[]), CAST(:assumed AS int[]),
                       CAST(:unsynced AS int[])) AS m(lo, hi, assumed, unsynced)
)"""
_OVERLAPS = ("tstzrange(to_timestamp(s.start_t), to_timestamp(s.end_t)) && tstzrange(to_timestamp(m.lo), "
             "to_timestamp(m.hi)) AND LEAST(s.end_t, m.hi) > GREATEST(s.start_t, m.lo)")
_PG_PAIRS = _PG_MINE + """, pairs AS (
  SELECT s.person, s.entry_id, s.start_t, s.end_t, s.entry_gate, s.exit_gate, s.holder, s.app,
         LEAST(s.end_t, m.hi) - GREATEST(s.start_t, m.lo) AS overlap,
         s.assumed = 1 OR m.assumed = 1 AS either_assumed,
         s.clock_unsynced = 1 OR m.unsynced = 1 AS either_unsynced
  FROM mine m JOIN stays s ON """ + _OVERLAPS + """
  WHERE s.site = :site AND s.person <> :person
)"""

# The people a page can hold: everyone whose total ranks within the first `last` (ties at the
# edge included: a total at least the `last`-th largest, as rank() <= last would keep), and
# how many contacts there are in all. The `last`-th total comes from a bounded (top-N) sort;
# ranking every contact by a window function sorted them all (10-20 ms more at 25,000
# contacts). The sums alone: the holder that breaks ties, the app and the stays come from the
# page's stays.
_PG_RANKED = text(_PG_PAIRS + """, totals AS MATERIALIZED (
  SELECT person, sum(overlap) AS overlap FROM pairs GROUP BY person HAVING sum(overlap) >= :min_overlap
)
SELECT person, (SELECT count(*) FROM totals) AS total FROM totals
WHERE overlap >= coalesce((SELECT overlap FROM totals ORDER BY overlap DESC OFFSET :last - 1 LIMIT 1),
                          '-infinity')""")

# Every contact in one row each, without the stays (the CSV): what kiosk/trace.py `contacts`
# computes from the stays, computed by PostgreSQL. Ordered in Python (code-point order of
# the holder, as kiosk/trace.py sorts, whatever the database's collation).
_PG_TOTALS = text(_PG_PAIRS + """
SELECT person, sum(overlap) AS overlap, count(DISTINCT entry_id) AS stays, min(start_t) AS first_in,
       (array_agg(end_t ORDER BY start_t DESC))[1] AS last_out,
       (array_agg(holder ORDER BY start_t DESC) FILTER (WHERE holder <> ''))[1] AS holder,
       (array_agg(app ORDER BY CASE app WHEN 'confirmed' THEN 0 WHEN 'likely' THEN 1
                                        WHEN 'not_detected' THEN 2 ELSE 3 END, start_t))[1] AS app,
       bool_or(either_assumed) AS assumed, bool_or(either_unsynced) AS clock_unsynced,
       array_agg(DISTINCT entry_gate) AS entry_gates, array_agg(DISTINCT exit_gate) AS exit_gates
FROM pairs GROUP BY person HAVING sum(overlap) >= :min_overlap""")

# The stays of some people (a page's contacts) that may overlap the window, found through the
# (site, person, start_t) index; kiosk/trace.py `contacts` keeps those that overlap.
_PG_THEIRS = text("SELECT " + _STAY_SQL + """ FROM stays s
WHERE s.site = :site AND s.person = ANY(CAST(:people AS text[])) AND s.start_t >= :reach AND s.start_t < :until
  AND s.end_t > :since""")


class ContactTotal(NamedTuple):
    """A contact without their stays: one row of the CSV.

    :param overlap: seconds together in the window.
    :param first_in: UNIX seconds of their first overlapping stay's start.
    :param last_out: UNIX seconds of their last overlapping stay's end.
    :param stays: how many of their stays overlapped.
    """

    person: str
    holder: str | None
    overlap: float
    app: str
    assumed: bool
    clock_unsynced: bool
    gates: tuple[str, ...]
    first_in: float
    last_out: float
    stays: int

    @classmethod
    def of(cls, c: trace.Contact) -> ContactTotal:
        """The total of a contact listed with their stays."""
        return cls(person=c.person, holder=c.holder, overlap=c.overlap, app=c.app, assumed=c.assumed,
                   clock_unsynced=c.clock_unsynced,
                   gates=tuple(sorted({g for x in c.stays for g in (x.entry_gate, x.exit_gate) if g})),
                   first_in=c.stays[0].start,
                   last_out=c.stays[-1].end, stays=len(c.stays))


def total_csv_row(c: ContactTotal, tz) -> list:
    """A contact total as a CSV row, as kiosk/trace.py `csv_row` writes a contact (no phone on
    the central: declarations stay on the kiosk); times local to `tz` (a tzinfo)."""
    def local(t: float) -> str:
        return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M")
    return [c.holder or "", "", round(c.overlap / 60, 1), c.app, "yes" if c.assumed else "no",
            "yes" if c.clock_unsynced else "no", " ".join(c.gates), local(c.first_in), local(c.last_out), c.stays]


def _pairs_params(site: str, mine: list[trace.Stay], since: float, until: float) -> dict:
    ranges = [(max(x.start, since), min(x.end, until), int(x.assumed), int(x.clock_unsynced)) for x in mine]
    ranges = [r for r in ranges if r[1] > r[0]]
    lo, hi, assumed, unsynced = (list(c) for c in zip(*ranges, strict=True)) if ranges else ([], [], [], [])
    return {"site": site, "person": mine[0].person if mine else "", "lo": lo, "hi": hi, "assumed": assumed,
            "unsynced": unsynced}


def _no_jit(conn) -> None:
    """No JIT compilation for the rest of the transaction: at 1M entries it compiled for 17 ms
    and gained nothing (180,000 rows); a 28-day window's plan costs past jit_above_cost."""
    conn.execute(text("SET LOCAL jit = off"))


def contacts_page(conn, site: str, mine: list[trace.Stay], since: float, until: float, min_overlap: float,
                  limit: int | None = None, offset: int = 0) -> tuple[int, list[trace.Contact]]:
    """The contacts of the person of stays `mine` (kiosk/trace.py `contacts` order), a page of them.

    PostgreSQL sums the time together per person in SQL (GiST && on the stays' ranges), ranks
    the sums, and only the page's people have their stays read and built; SQLite (a small site)
    reads every overlapping stay and computes in Python, the same answers.

    :param min_overlap: seconds.
    :param limit: contacts in the page; None: all of them.
    :param offset: contacts skipped before the page.
    :returns: (how many contacts in all, the page's contacts with their stays).
    """
    if not mine:
        return 0, []
    if limit is None or conn.dialect.name != "postgresql":
        found = trace.contacts(mine, overlapping(conn, site, [(max(x.start, since), min(x.end, until)) for x in mine]),
                               min_overlap, since, until)
        return len(found), found[offset:None if limit is None else offset + limit]
    params = _pairs_params(site, mine, since, until)
    _no_jit(conn)
    # The planner takes the && join for ~15x fewer pairs than it makes (a range expression's
    # estimate), so it sorts the pairs by person (on disk past work_mem) to sum them; summing
    # them in a hash table instead: 166 ms against 305 (EXPLAIN ANALYZE at 1M entries).
    conn.execute(text("SET LOCAL enable_sort = off"))
    ranked = conn.execute(_PG_RANKED, {**params, "min_overlap": min_overlap, "last": offset + limit}).all()
    conn.execute(text("SET LOCAL enable_sort = on"))
    if not ranked:
        return 0, []
    theirs = _stays_of(conn.execute(_PG_THEIRS, {"site": site, "people": [r.person for r in ranked],
                                                 "reach": since - MAX_SPAN, "since": since, "until": until}))
    # The people ranked within offset + limit by their sums hold the page; their order among
    # themselves (ties by holder, then person) is kiosk/trace.py's own.
    found = trace.contacts(mine, theirs, min_overlap, since, until)
    return ranked[0].total, found[offset:offset + limit]


def contact_totals(conn, site: str, mine: list[trace.Stay], since: float, until: float,
                   min_overlap: float) -> list[ContactTotal]:
    """Every contact of the person of stays `mine`, without their stays (the CSV), in the order
    of kiosk/trace.py `contacts`. PostgreSQL aggregates in SQL; SQLite computes in Python.

    :param min_overlap: seconds.
    """
    if not mine:
        return []
    if conn.dialect.name != "postgresql":
        return [ContactTotal.of(c) for c in contacts_page(conn, site, mine, since, until, min_overlap)[1]]
    _no_jit(conn)
    out = [ContactTotal(person=r.person, holder=r.holder, overlap=r.overlap, app=r.app, assumed=r.assumed,
                        clock_unsynced=r.clock_unsynced,
                        gates=tuple(sorted({g for g in (*r.entry_gates, *r.exit_gates) if g})),
                        first_in=r.first_in, last_out=r.last_out, stays=r.stays)
           for r in conn.execute(_PG_TOTALS, {**_pairs_params(site, mine, since, until), "min_overlap": min_overlap})]
    out.sort(key=lambda c: (-c.overlap, c.holder or "", c.person))
    return out


def people_named(conn, site: str | None, text_: str, since: float, until: float) -> list[dict]:
    """People whose name holds `text_` with a stay in the window (the site's, or any), compared
    as names.normalise folds names ("nguyen van" finds "Nguyễn Văn An"), the latest first."""
    s = db.stays.c
    needle = normalise(text_)
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    q = (select(s.site, s.person, s.holder, s.start_t, s.entry_id)
         .where(s.holder_key.like(f"%{escaped}%", escape="\\"), s.end_t > since, s.start_t < until)
         .order_by(desc(s.start_t)).limit(MAX_PEOPLE * 20))
    if site:
        q = q.where(s.site == site)
    seen: dict = {}
    for r in conn.execute(q):
        if (r.site, r.person) not in seen:
            seen[(r.site, r.person)] = {"holder": r.holder, "site": r.site, "last_seen": iso(r.start_t),
                                        "last_entry": r.entry_id}
    return list(seen.values())[:MAX_PEOPLE]


def _engine():
    return current_app.extensions["central_db"]


def _tracer(token: str):
    """The tracer credential of `token`: 401 without a valid token, 403 for another role."""
    cred = db.find_credential(_engine(), token) if token else None
    if cred is None:
        abort(401, description="a valid tracer token is required")
    if cred["role"] != "tracer":
        abort(403, description="contact tracing needs a tracer credential; this one is not")
    return cred


@bp.after_request
def never_cached(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def _arg(args, name: str, most: int, required: bool = False) -> str | None:
    value = args.get(name)
    if not value:
        if required:
            abort(400, description=f"{name} is required")
        return None
    if len(value) > most or text_problem(value):
        abort(400, description=f"{name} must be printable text of at most {most} characters")
    return value


def _number(args, name: str, default: float, low: float, high: float) -> float:
    value = args.get(name)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not low <= number <= high:
        abort(400, description=f"{name} must be a number from {low:g} to {high:g}")
    return number


def run_query(args, cred, export: bool = False) -> tuple[dict, list[ContactTotal] | None]:
    """Run a search or a trace from request arguments, audited in the same transaction.

    :param export: a trace gives every contact's total (the CSV) instead of a page.
    :returns: (the JSON answer: people, or a page of contacts and their total; every
        contact's total for an export of a trace, else None).
    """
    reason = _arg(args, "reason", MAX_REASON, required=True)
    query, entry_id = _arg(args, "q", MAX_QUERY), args.get("entry") or None
    site = _arg(args, "site", 100) or cred["site"]
    if cred["site"] and site != cred["site"]:
        abort(403, description="this tracer credential is for another site")
    if (query is None) == (entry_id is None):
        abort(400, description="give either q (a name to search) or entry (the id of the traced person's entry)")
    days = _number(args, "days", WINDOW_DAYS, 1, MAX_DAYS)
    min_overlap = _number(args, "min_overlap", MIN_OVERLAP, 0, 1440) * 60
    try:
        limit, offset = trace_page(args)
    except ValueError as e:
        abort(400, description=str(e))
    now = datetime.now(UTC).timestamp()
    until = now
    if args.get("until"):
        try:
            text = _arg(args, "until", 40)
            assert text is not None                 # args.get("until") was not empty
            until = min(parse_iso(text), now)
        except (ValueError, OverflowError, OSError):
            abort(400, description="until must be an ISO-8601 time")
    since = until - days * 86400
    catch_up(_engine())
    record = {"who": cred["name"], "at": db.now_iso(), "reason": reason, "window_from": iso(since),
              "window_to": iso(until)}
    with _engine().begin() as conn:
        if query is not None:
            people = people_named(conn, site, query, since, until)
            conn.execute(insert(db.trace_audit).values(**record, site=site, kind="search", for_whom=query,
                                                       listed=len(people)))
            return {"people": people}, None
        if entry_id is None or not is_entry_id(entry_id):
            abort(400, description="entry must be an entry id")
        found = trace_entry(conn, entry_id, since, until)
        if found is None:
            abort(404, description="no such entry")
        row, mine = found
        if cred["site"] and row.site != cred["site"]:
            abort(403, description="this tracer credential is for another site")
        totals: list[ContactTotal] | None = None
        contacts: list[trace.Contact] = []
        if export:
            totals = contact_totals(conn, row.site, mine, since, until, min_overlap)
            total = len(totals)
        else:
            total, contacts = contacts_page(conn, row.site, mine, since, until, min_overlap, limit, offset)
        holder = (json.loads(row.body).get("declaration") or {}).get("holder")
        conn.execute(insert(db.trace_audit).values(**record, site=row.site, kind="trace",
                                                   for_whom=f"{entry_id} {holder or ''}".strip()[:300],
                                                   listed=total))
    return ({"site": row.site, "entry": entry_id, "holder": holder, "window": {"from": iso(since), "to": iso(until)},
             "min_overlap_minutes": min_overlap / 60, "stays": [x.to_json() for x in mine], "total": total,
             "contacts": [c.to_json() for c in contacts]}, totals)


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else ""


def _csv(totals: list[ContactTotal], tz_name: str) -> Response:
    tz = ZoneInfo(tz_name)
    response = Response(csv_chunks((total_csv_row(c, tz) for c in totals), trace.CSV_COLUMNS),
                        mimetype="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = "attachment; filename=contacts.csv"
    return response


def _tz(args) -> str:
    name = _arg(args, "tz", 100) or "Asia/Ho_Chi_Minh"
    try:
        ZoneInfo(name)
    except (ValueError, KeyError):
        abort(400, description="tz must be a time zone name")
    return name


@bp.get("/api/v1/trace")
def api_trace():
    """Search people by name (`q`) or trace the person of an entry (`entry`); tracer only."""
    cred = _tracer(_bearer())
    export = request.args.get("format") == "csv"
    answer, totals = run_query(request.args, cred, export)
    if totals is not None:
        return _csv(totals, _tz(request.args))
    return jsonify(answer)


def recent_audit(conn, site: str | None, limit: int) -> list[dict]:
    """The latest audit records (of a site, or all), newest first."""
    a = db.trace_audit.c
    q = select(db.trace_audit).order_by(desc(a.id)).limit(limit)
    if site:
        q = q.where(a.site == site)
    return [{"who": r.who, "at": r.at, "site": r.site, "kind": r.kind, "for": r.for_whom, "reason": r.reason,
             "listed": r.listed, "from": r.window_from, "to": r.window_to} for r in conn.execute(q)]


@bp.get("/api/v1/trace/audit")
def api_audit():
    """The tracing queries run, newest first (tracer only; a site's tracer sees its site's)."""
    cred = _tracer(_bearer())
    value = request.args.get("limit", "100")
    if not (value.isascii() and value.isdigit() and len(value) <= 6) or not 1 <= int(value) <= MAX_AUDIT_LIST:
        abort(400, description=f"limit must be a whole number from 1 to {MAX_AUDIT_LIST}")
    with _engine().connect() as conn:
        return jsonify(queries=recent_audit(conn, cred["site"], int(value)))


@bp.get("/api/v1/inside")
def inside():
    """Who is inside a site now by its stays (an operator's list; also a tracer's): the count,
    and per person the name, since when, by which gate, and the assumed end when no exit is
    expected to be seen."""
    cred = db.find_credential(_engine(), _bearer()) if _bearer() else None
    if cred is None:
        abort(401, description="a valid operator token is required")
    if cred["role"] not in ("operator", "tracer"):
        abort(403, description="the list of people inside is for operators")
    site = _arg(request.args, "site", 100, required=True)
    if cred["site"] and site != cred["site"]:
        abort(403, description="this credential is for another site")
    catch_up(_engine())
    now = datetime.now(UTC).timestamp()
    s = db.stays.c
    with _engine().connect() as conn:
        rows = conn.execute(select(db.stays).where(s.site == site, s.start_t <= now, s.end_t > now,
                                                   s.start_t >= now - MAX_SPAN).order_by(s.start_t)).all()
    people = [{"holder": r.holder, "since": iso(r.start_t), "gate": r.entry_gate,
               "assumed_until": iso(r.end_t) if r.assumed else None} for r in rows]
    return jsonify(site=site, at=iso(now), count=len(people), people=people)


def spec() -> dict:
    """The OpenAPI 3.1 document of the central's tracing routes (the kiosk's, plus site and tz)."""
    import copy

    from ..web.openapi import SPEC, TRACE_PATHS, TRACE_SCHEMAS

    extra = [{"name": "site", "in": "query", "schema": {"type": "string", "maxLength": 100},
              "description": "The site (a tracer bound to a site: that one only); for q, default all sites."},
             {"name": "tz", "in": "query", "schema": {"type": "string"},
              "description": "Time zone of the CSV's times; default Asia/Ho_Chi_Minh."}]
    trace_get = copy.deepcopy(TRACE_PATHS["/api/v1/trace"]["get"])     # the kiosk's stays as it is
    trace_get["parameters"] = trace_get["parameters"] + extra
    trace_get["responses"]["200"]["description"] += " (phone is always null: declarations stay on the kiosk)"
    return {"openapi": "3.1.0", "info": {"title": "Checkpoint central: contact tracing", "version": "1"},
            "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
                           "schemas": {"Error": SPEC["components"]["schemas"]["Error"], **TRACE_SCHEMAS}},
            "security": [{"token": []}],
            "paths": {"/api/v1/trace": {"get": trace_get}, "/api/v1/trace/audit": TRACE_PATHS["/api/v1/trace/audit"],
                      "/api/v1/inside": {"get": {
                          "summary": "Who is inside a site now (operator or tracer token): count and list",
                          "parameters": [{"name": "site", "in": "query", "required": True,
                                          "schema": {"type": "string", "maxLength": 100}}],
                          "responses": {"200": {"description": "count, people: holder, since, gate, "
                                                "assumed_until (null when an exit is what ends the stay)"},
                                        "400": {"description": "No site"}, "401": {"description": "No token"},
                                        "403": {"description": "A kiosk's token, or another site's"}}}},
                      "/api/v1/trace/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {
                          "200": {"description": "OpenAPI 3.1"}}}}}}


@bp.get("/api/v1/trace/openapi.json")
def openapi():
    """The OpenAPI document of the tracing routes (no token: it holds no data)."""
    return jsonify(spec())


@bp.route("/trace", methods=["GET", "POST"])
def page():
    """The tracer's page: token, reason and a name; pick a person; see and export contacts.

    The token travels in the form's body (POST), never in an address, a cookie or a cache.
    """
    if request.method == "GET":
        return render_template("trace.html", form={}, people=None, result=None, audit=None, error=None)
    form = request.form
    cred = db.find_credential(_engine(), form.get("token", "")) if form.get("token") else None
    if cred is None or cred["role"] != "tracer":
        status = 401 if cred is None else 403
        return render_template("trace.html", form={}, people=None, result=None, audit=None,
                               error="Cần mã của người truy vết (tracer) / a tracer token is required"), status
    args = {k: form.get(k) for k in ("reason", "q", "entry", "site", "days", "min_overlap", "until", "tz")}
    export = bool(form.get("export")) and bool(form.get("entry"))
    try:
        answer, totals = run_query(args, cred, export)
    except Exception as e:          # an abort(400/403/404): shown on the page, the form kept
        code = getattr(e, "code", None)
        if code is None:
            raise
        return render_template("trace.html", form=form, people=None, result=None, audit=None,
                               error=e.description), code
    if totals is not None:
        return _csv(totals, _tz(args))
    with _engine().connect() as conn:
        audit = recent_audit(conn, cred["site"], 20)
    tz = ZoneInfo(_tz(args))

    def local(value: str) -> str:
        return datetime.fromtimestamp(parse_iso(value), tz).strftime("%d/%m %H:%M")
    return render_template("trace.html", form=form, people=answer.get("people"),
                           result=answer if "contacts" in answer else None, audit=audit, error=None, local=local)
