"""The guard screen's words: one JSON catalogue per language (Vietnamese first).

Plain JSON rather than gettext catalogues: the browser's live updates use the very same
catalogue (it is embedded in the page), and there is no compile step on the Pi.
"""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from ...model import OVERRIDE_REASONS as MODEL_REASONS

LANGUAGES = ("vi", "en")
_HERE = Path(__file__).parent
# Every reason a guard can pick (model.OVERRIDE_REASONS by action), and two an older version
# offered that old entries may still carry.
OVERRIDE_REASONS = tuple(r for reasons in MODEL_REASONS.values() for r in reasons) + ("why_health", "why_other")


@cache
def catalogue(lang: str) -> dict:
    if lang not in LANGUAGES:
        lang = LANGUAGES[0]
    return json.loads((_HERE / f"{lang}.json").read_text(encoding="utf-8"))


def reason_text(code: str, words: dict) -> str:
    """A reason code ("shown_again:42s", "declared:fever") in the guard's words; a code no
    catalogue phrases gets the generic phrase, never the code itself."""
    name, _, arg = code.partition(":")
    template = words.get(f"reason_{name}")
    if template is None:
        return words["reason_unknown"]
    if name == "declared":
        arg = words.get(f"answer_{arg}", words["answer_unknown"])
    return template.replace("{n}", arg.rstrip("s") if name == "shown_again" else arg)


def word(words: dict, prefix: str, code: str | None) -> str:
    """The phrase of `prefix + code` (a status, a format, a kind); the generic phrase of that
    prefix when the catalogue has none (an entry synced from a newer kiosk, say)."""
    return words.get(f"{prefix}{code}", words.get(f"{prefix}unknown", ""))
