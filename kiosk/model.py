"""The domain records that travel between the kiosk's parts.

Frozen dataclasses with plain-JSON forms. Nothing here touches a device, a file or the clock.

Over the house's ~300 lines: the records, and the one check of an entry's JSON shape that
the kiosk and the central share (entry_problem), which must sit beside what it checks.
"""
from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

ALLOW, DENY, REVIEW = "allow", "deny", "review"
OUTCOMES = (ALLOW, DENY, REVIEW)

# App presence outcomes, strongest first.
CONFIRMED, LIKELY, NOT_DETECTED = "confirmed", "likely", "not_detected"

# Declaration statuses. REVIEW_STATUS: the code is what it claims but a person must decide
# (an identity-only QR, a trust list out of date).
VALID, INVALID, EXPIRED, UNKNOWN, REVIEW_STATUS = "valid", "invalid", "expired", "unknown", "review"


@dataclass(frozen=True)
class Frame:
    """One camera image (a numpy array, BGR or grayscale) and when it was taken.

    :param t: UNIX seconds by the kiosk's clock (what entries are stamped with).
    :param mono: seconds by the kiosk's monotonic clock, or None: how long a code was out of
        view is measured on it, whatever steps the wall clock takes meanwhile.
    """

    image: Any
    t: float
    mono: float | None = None


@dataclass(frozen=True)
class Scan:
    """A QR payload presented to the camera: bytes as decoded, kept as bytes."""

    payload: bytes
    t: float


@dataclass(frozen=True)
class Advertisement:
    """One BLE advertising report (advertisement or scan response) as heard."""

    addr: str
    rssi: int
    t: float
    raw: bytes
    addr_type: str = "random"

    def to_json(self) -> dict:
        return {"t": self.t, "addr": self.addr, "addr_type": self.addr_type,
                "rssi": self.rssi, "raw": self.raw.hex()}

    @classmethod
    def from_json(cls, d: Mapping) -> Advertisement:
        return cls(addr=str(d["addr"]), rssi=int(d["rssi"]), t=float(d["t"]),
                   raw=bytes.fromhex(d["raw"]), addr_type=str(d.get("addr_type", "random")))


@dataclass(frozen=True)
class Declaration:
    """What a payload says about its holder, after verification."""

    format: str                      # "sitepass", "eu-dcc", "unknown", ...
    status: str                      # VALID, INVALID, EXPIRED, UNKNOWN, REVIEW
    reasons: tuple[str, ...] = ()
    holder: str | None = None
    expires: float | None = None     # UNIX seconds
    flags: tuple[str, ...] = ()      # health answers that need a person to look (symptoms, contact)
    details: Mapping[str, Any] = field(default_factory=dict)   # kind, dob, kid, alg: for `kiosk verify`

    def summary(self) -> dict:
        """What the entry log keeps: no date of birth, no key ids; text within the entry's
        bounds (a name comes from an unsigned QR code and may hold anything)."""
        # NFC: a name typed decomposed (NFD, as some phones and Macs send it) is stored as one
        # spelling, so an exact comparison or a search finds it either way.
        holder = None if self.holder is None else unicodedata.normalize("NFC", self.holder)
        return {"format": self.format, "status": self.status, "holder": clean_text(holder),
                "kind": self.details.get("kind"),
                "expires": iso(self.expires) if self.expires is not None else None,
                "flags": [clean_text(f) for f in self.flags[:MAX_ITEMS]]}


@dataclass(frozen=True)
class Presence:
    """Whether a required contact-tracing app was heard near the door at a scan."""

    outcome: str                     # CONFIRMED, LIKELY, NOT_DETECTED
    family: str | None = None
    rssi: int | None = None
    count_near: int = 0

    def summary(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    outcome: str                     # ALLOW, DENY, REVIEW
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entry:
    """One visitor at the door, as logged and synced. Holds no raw payload."""

    id: str
    site: str
    kiosk: str
    t: float
    direction: str
    declaration: Mapping[str, Any]
    fingerprint: str
    ble: Mapping[str, Any]
    decision: str
    reasons: tuple[str, ...]
    override: Mapping[str, Any] | None = None
    synced_at: str | None = None
    clock_unsynced: bool = False     # stamped while the kiosk's clock was not trusted (clock.py)

    def to_json(self) -> dict:
        d: dict[str, Any] = {"id": self.id, "site": self.site, "kiosk": self.kiosk, "time": iso(self.t),
             "direction": self.direction, "declaration": dict(self.declaration),
             "fingerprint": self.fingerprint, "ble": dict(self.ble),
             "decision": self.decision, "reasons": list(self.reasons),
             "override": dict(self.override) if self.override else None,
             "synced_at": self.synced_at}
        # Only when set: the form of every other entry stays as it was.
        if self.clock_unsynced:
            d["clock_unsynced"] = True
        return d

    @classmethod
    def from_json(cls, d: Mapping) -> Entry:
        return cls(id=d["id"], site=d["site"], kiosk=d["kiosk"], t=parse_iso(d["time"]),
                   direction=d["direction"], declaration=d["declaration"],
                   fingerprint=d["fingerprint"], ble=d["ble"], decision=d["decision"],
                   reasons=tuple(d["reasons"]), override=d.get("override"),
                   synced_at=d.get("synced_at"), clock_unsynced=d.get("clock_unsynced") is True)


class TraceRow(NamedTuple):
    """What contact tracing needs of an entry (trace.stays_from_rows), nothing more: the
    tracing projection the entry log keeps of each day (store/tracing.py).

    Ordered as stays order one person's events: by time, then id.

    :param t: the entry's time, UNIX seconds.
    :param gate: the kiosk that logged it.
    :param action: the guard's override action ("allow", "deny", "exit"), or None.
    :param app: the BLE outcome heard (`ble.outcome`), or None.
    """

    t: float
    id: str
    site: str
    person: str
    gate: str
    direction: str
    action: str | None
    decision: str
    holder: str | None
    app: str | None
    clock_unsynced: bool

    @classmethod
    def of(cls, d: Mapping) -> TraceRow:
        """The row of an entry in its JSON form (it must have a fingerprint). An override,
        declaration or BLE summary that is not an object (an entry the central refused for
        its shape stays in the log) counts as absent."""
        override, declaration, ble = (_object_or_empty(d.get(k)) for k in ("override", "declaration", "ble"))
        return cls(parse_iso(d["time"]), d["id"], d["site"], d["fingerprint"], d["kiosk"], d["direction"],
                   override.get("action"), d["decision"], declaration.get("holder"), ble.get("outcome"),
                   bool(d.get("clock_unsynced")))


def _object_or_empty(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def final_decision(entry: Mapping) -> str:
    """The decision that stands for an entry in its JSON form: a guard's 'allow' or 'deny'
    replaces the door's; an 'exit' is taken only for someone let in (checkpoint.Kiosk.override),
    so it stands for 'allow' even where it replaced the guard's own 'allow'."""
    override = entry.get("override") or {}
    action = override.get("action")
    if action == "exit":
        return ALLOW
    return action if action in (ALLOW, DENY) else entry["decision"]


# The bounds of an entry's JSON form. The kiosk writes its entries within them and the central
# refuses a batch holding anything else (entry_problem), so the two share one definition.
MAX_TEXT = 200                  # characters in a name, a reason, a label
MAX_ITEMS = 64                  # items in a list of reasons or flags
MAX_ENTRY_BYTES = 4096          # a sync batch's budget per entry, UTF-8 JSON; a real one is about 500
DIRECTIONS = ("in", "out")
STATUSES = (VALID, INVALID, EXPIRED, UNKNOWN, REVIEW_STATUS)
PRESENCE_OUTCOMES = (CONFIRMED, LIKELY, NOT_DETECTED)
OVERRIDE_ACTIONS = ("allow", "deny", "exit")
LATEST = 253_402_300_799      # 9999-12-31 23:59:59 UTC: later times cannot be shown or stored

# The reasons a guard may give, by action (catalogue keys): one list for letting in, one for
# refusing, one for a holder leaving. A reason from another list is refused (a guard letting
# someone in "because not eligible" is a mistake or a forgery, not a record).
OVERRIDE_REASONS = {
    "allow": ("why_staff", "why_document", "why_invited", "why_health_allow"),
    "deny": ("why_refused", "why_not_holder", "why_health_deny", "why_behaviour"),
    "exit": ("why_leaving",),
}

# C0/C1 controls and lone surrogates: PostgreSQL's text holds no NUL and UTF-8 no lone
# surrogate (either fails the central's insert), and a control character in a name has no
# place on a guard's screen or in an operator's spreadsheet.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_ULID = re.compile("[0-9A-HJKMNP-TV-Z]{26}")
_ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")     # iso(): sorts as text
_HEX = re.compile("[0-9a-f]{1,64}")

def clean_text(value: str | None) -> str | None:
    """Text as an entry may hold it: unprintable characters dropped, at most MAX_TEXT long."""
    return None if value is None else _UNPRINTABLE.sub("", str(value))[:MAX_TEXT]


def text_problem(value: Any) -> str | None:
    """What keeps `value` from being an entry's text (not text, too long, unprintable), or None."""
    return _any_text(value)


def entry_problem(d: Any) -> tuple[str, str] | None:
    """Check the JSON form of an Entry (as Entry.to_json writes it) without building one.

    :returns: None when `d` is a well-formed entry, else (field, what is wrong), the field
        dotted for nested ones ("declaration.holder").
    """
    if type(d) is not dict:
        return "entry", f"expected an object, got {_kind(d)}"
    return _fields_problem(d, _ENTRY_FIELDS)


# Checkers: a value in, None or what is wrong with it out (a (subfield, problem) pair for an
# object). Built once; ingest runs them on every entry of every batch.
def _text(allowed: tuple | None = None, pattern: re.Pattern | None = None, expected: str = "",
          null: bool = False):
    def check(v):
        if v is None and null:
            return None
        if type(v) is not str:
            return f"expected text, got {_kind(v)}"
        if len(v) > MAX_TEXT:
            return f"longer than {MAX_TEXT} characters"
        if _UNPRINTABLE.search(v):
            return "holds a control character or a lone surrogate"
        if allowed is not None and v not in allowed:
            return f"expected one of {', '.join(allowed)}"
        if pattern is not None and not pattern.fullmatch(v):
            return f"expected {expected}"
        return None
    return check


def _time(v):
    problem = _iso_text(v)
    if problem is None:
        try:
            parse_iso(v)
        except ValueError:
            return "not a real date and time"
    return problem


def _texts(v):
    if type(v) is not list:
        return f"expected a list of text, got {_kind(v)}"
    if len(v) > MAX_ITEMS:
        return f"more than {MAX_ITEMS} items"
    for item in v:
        problem = _any_text(item)
        if problem:
            return problem
    return None


def _int_or_null(v):
    if v is None:
        return None
    if type(v) is not int:
        return f"expected a whole number, got {_kind(v)}"
    return None if -10_000 <= v <= 10_000 else "out of range (-10000 to 10000)"


def _true(v):
    return None if v is True else f"expected true, got {_kind(v)}"


def _object(fields: dict, null: bool = False):
    def check(v):
        if v is None and null:
            return None
        if type(v) is not dict:
            return f"expected an object, got {_kind(v)}"
        return _fields_problem(v, fields)
    return check


def _fields_problem(d: dict, fields: dict) -> tuple[str, str] | None:
    if not d.keys() <= fields.keys():
        return str(next(k for k in d if k not in fields))[:MAX_TEXT], "not a field of an entry"
    for name, (check, required) in fields.items():
        if name not in d:
            if required:
                return name, "missing"
            continue
        problem = check(d[name])
        if problem is not None:
            if type(problem) is tuple:
                return f"{name}.{problem[0]}", problem[1]
            return name, problem
    return None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


_any_text = _text()
_text_or_null = _text(null=True)
_iso_text = _text(pattern=_ISO_MS, expected="UTC time as YYYY-MM-DDTHH:MM:SS.mmmZ")
# field: (checker, required)
_ENTRY_FIELDS = {
    "id": (_text(pattern=_ULID, expected="a ULID (26 characters, Crockford base32)"), True),
    "site": (_any_text, True), "kiosk": (_any_text, True), "time": (_time, True),
    "direction": (_text(DIRECTIONS), True),
    "declaration": (_object({"format": (_any_text, True), "status": (_text(STATUSES), True),
                             "holder": (_text_or_null, False), "kind": (_text_or_null, False),
                             "expires": (_text_or_null, False), "flags": (_texts, False)}), True),
    # Optional: the operator API's public form of an entry leaves it out, and may be sent again.
    "fingerprint": (_text(pattern=_HEX, expected="lower-case hex, at most 64 digits"), False),
    "ble": (_object({"outcome": (_text(PRESENCE_OUTCOMES), True), "family": (_text_or_null, False),
                     "rssi": (_int_or_null, False), "count_near": (_int_or_null, False)}), True),
    "decision": (_text(OUTCOMES), True), "reasons": (_texts, True),
    "override": (_object({"action": (_text(OVERRIDE_ACTIONS), True), "reason": (_text_or_null, False),
                          "by": (_text_or_null, False), "at": (_text_or_null, False)}, null=True), False),
    "synced_at": (_text_or_null, False),
    # Present (true) only on an entry stamped while the kiosk's clock was not trusted.
    "clock_unsynced": (_true, False),
}


def iso(t: float) -> str:
    """UNIX seconds as an ISO-8601 UTC string with milliseconds (sorts as text)."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_iso(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(t: float, rand: bytes | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, Crockford base32, sortable by time."""
    rand = os.urandom(10) if rand is None else rand
    return ulid(int(t * 1000), int.from_bytes(rand, "big"))


def ulid(ms: int, rand: int) -> str:
    """The ULID of `ms` (milliseconds since 1970) and an 80-bit number."""
    n = (ms << 80) | rand
    return "".join(_CROCKFORD[(n >> shift) & 31] for shift in range(125, -1, -5))


def id_parts(entry_id: str) -> tuple[int, int]:
    """(milliseconds, the 80-bit random part) of a ULID."""
    n = 0
    for ch in entry_id.upper():
        n = n * 32 + _CROCKFORD.index(ch)
    return n >> 80, n & ((1 << 80) - 1)


def id_time(entry_id: str) -> float:
    """The UNIX time written in a ULID's first 10 characters."""
    ms = 0
    for ch in entry_id[:10].upper():
        ms = ms * 32 + _CROCKFORD.index(ch)
    return ms / 1000
