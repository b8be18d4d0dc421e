"""The decision at the door: pure, no IO, no clock (everything it needs is an argument).

Outcomes rank deny > review > allow; every rule that lowers the outcome adds a named reason
so the guard sees why. The rules that complete a declaration before the decision (today's
health declaration for an identity-only QR) live here too.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from . import names
from .model import (
    ALLOW,
    CONFIRMED,
    DENY,
    EXPIRED,
    INVALID,
    LIKELY,
    REVIEW,
    UNKNOWN,
    VALID,
    Decision,
    Declaration,
    Presence,
)

_RANK = {ALLOW: 0, REVIEW: 1, DENY: 2}
# "warn" lets the visitor in and records the reason.
_ACTION = {"warn": ALLOW, "review": REVIEW, "deny": DENY}

CLOCK_UNSYNCED = "clock_unsynced"
# Formats whose verdict rests on the time of the scan (expiry, validity from, test age).
CLOCK_FORMATS = ("eu-dcc", "sitepass")
# Reasons a verifier gives from the time alone (declarations/dcc.py, declarations/sitepass.py):
# a wrong clock makes them wrong too.
CLOCK_REASONS = frozenset({"expired", "not_yet_valid", "vaccination_too_recent", "test_too_old",
                           "recovery_too_old", "recovery_not_yet_valid", "recovery_expired",
                           "trust_list_out_of_date"})


@dataclass(frozen=True)
class Rules:
    """The door's rules, from the `policy.*` settings and the kiosk's direction."""
    no_app: str = "review"           # review | warn | deny
    reuse_window: float = 600.0      # seconds
    on_reuse: str = "review"         # review | warn | deny
    identity_with_declaration: str = "allow"     # allow | review
    direction: str = "in"            # in | out

    @classmethod
    def from_settings(cls, settings) -> Rules:
        return cls(settings["policy.no_app"], settings["policy.reuse_window"], settings["policy.on_reuse"],
                   settings["policy.identity_with_declaration"], settings["kiosk.direction"])

    @property
    def watches_reuse(self) -> bool:
        """Whether a code shown again counts against it: a code shown again on the way out is
        the same visitor leaving, not a copy passed on."""
        return self.direction == "in"


def with_todays_declaration(declaration: Declaration, find: Callable[[str], dict | None],
                            rules: Rules) -> Declaration:
    """An identity-only QR (PC-Covid) completed by the health declaration its holder made
    today on this site's form, under the same ID number and name.

    :param find: the caller's lookup: the latest declaration record (with "name" and
        "flags") made today under an ID number, or None.
    :returns: the declaration with the answers' flags, or valid when there were none and
        `rules.identity_with_declaration` is "allow"; unchanged when nothing was declared;
        with the reason "declaration_other_name" when the names disagree.
    """
    id_number = declaration.details.get("id_number")
    if declaration.details.get("kind") != "identity" or not id_number:
        return declaration
    record = find(id_number)
    if record is None:
        return declaration
    # Anyone can type someone else's ID number into the form: the name must agree too.
    if not names.same(record.get("name"), declaration.holder):
        return replace(declaration, reasons=declaration.reasons + ("declaration_other_name",))
    if record["flags"]:
        return replace(declaration, reasons=("declared_today",), flags=tuple(record["flags"]))
    if rules.identity_with_declaration == "allow":
        return replace(declaration, status=VALID, reasons=(), flags=())
    return replace(declaration, reasons=("declared_today",))


def judged_by_clock(declaration: Declaration) -> bool:
    """Whether the verdict on `declaration` rests on the time of the scan: a valid or
    expired DCC or site pass, or one refused for time reasons only."""
    if declaration.format not in CLOCK_FORMATS:
        return False
    if declaration.status == VALID:
        return True
    return bool(declaration.reasons) and set(declaration.reasons) <= CLOCK_REASONS


def decide(declaration: Declaration, presence: Presence, shown_ago: float | None, rules: Rules,
           clock_trusted: bool = True) -> Decision:
    """Decide for one scan.

    `shown_ago`: seconds since the same code was last shown at this site, or None (not
    counted where the rules do not watch reuse). `clock_trusted`: whether the time of the
    scan can be trusted (clock.ClockWatch); when not, a verdict that rests on it (expiry,
    validity) goes to review with the reason "clock_unsynced", never a silent allow or deny.
    """
    outcome, reasons = ALLOW, []

    def lower(to: str, reason: str) -> None:
        nonlocal outcome
        if _RANK[to] > _RANK[outcome]:
            outcome = to
        reasons.append(reason)

    if not clock_trusted and judged_by_clock(declaration):
        lower(REVIEW, CLOCK_UNSYNCED)
        for reason in declaration.reasons:          # what the wrong clock says, for the guard
            lower(REVIEW, reason)
        for flag in declaration.flags:
            lower(REVIEW, f"declared:{flag}")
    elif declaration.status == VALID:
        for flag in declaration.flags:
            lower(REVIEW, f"declared:{flag}")
    elif declaration.status in (INVALID, EXPIRED, UNKNOWN):
        for reason in declaration.reasons or (declaration.status,):
            lower(DENY, reason)
    else:                           # a format that needs a person to look (e.g. "review")
        for reason in declaration.reasons or (declaration.status,):
            lower(REVIEW, reason)

    if presence.outcome == LIKELY:
        reasons.append("app_likely")
    elif presence.outcome != CONFIRMED:
        lower(_ACTION[rules.no_app], "app_not_detected")

    if rules.watches_reuse and shown_ago is not None and shown_ago <= rules.reuse_window:
        lower(_ACTION[rules.on_reuse], f"shown_again:{int(shown_ago)}s")

    return Decision(outcome, tuple(reasons))
