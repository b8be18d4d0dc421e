"""The pure decision: declaration + presence + reuse + rules -> Decision; and the rules that
complete a PC-Covid QR with today's declaration."""
import pytest

from kiosk import names
from kiosk.model import Declaration, Presence
from kiosk.policy import Rules, decide, with_todays_declaration

VALID = Declaration("sitepass", "valid", (), "A")
FORGED = Declaration("sitepass", "invalid", ("bad_signature",))
EXPIRED = Declaration("sitepass", "expired", ("expired",), "A")
UNKNOWN = Declaration("unknown", "unknown", ("unknown_code",))
FEVER = Declaration("sitepass", "valid", (), "A", flags=("fever",))
APP = Presence("confirmed", "bluezone", -60, 1)
WEAK = Presence("likely", "bluezone", -62, 1)
NONE = Presence("not_detected")


@pytest.mark.parametrize("declaration, presence, shown_ago, rules, outcome, reasons", [
    (VALID, APP, None, Rules(), "allow", ()),
    (VALID, WEAK, None, Rules(), "allow", ("app_likely",)),
    (VALID, NONE, None, Rules(), "review", ("app_not_detected",)),
    (VALID, NONE, None, Rules(no_app="warn"), "allow", ("app_not_detected",)),
    (VALID, NONE, None, Rules(no_app="deny"), "deny", ("app_not_detected",)),
    (FORGED, APP, None, Rules(), "deny", ("bad_signature",)),
    (EXPIRED, NONE, None, Rules(), "deny", ("expired", "app_not_detected")),
    (UNKNOWN, APP, None, Rules(), "deny", ("unknown_code",)),
    (FEVER, APP, None, Rules(), "review", ("declared:fever",)),
    (VALID, APP, 42.7, Rules(), "review", ("shown_again:42s",)),
    (VALID, APP, 601.0, Rules(reuse_window=600), "allow", ()),
    (VALID, APP, 10.0, Rules(on_reuse="deny"), "deny", ("shown_again:10s",)),
    (FORGED, APP, 10.0, Rules(), "deny", ("bad_signature", "shown_again:10s")),
    (VALID, APP, 10.0, Rules(direction="out"), "allow", ()),          # the visitor leaving
])
def test_decisions(declaration, presence, shown_ago, rules, outcome, reasons):
    decision = decide(declaration, presence, shown_ago, rules)
    assert (decision.outcome, decision.reasons) == (outcome, reasons)


IDENTITY = Declaration("pc-covid", "review", ("identity_only",), "Trần Thị Bình",
                       details={"kind": "identity", "dob": "1985-05-05", "id_number": "079185000111"})
DECLARED = {"079185000111": {"name": "Tran Thi Binh", "flags": []}}


@pytest.mark.parametrize("declared, rules, status, reasons, flags", [
    ({}, Rules(), "review", ("identity_only",), ()),
    (DECLARED, Rules(), "valid", (), ()),
    (DECLARED, Rules(identity_with_declaration="review"), "review", ("declared_today",), ()),
    ({"079185000111": {"name": "Trần Thị Bình", "flags": ["fever"]}}, Rules(), "review", ("declared_today",),
     ("fever",)),
    ({"079185000111": {"name": "Lê Văn Cường", "flags": ["fever"]}}, Rules(), "review",
     ("identity_only", "declaration_other_name"), ()),
])
def test_an_identity_qr_with_todays_declaration(declared, rules, status, reasons, flags):
    d = with_todays_declaration(IDENTITY, declared.get, rules)
    assert (d.status, d.reasons, d.flags) == (status, reasons, flags)


def test_only_an_identity_qr_looks_for_a_declaration():
    def find(id_number):
        raise AssertionError("looked up")
    assert with_todays_declaration(VALID, find, Rules()) is VALID


@pytest.mark.parametrize("a, b, same", [
    ("Trần Thị Bình", "Trần Thị Bình", True),
    ("Trần Thị Bình", "tran  thi BINH", True),                       # typed without diacritics
    ("Nguyễn Văn Đức", "Nguyen Van Duc", True),                      # đ is its own letter
    ("Nguye\u0302\u0303n Văn An", "Nguyễn Văn An", True),           # decomposed (NFD) input
    ("Trần Thị Bình", "Lê Văn Cường", False),
    ("Trần Thị Bình", "Trần Thị", False),
    ("Trần Thị Bình", None, False),
    ("", "", False),
])
def test_names_compare_as_people_write_them(a, b, same):
    assert names.same(a, b) is same
