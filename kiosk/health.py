"""The state of each of the kiosk's parts, typed: what the guard screen, the operator API and
`kiosk doctor` read, so none of them parses free text.

Pure: the composition root measures, these functions classify. Each state has a cause code
(declared in CAUSES, phrased in every catalogue) and a technical detail for the journal.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["CAUSES", "Health", "MIN_FREE_MB", "PARTS", "State", "clock_health", "disk_health", "report_health",
           "trust_list_health"]


class State(str, Enum):
    """How well a part works: ok, degraded (works with a limit), down (does not work)."""

    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


# The parts a guard is told about, in the order of the health strip.
PARTS = ("camera", "ble", "sync", "log", "trust_list", "disk", "clock", "report", "inside_now")

# Every cause a part's state can have; the guard's catalogues phrase each as cause_<code>.
CAUSES = (
    "camera_starting", "camera_offline",
    "ble_starting", "ble_quiet", "ble_down",
    "sync_off", "sync_failing", "sync_refused",
    "log_unavailable", "log_damaged", "log_held", "log_not_logged",
    "trust_none", "trust_old",
    "disk_low",
    "clock_unsynced",
    "report_retrying", "report_missed",
)

MIN_FREE_MB = 200        # below this the entry log may soon be unable to write a day's entries


@dataclass(frozen=True)
class Health:
    """One part's state.

    :param part: one of PARTS.
    :param state: ok, degraded or down.
    :param cause: a code from CAUSES; None when nothing is wrong.
    :param detail: technical detail for the journal and the operator (English, may name files);
        never shown on the guard's screen.
    :param figures: numbers the screen may show beside the state (e.g. {"gb": 12.4}).
    """

    part: str
    state: State = State.OK
    cause: str | None = None
    detail: str = ""
    figures: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.part not in PARTS:
            raise ValueError(f"unknown part {self.part!r}")
        if self.cause is not None and self.cause not in CAUSES:
            raise ValueError(f"undeclared health cause {self.cause!r}")

    @property
    def ok(self) -> bool:
        return self.state is State.OK

    def to_json(self) -> dict:
        return {"state": self.state.value, "cause": self.cause, "detail": self.detail,
                "figures": dict(self.figures)}


def trust_list_health(state: str, days: float | None, signers: int) -> Health:
    """The DCC trust list's health, the one rendering of `Verifier.trust_state`.

    :param state: "none", "old" or "ok" (Verifier.trust_state).
    :param days: the list's age in days (None when there is no list).
    :param signers: how many signer certificates it holds.
    """
    if state == "none":
        # No list: every EU DCC is refused as of an unknown signer.
        return Health("trust_list", State.DOWN, "trust_none", "none: DCCs cannot be verified (kiosk trust update)")
    # A list exists from here on, so it has an age.
    assert days is not None
    if state == "old":
        # Too old: EU DCCs still verify but go to review.
        return Health("trust_list", State.DEGRADED, "trust_old", f"out of date: {days:.0f} days old",
                      {"days": round(days)})
    return Health("trust_list", State.OK, None, f"ok: {signers} signers, {days:.1f} days old",
                  {"signers": signers, "days": round(days, 1)})


def disk_health(free_bytes: int, min_free_mb: int = MIN_FREE_MB) -> Health:
    """Free space in the data folder.

    :param free_bytes: free bytes on the data folder's file system.
    :param min_free_mb: below this many MiB the part is degraded.
    """
    mb = free_bytes // 2**20
    figures = {"mb": mb, "gb": round(free_bytes / 2**30, 1)}
    if mb < min_free_mb:
        return Health("disk", State.DEGRADED, "disk_low", f"{mb} MB free (under {min_free_mb} MB)", figures)
    return Health("disk", State.OK, None, f"{mb} MB free", figures)


def clock_health(state: str) -> Health:
    """The clock's health from `Kiosk.clock_state()`: "ok" (synchronised, or not known to be
    otherwise) or "unsynced" (a Pi has no battery clock: validity checks may be wrong)."""
    if state == "unsynced":
        return Health("clock", State.DEGRADED, "clock_unsynced", "system clock not synchronised (NTP)")
    return Health("clock", State.OK, None, "ok")


def report_health(report: dict) -> Health:
    """The daily report's send, from `Kiosk._report_health()`.

    :param report: {"by": "kiosk" | "central" | "off", "ok", and for "kiosk": "day", "state"
        (due, sending, failed, sent, missed), "sent_at", "error"}.
    """
    by = report["by"]
    if by != "kiosk":
        return Health("report", State.OK, None, f"sent by: {by}", {"by": by})
    figures = {"by": by, "day": report.get("day"), "state": report.get("state"), "sent_at": report.get("sent_at")}
    if not report["ok"] or report.get("state") == "missed":
        # The province's deadline passed without the mail server taking the report.
        return Health("report", State.DOWN, "report_missed",
                      f"{report.get('day')}: {report.get('error') or 'deadline missed'}", figures)
    if report.get("error"):
        return Health("report", State.DEGRADED, "report_retrying", f"{report.get('day')}: {report['error']}", figures)
    return Health("report", State.OK, None, f"{report.get('day')}: {report.get('state')}", figures)
