"""Payload -> Declaration: which format a QR code is, and what it proves.

Pure: the payload and the verification time go in, a Declaration comes out; no exception
escapes for any input. Formats: the site's own pass (KP1:), the EU DCC (HC1:, Vietnam's
vaccine passport), the PC-Covid personal QR; anything else is an unknown code.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from ..model import UNKNOWN, Declaration
from . import dcc, pccovid, sitepass
from .trust import TrustList

log = logging.getLogger(__name__)


class Verifier:
    """Verify payloads against this site's keys and the DCC trust list."""

    def __init__(self, site: str, sitepass_keys: Mapping[bytes, list], trust: TrustList | None = None,
                 rules: dcc.CertificateRules = dcc.CertificateRules()):
        self.site = site
        self.sitepass_keys = dict(sitepass_keys)
        self.trust = trust if trust is not None else TrustList()
        self.rules = rules

    @classmethod
    def from_settings(cls, settings) -> Verifier:
        path = settings["dcc.trust_list"] or str(Path(settings["data_dir"]) / "trust-list.json")
        trust = TrustList.load(path) if Path(path).exists() else TrustList()
        return cls(settings["site.id"], sitepass.load_keys(settings["sitepass.public_keys"]), trust,
                   dcc.CertificateRules.from_settings(settings))

    def trust_state(self, at: float) -> tuple[str, float | None]:
        """("none" | "old" | "ok", age in days) of the DCC trust list at time `at`."""
        age = self.trust.age(at)
        if age is None:
            return "none", None
        return ("old" if age > self.rules.trust_max_age else "ok"), age / 86400

    def verify(self, payload: bytes, at: float) -> Declaration:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return Declaration("unknown", UNKNOWN, ("unknown_code",))
        try:
            if text.startswith(sitepass.PREFIX):
                return sitepass.verify(text, self.sitepass_keys, self.site, at)
            if text.startswith(dcc.PREFIX):
                return dcc.verify(text, self.trust, at, self.rules)[0]
            if pccovid.looks_like(text):
                return pccovid.parse(text)
        except Exception:  # never let a visitor's code crash the door
            log.exception("verifier failed on a %d-byte payload", len(payload))
            return Declaration("unknown", UNKNOWN, ("verifier_error",))
        return Declaration("unknown", UNKNOWN, ("unknown_code",))
