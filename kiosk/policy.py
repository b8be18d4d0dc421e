"""The decision at the door: pure, no IO, no clock (everything it needs is an argument).

Outcomes rank deny > review > allow; every rule that lowers the outcome adds a named reason
so the guard sees why.
"""
from __future__ import annotations

from dataclasses import dataclass

from .model import ALLOW, CONFIRMED, DENY, EXPIRED, INVALID, LIKELY, REVIEW, UNKNOWN, VALID
from .model import Decision, Declaration, Presence

_RANK = {ALLOW: 0, REVIEW: 1, DENY: 2}
# "warn" lets the visitor in and records the reason.
_ACTION = {"warn": ALLOW, "review": REVIEW, "deny": DENY}


@dataclass(frozen=True)
class Rules:
    no_app: str = "review"           # review | warn | deny
    reuse_window: float = 600.0      # seconds
    on_reuse: str = "review"         # review | warn | deny

    @classmethod
    def from_settings(cls, settings) -> "Rules":
        return cls(settings["policy.no_app"], settings["policy.reuse_window"], settings["policy.on_reuse"])


def decide(declaration: Declaration, presence: Presence, shown_ago: float | None, rules: Rules) -> Decision:
    """Decide for one scan.

    `shown_ago`: seconds since the same code was last shown at this site, or None.
    """
    outcome, reasons = ALLOW, []

    def lower(to: str, reason: str) -> None:
        nonlocal outcome
        if _RANK[to] > _RANK[outcome]:
            outcome = to
        reasons.append(reason)

    if declaration.status == VALID:
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

    if shown_ago is not None and shown_ago <= rules.reuse_window:
        lower(_ACTION[rules.on_reuse], f"shown_again:{int(shown_ago)}s")

    return Decision(outcome, tuple(reasons))
