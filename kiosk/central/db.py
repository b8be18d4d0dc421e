"""The central server's tables, on SQLAlchemy Core: SQLite by default, PostgreSQL by URL.

Uniqueness of entry ids is enforced by the database, so several app processes behind a load
balancer can ingest the same batch at once and still store it once.

Over the house's ~300 lines: every table and every query of the central, so that the
SQLite and PostgreSQL paths can be read against each other.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..entries import nfc_entry
from ..model import final_decision
from ..names import normalise

metadata = MetaData()

credentials = Table(
    "credentials", metadata,
    Column("name", String(100), primary_key=True),
    Column("role", String(20), nullable=False),          # "kiosk", "operator" or "tracer"
    Column("site", String(100)),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", String(30), nullable=False),
    # An operator's sites, a JSON list; NULL: every site (operators created before scoping).
    Column("sites", Text),
)

# The central's own secrets (the session cookie's signing key), made once at first start:
# never in code, and the same for every central process on the database.
central_secrets = Table(
    "central_secrets", metadata,
    Column("name", String(50), primary_key=True),
    Column("value", String(200), nullable=False),
)

entries = Table(
    "entries", metadata,
    Column("id", String(26), primary_key=True),
    Column("site", String(100), nullable=False, index=True),
    Column("kiosk", String(100), nullable=False),
    Column("time", String(30), nullable=False, index=True),
    Column("decision", String(10), nullable=False),
    Column("received_at", String(30), nullable=False),
    Column("body", Text, nullable=False),
    # 1: stamped while the kiosk's clock was not trusted (the entry's "clock_unsynced"):
    # its time may be wrong. A column, so a report can count or leave out such entries.
    Column("clock_unsynced", Integer, nullable=False, server_default=text("0")),
    # The payload fingerprint (the person, kiosk/trace.py): stays are kept per person.
    Column("person", String(64)),
    # 0 until the entry's stays are brought up to date (central/trace.py catch_up, before a
    # tracing query): ingest, the constant load, does not pay for the rare query.
    Column("stayed", Integer, nullable=False, server_default=text("0")),
    Index("entries_site_person_time", "site", "person", "time"),
)

# Stays (kiosk/trace.py): an entry with its exit, or assumed; kept at ingest for the
# person's entries a batch brings (central/trace.py). Times are UNIX seconds. On PostgreSQL
# the tracing query finds overlaps with a GiST index on tstzrange(start, end) and `&&`.
stays = Table(
    "stays", metadata,
    Column("entry_id", String(26), primary_key=True),
    Column("site", String(100), nullable=False),
    Column("person", String(64), nullable=False),
    Column("start_t", Float, nullable=False),
    Column("end_t", Float, nullable=False),
    Column("exit_id", String(26)),
    Column("entry_gate", String(100), nullable=False),
    Column("exit_gate", String(100)),
    Column("assumed", Integer, nullable=False),
    Column("holder", String(200)),
    # The holder's name as names.normalise folds it (case, spacing, diacritics): the tracing
    # name search compares with LIKE on it, the same way on SQLite and PostgreSQL.
    Column("holder_key", String(200)),
    Column("app", String(20), nullable=False),
    Column("clock_unsynced", Integer, nullable=False),
    Index("stays_site_person_start", "site", "person", "start_t"),
    Index("stays_site_start", "site", "start_t"),
)

# Every contact-tracing query: who ran it, when, for whom, why, how many were listed. Kept.
trace_audit = Table(
    "trace_audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("who", String(100), nullable=False),
    Column("at", String(30), nullable=False),
    Column("site", String(100)),
    Column("kind", String(10), nullable=False),           # "search" or "trace"
    Column("for_whom", String(300), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("listed", Integer, nullable=False),
    Column("window_from", String(30)),
    Column("window_to", String(30)),
)

# Signatures of accepted batches, for MAX_SKEW seconds: the same batch sent again is a replay.
seen_batches = Table(
    "seen_batches", metadata,
    Column("signature", String(64), primary_key=True),
    Column("at", Integer, nullable=False, index=True),
)

# The daily report's sent state per site and local day (kiosk/central/report_mail.py): a row
# in state "sent" is the proof that the mail server accepted the message with this Message-ID.
report_sends = Table(
    "report_sends", metadata,
    Column("site", String(100), nullable=False),
    Column("day", String(10), nullable=False),
    Column("state", String(10), nullable=False),
    Column("message_id", String(200)),
    Column("updated_at", String(30), nullable=False),
    Column("sent_at", String(30)),
    Column("record", Text, nullable=False),              # the whole ledger record, JSON
    UniqueConstraint("site", "day"),
)

# Who is sending a site's report of a day right now: one row, until `until` (UNIX seconds),
# so that several central processes hand the report over once.
report_claims = Table(
    "report_claims", metadata,
    Column("site", String(100), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("until", Integer, nullable=False),
)

# What each kiosk last said of itself in a sync batch (its "status" field): version, backlog,
# health. One row per kiosk, replaced by each accepted batch; old kiosks send none.
kiosk_status = Table(
    "kiosk_status", metadata,
    Column("kiosk", String(100), primary_key=True),
    Column("site", String(100), nullable=False),
    Column("at", String(30), nullable=False),
    Column("body", Text, nullable=False),
)

REQUIRED = ("id", "site", "kiosk", "time", "decision")
INSERT_CHUNK = 1000             # rows per INSERT statement (SQLite allows 32,766 parameters)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def connect(url: str):
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):
            # WAL lets operators read while kiosks write; FULL sync: an ack means on disk.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
    metadata.create_all(engine)
    _add_missing_columns(engine)
    _add_trace_indexes(engine)
    _fold_holders(engine)
    return engine


def _fold_holders(engine, chunk: int = 5000) -> int:
    """Give the stays kept before `holder_key` existed their folded name; returns how many.
    Runs at each start (the partial index stays_unfolded finds none left at once), so a
    start stopped half-way finishes the next time."""
    s = stays.c
    done = 0
    while True:
        with engine.begin() as conn:
            rows = conn.execute(select(s.entry_id, s.holder).where(s.holder_key.is_(None), s.holder.is_not(None))
                                .limit(chunk)).all()
            if not rows:
                return done
            conn.execute(update(stays).where(s.entry_id == bindparam("eid")).values(holder_key=bindparam("key")),
                         [{"eid": r.entry_id, "key": normalise(r.holder)} for r in rows])
            done += len(rows)


def _add_trace_indexes(engine) -> None:
    """The index of entries whose stays are not up to date, that of stays without a folded
    name, and on PostgreSQL the GiST index of stays as time ranges (contact tracing,
    central/trace.py; each created once)."""
    with engine.begin() as conn:
        conn.execute(text("CREATE INDEX IF NOT EXISTS entries_pending ON entries (id) WHERE stayed = 0"))
        # The stays still without a folded name (kept before holder_key): empty once folded,
        # so each start's look for them (_fold_holders) costs nothing, not a scan of the stays.
        conn.execute(text("CREATE INDEX IF NOT EXISTS stays_unfolded ON stays (entry_id) "
                          "WHERE holder_key IS NULL AND holder IS NOT NULL"))
        if engine.dialect.name == "postgresql":
            conn.execute(text("CREATE INDEX IF NOT EXISTS stays_during ON stays USING gist "
                              "(tstzrange(to_timestamp(start_t), to_timestamp(end_t)))"))


_ADDED_COLUMNS = (("entries", "clock_unsynced", "INTEGER NOT NULL DEFAULT 0"),
                  ("credentials", "sites", "TEXT"),
                  ("entries", "person", "VARCHAR(64)"),
                  ("entries", "stayed", "INTEGER NOT NULL DEFAULT 0"),
                  ("stays", "holder_key", "VARCHAR(200)"))


def _add_missing_columns(engine) -> None:
    """Columns added since a database was created (create_all adds none to an existing table),
    and the index on one of them."""
    for table, column, kind in _ADDED_COLUMNS:
        if column in {c["name"] for c in inspect(engine).get_columns(table)}:
            continue
        try:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))
                if (table, column) == ("entries", "person"):
                    conn.execute(text("CREATE INDEX IF NOT EXISTS entries_site_person_time "
                                      "ON entries (site, person, time)"))
        except DBAPIError:
            # Another central process starting at the same time added it first.
            if column not in {c["name"] for c in inspect(engine).get_columns(table)}:
                raise


def add_credential(engine, name: str, role: str, site: str | None = None, token: str | None = None,
                   sites: list[str] | None = None) -> str:
    """Store a credential; return its token (a random one unless `token` is given).

    :param site: a kiosk's site.
    :param sites: the sites an operator may read; None: every site.
    """
    token = token or secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(insert(credentials).values(
            name=name, role=role, site=site, token_hash=token_hash(token), created_at=now_iso(),
            sites=None if sites is None else json.dumps(sorted(set(sites)), ensure_ascii=False)))
    return token


def allowed_sites(cred) -> frozenset[str] | None:
    """The sites a credential may read: None for every site, else a set (maybe empty).
    A kiosk's credential reads its own site only."""
    if cred["role"] == "kiosk":
        return frozenset([cred["site"]]) if cred["site"] else frozenset()
    raw = cred.get("sites")
    return None if raw is None else frozenset(json.loads(raw))


def may_read(cred, site: str | None) -> bool:
    """True when `cred` may read `site` (None: the request names no site)."""
    allowed = allowed_sites(cred)
    return allowed is None or (site is not None and site in allowed)


def session_secret(engine) -> str:
    """The session cookie's signing key, made at the first call and kept in the database."""
    with engine.begin() as conn:
        value = conn.execute(select(central_secrets.c.value).where(central_secrets.c.name == "session")).scalar()
        if value is not None:
            return value
        try:
            with conn.begin_nested():
                conn.execute(insert(central_secrets).values(name="session", value=secrets.token_hex(32)))
        except IntegrityError:
            pass                    # another process made it first: use theirs
        return conn.execute(select(central_secrets.c.value).where(central_secrets.c.name == "session")).scalar()


def find_credential(engine, token: str):
    with engine.connect() as conn:
        return conn.execute(select(credentials).where(
            credentials.c.token_hash == token_hash(token))).mappings().first()


class Replay(Exception):
    """The batch's signature was already seen within the window."""


class ForeignEntries(Exception):
    """Entries of the batch have ids the central holds for another kiosk or site."""

    def __init__(self, ids: list[str]):
        super().__init__(f"{len(ids)} entries belong to another kiosk or site")
        self.ids = ids


def ingest(engine, batch: list[dict], signature: str, now: float, window: float) -> tuple[list[str], list[str]]:
    """Store new entries; return (stored ids, ids already there).

    The batch's signature is remembered in the same transaction (one commit, one fsync per
    batch); a signature seen within `window` seconds raises Replay with nothing stored. An id
    already stored for another kiosk or site raises ForeignEntries with nothing stored.
    """
    ids = [e["id"] for e in batch]
    received = now_iso()
    batch = [nfc_entry(e) for e in batch]      # names stored NFC: one spelling per name
    rows = [{"id": e["id"], "site": e["site"], "kiosk": e["kiosk"], "time": e["time"],
             "decision": final_decision(e), "received_at": received,
             "body": json.dumps(e, ensure_ascii=False),
             "clock_unsynced": 1 if e.get("clock_unsynced") is True else 0,
             "person": e.get("fingerprint")} for e in batch]
    with engine.begin() as conn:
        if not _first_sight(conn, signature, now, window):
            raise Replay(signature)
        stored: set[str] = set()
        # Inserted in id order: two batches racing with the same ids in another order would
        # otherwise each wait on a key the other holds (PostgreSQL: deadlock detected).
        in_order = sorted(rows, key=lambda r: r["id"])
        for start in range(0, len(in_order), INSERT_CHUNK):
            stored |= _insert_new(conn, in_order[start:start + INSERT_CHUNK])
        again = [r for r in rows if r["id"] not in stored]
        if again:
            # An id is the kiosk's to choose: one that names another kiosk's entry must not
            # reach it, not even as "duplicate" (leaving the transaction undoes the inserts).
            foreign = _foreign(conn, again)
            if foreign:
                raise ForeignEntries(foreign)
        # A guard's override made after the first delivery comes again: keep the newer body.
        for r, e in zip(rows, batch, strict=True):
            if r["id"] not in stored and e.get("override"):
                conn.execute(update(entries)
                             .where(entries.c.id == r["id"], entries.c.kiosk == r["kiosk"], entries.c.site == r["site"])
                             .values(body=r["body"], decision=r["decision"], stayed=0))  # may be an exit
    return [i for i in ids if i in stored], [i for i in ids if i not in stored]


def _foreign(conn, rows: list[dict]) -> list[str]:
    """Ids among `rows` that are stored for a kiosk or site other than the row's own."""
    owner = {r["id"]: (r["kiosk"], r["site"]) for r in rows}
    ids = list(owner)
    foreign: list[str] = []
    for start in range(0, len(ids), INSERT_CHUNK):
        stored = conn.execute(select(entries.c.id, entries.c.kiosk, entries.c.site)
                              .where(entries.c.id.in_(ids[start:start + INSERT_CHUNK])))
        foreign += [i for i, kiosk, site in stored if owner[i] != (kiosk, site)]
    return sorted(foreign)


# PostgreSQL: the batch as one JSON parameter, one short statement whatever its size (a
# placeholder per value, or arrays, cost psycopg more to prepare than the insert itself).
_PG_INSERT = text(
    'INSERT INTO entries (id, site, kiosk, "time", decision, received_at, body, clock_unsynced, person) '
    'SELECT r.id, r.site, r.kiosk, r."time", r.decision, r.received_at, r.body, r.clock_unsynced, r.person '
    'FROM json_to_recordset(CAST(:rows AS json)) AS r(id text, site text, kiosk text, "time" text, '
    "decision text, received_at text, body text, clock_unsynced integer, person text) "
    "ORDER BY r.id ON CONFLICT (id) DO NOTHING RETURNING id")


def _insert_new(conn, rows: list[dict]) -> set[str]:
    """Insert the rows whose id is not there yet; return their ids. The database decides
    (ON CONFLICT DO NOTHING), so two processes storing the same batch at once store it once."""
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        return set(conn.execute(_PG_INSERT, {"rows": json.dumps(rows, ensure_ascii=False)}).scalars())
    if conn.dialect.name != "sqlite":
        raise ValueError(f"the central runs on SQLite or PostgreSQL, not {conn.dialect.name}")
    statement = sqlite_insert(entries).on_conflict_do_nothing(index_elements=["id"]).returning(entries.c.id)
    # Many rows with RETURNING: SQLAlchemy sends them as multi-row VALUES ("insertmanyvalues").
    return set(conn.execute(statement, rows).scalars())


def _query(site, kiosk, since, until, after_id, limit, clock_unsynced=None, sites=None, decision=None):
    q = select(entries.c.id, entries.c.body).order_by(entries.c.id).limit(limit)
    if sites is not None:                     # an operator's allowed_sites
        q = q.where(entries.c.site.in_(sorted(sites)))
    if decision:                              # the final decision (after a guard's override)
        q = q.where(entries.c.decision == decision)
    if clock_unsynced is not None:
        q = q.where(entries.c.clock_unsynced == int(clock_unsynced))
    if site:
        q = q.where(entries.c.site == site)
    if kiosk:
        q = q.where(entries.c.kiosk == kiosk)
    if since:
        q = q.where(entries.c.time >= since)
    if until:
        q = q.where(entries.c.time < until)
    if after_id:
        q = q.where(entries.c.id > after_id)
    return q


def list_entries(engine, site=None, kiosk=None, since=None, until=None, limit=1000, after_id=None,
                 clock_unsynced: bool | None = None, sites=None, decision: str | None = None) -> list[dict]:
    """Entries in id order (JSON form), filtered by site, kiosk, UTC time text (since
    inclusive, until exclusive) and id (after `after_id`), at most `limit`.

    :param clock_unsynced: True: only those stamped while the kiosk's clock was not trusted;
        False: only the others; None: all.
    :param sites: only entries of these sites (an operator's `allowed_sites`); None: any site.
    :param decision: only entries whose final decision is this one.
    """
    with engine.connect() as conn:
        return [json.loads(body) for _, body in
                conn.execute(_query(site, kiosk, since, until, after_id, limit, clock_unsynced, sites, decision))]


READ_CHUNK = 500                # rows per query of iter_entries


def iter_entries(engine, site=None, kiosk=None, since=None, until=None, after_id=None,
                 chunk: int = READ_CHUNK, sites=None) -> Iterator[dict]:
    """Every entry `list_entries` would give without a limit, read `chunk` rows per query (by
    id, after the last one read), so that no query or transaction lasts as long as the range.

    :param sites: only entries of these sites (an operator's `allowed_sites`); None: any site.
    """
    while True:
        with engine.connect() as conn:
            rows = conn.execute(_query(site, kiosk, since, until, after_id, chunk, sites=sites)).all()
        for _, body in rows:
            yield json.loads(body)
        if len(rows) < chunk:
            return
        after_id = rows[-1][0]


def _first_sight(conn, signature: str, now: float, window: float) -> bool:
    """Remember a batch's signature; False when it was seen within the window (a replay).
    The database's primary key decides, so several central processes agree."""
    conn.execute(delete(seen_batches).where(seen_batches.c.at < int(now - 2 * window)))
    try:
        with conn.begin_nested():
            conn.execute(insert(seen_batches).values(signature=signature, at=int(now)))
    except IntegrityError:
        return False
    return True


def site_names(engine) -> list[str]:
    """Every site the central knows: of its entries and of its kiosks' credentials."""
    with engine.connect() as conn:
        known = set(conn.execute(select(entries.c.site).distinct()).scalars())
        known |= set(conn.execute(select(credentials.c.site).where(credentials.c.role == "kiosk")).scalars())
    return sorted(s for s in known if s)


def kiosk_activity(engine, sites=None) -> list[dict]:
    """Per kiosk: its site, when its latest batch arrived, its latest entry's time, entries held.

    :param sites: only kiosks of these sites; None: all.
    """
    from sqlalchemy import func

    q = (select(entries.c.site, entries.c.kiosk, func.max(entries.c.received_at).label("last_seen"),
                func.max(entries.c.time).label("last_entry"), func.count().label("entries"))
         .group_by(entries.c.site, entries.c.kiosk).order_by(entries.c.site, entries.c.kiosk))
    if sites is not None:
        q = q.where(entries.c.site.in_(sorted(sites)))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


STATUS_KEYS = {"version": 40, "backlog": None, "health": 300}    # field: longest text kept (None: a count)


def clean_status(status) -> dict | None:
    """The known fields of a kiosk's reported status, text cut short; None when it has none."""
    if not isinstance(status, dict):
        return None
    clean: dict[str, int | str] = {}
    for key, chars in STATUS_KEYS.items():
        value = status.get(key)
        if chars is None:
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:
                clean[key] = value
        elif isinstance(value, str) and value.isprintable():
            clean[key] = value[:chars]
    return clean or None


def put_kiosk_status(engine, kiosk: str, site: str, status: dict) -> None:
    """Keep what `kiosk` said of itself just now (its latest accepted batch)."""
    values = {"site": site, "at": now_iso(), "body": json.dumps(status, ensure_ascii=False)}
    with engine.begin() as conn:
        if conn.execute(update(kiosk_status).where(kiosk_status.c.kiosk == kiosk).values(**values)).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(insert(kiosk_status).values(kiosk=kiosk, **values))
        except IntegrityError:          # a racing batch of the same kiosk inserted it first
            conn.execute(update(kiosk_status).where(kiosk_status.c.kiosk == kiosk).values(**values))


def kiosk_statuses(engine, sites=None) -> list[dict]:
    """What each kiosk last reported: site, kiosk, at (UTC text) and the status fields.

    :param sites: only kiosks of these sites; None: all.
    """
    q = select(kiosk_status).order_by(kiosk_status.c.site, kiosk_status.c.kiosk)
    if sites is not None:
        q = q.where(kiosk_status.c.site.in_(sorted(sites)))
    with engine.connect() as conn:
        return [{"site": r["site"], "kiosk": r["kiosk"], "at": r["at"], **json.loads(r["body"])}
                for r in conn.execute(q).mappings()]


def _json_text(conn, *path: str):
    """A text field inside the entry's JSON body, read by the database (no body parsed here)."""
    from sqlalchemy import func

    if conn.dialect.name == "postgresql":
        return text(f"(CAST(entries.body AS json) #>> '{{{','.join(path)}}}')")
    return func.json_extract(entries.c.body, "$." + ".".join(path))


def entry_summaries(engine, sites=None, since=None, until=None) -> list[dict]:
    """Per entry, only what counts need: site, time, final decision, direction, the app's
    outcome and the declaration's status (as {"ble": {"outcome"}, "declaration": {"status"}}),
    oldest first.

    :param sites: only these sites; None: all.
    """
    with engine.connect() as conn:
        q = select(entries.c.id, entries.c.site, entries.c.time, entries.c.decision, _json_text(conn, "direction"),
                   _json_text(conn, "ble", "outcome"), _json_text(conn, "declaration", "status")).order_by(entries.c.id)
        if sites is not None:
            q = q.where(entries.c.site.in_(sorted(sites)))
        if since:
            q = q.where(entries.c.time >= since)
        if until:
            q = q.where(entries.c.time < until)
        # `decision` is the stored column: the final decision (after a guard's override).
        return [{"id": id_, "site": site, "time": time_, "decision": decision, "direction": direction,
                 "ble": {"outcome": outcome}, "declaration": {"status": status}}
                for id_, site, time_, decision, direction, outcome, status in conn.execute(q)]
