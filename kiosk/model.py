"""The domain records that travel between the kiosk's parts.

Frozen dataclasses with plain-JSON forms. Nothing here touches a device, a file or the clock.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

ALLOW, DENY, REVIEW = "allow", "deny", "review"
OUTCOMES = (ALLOW, DENY, REVIEW)

# App presence outcomes, strongest first.
CONFIRMED, LIKELY, NOT_DETECTED = "confirmed", "likely", "not_detected"

# Declaration statuses. REVIEW_STATUS: the code is what it claims but a person must decide
# (an identity-only QR, a trust list out of date).
VALID, INVALID, EXPIRED, UNKNOWN, REVIEW_STATUS = "valid", "invalid", "expired", "unknown", "review"


@dataclass(frozen=True)
class Frame:
    """One camera image (a numpy array, BGR or grayscale) and when it was taken."""

    image: Any
    t: float


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
    def from_json(cls, d: Mapping) -> "Advertisement":
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
        """What the entry log keeps: no date of birth, no key ids."""
        return {"format": self.format, "status": self.status, "holder": self.holder,
                "kind": self.details.get("kind"),
                "expires": iso(self.expires) if self.expires is not None else None,
                "flags": list(self.flags)}


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

    def to_json(self) -> dict:
        return {"id": self.id, "site": self.site, "kiosk": self.kiosk, "time": iso(self.t),
                "direction": self.direction, "declaration": dict(self.declaration),
                "fingerprint": self.fingerprint, "ble": dict(self.ble),
                "decision": self.decision, "reasons": list(self.reasons),
                "override": dict(self.override) if self.override else None,
                "synced_at": self.synced_at}

    @classmethod
    def from_json(cls, d: Mapping) -> "Entry":
        return cls(id=d["id"], site=d["site"], kiosk=d["kiosk"], t=parse_iso(d["time"]),
                   direction=d["direction"], declaration=d["declaration"],
                   fingerprint=d["fingerprint"], ble=d["ble"], decision=d["decision"],
                   reasons=tuple(d["reasons"]), override=d.get("override"),
                   synced_at=d.get("synced_at"))


def iso(t: float) -> str:
    """UNIX seconds as an ISO-8601 UTC string with milliseconds (sorts as text)."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(t: float, rand: bytes | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, Crockford base32, sortable by time."""
    rand = os.urandom(10) if rand is None else rand
    n = (int(t * 1000) << 80) | int.from_bytes(rand, "big")
    return "".join(_CROCKFORD[(n >> shift) & 31] for shift in range(125, -1, -5))


def id_time(entry_id: str) -> float:
    """The UNIX time written in a ULID's first 10 characters."""
    ms = 0
    for ch in entry_id[:10].upper():
        ms = ms * 32 + _CROCKFORD.index(ch)
    return ms / 1000
