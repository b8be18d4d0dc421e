"""Every code a part can put in front of a guard or a visitor, declared once.

The guard screen shows none of these as such: each has a phrase in every catalogue
(kiosk/web/i18n/*.json, key = prefix + code), and tests/test_catalogues.py fails when one lacks
it. A code that is not here falls back to a generic phrase on screen.
"""
from __future__ import annotations

from .health import CAUSES, PARTS
from .model import OUTCOMES, OVERRIDE_ACTIONS, PRESENCE_OUTCOMES, STATUSES

__all__ = ["CATALOGUE_KEYS", "FORMATS", "KINDS", "REASONS", "REASONS_WITH_ARGUMENT", "SCREEN_ERRORS"]

# The reasons a Declaration or a Decision carries (the part before ":" when it has an argument).
REASONS = (
    # policy and the door
    "app_not_detected", "app_likely", "shown_again", "declared", "declared_today",
    "declaration_other_name", "not_logged",
    # any declaration
    "unknown_code", "verifier_error", "bad_signature", "unknown_signer", "expired", "not_yet_valid",
    "malformed_cose", "malformed_claims", "malformed_compression", "image_too_large",
    # this site's pass, PC-Covid
    "other_site", "identity_only",
    # EU DCC: the certificate, its signer, the schema, the site's rules
    "malformed_certificate", "outside_signer_validity", "wrong_key_usage", "trust_list_out_of_date",
    "not_one_certificate", "schema_type", "schema_missing", "schema_too_long", "schema_format",
    "schema_range", "schema_count",
    "vaccination_incomplete", "vaccination_too_recent", "test_not_negative", "test_type_unknown",
    "test_too_old", "recovery_too_old", "recovery_not_yet_valid", "recovery_expired",
)
# Reasons written "code:argument": the phrase has {n} for the argument.
REASONS_WITH_ARGUMENT = ("shown_again", "declared", "schema_type", "schema_missing", "schema_too_long",
                         "schema_format", "schema_range", "schema_count")

FORMATS = ("eu-dcc", "sitepass", "pc-covid", "unknown")
KINDS = ("vaccination", "test", "recovery", "identity", "none")

# What the guard's override can answer (the override route's error codes).
SCREEN_ERRORS = ("wrong_pin", "pin_locked")

# catalogue key prefix -> the codes it must phrase
CATALOGUE_KEYS = {
    "reason_": REASONS,
    "status_": STATUSES,
    "format_": FORMATS,
    "kind_": KINDS,
    "": OUTCOMES + PRESENCE_OUTCOMES + SCREEN_ERRORS,
    "action_": OVERRIDE_ACTIONS,
    "part_": PARTS,
    "cause_": CAUSES + ("unknown",),
}
