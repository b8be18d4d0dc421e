"""The pure decision: declaration + presence + reuse + rules -> Decision."""
import pytest

from kiosk.model import Declaration, Presence
from kiosk.policy import Rules, decide

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
])
def test_decisions(declaration, presence, shown_ago, rules, outcome, reasons):
    decision = decide(declaration, presence, shown_ago, rules)
    assert (decision.outcome, decision.reasons) == (outcome, reasons)
