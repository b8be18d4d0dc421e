"""Payload -> Declaration: which format a QR code is, and what it proves.

Pure: the payload and the verification time go in, a Declaration comes out; no exception
escapes for any input.
"""
from __future__ import annotations

import logging
from typing import Mapping

from ..model import UNKNOWN, Declaration
from . import sitepass

log = logging.getLogger(__name__)


class Verifier:
    """Verify payloads against this site's trusted keys."""

    def __init__(self, site: str, sitepass_keys: Mapping[bytes, list]):
        self.site = site
        self.sitepass_keys = dict(sitepass_keys)

    @classmethod
    def from_settings(cls, settings) -> "Verifier":
        return cls(settings["site.id"], sitepass.load_keys(settings["sitepass.public_keys"]))

    def verify(self, payload: bytes, at: float) -> Declaration:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return Declaration("unknown", UNKNOWN, ("unknown_code",))
        try:
            if text.startswith(sitepass.PREFIX):
                return sitepass.verify(text, self.sitepass_keys, self.site, at)
        except Exception:  # never let a visitor's code crash the door
            log.exception("verifier failed on a %d-byte payload", len(payload))
            return Declaration("unknown", UNKNOWN, ("verifier_error",))
        return Declaration("unknown", UNKNOWN, ("unknown_code",))
