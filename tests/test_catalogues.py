"""Every word the guard sees exists in every language."""
import re
from pathlib import Path

from kiosk.web.i18n import LANGUAGES, OVERRIDE_REASONS, catalogue, reason_text

WEB = Path(__file__).resolve().parents[1] / "kiosk" / "web"


def test_catalogues_have_the_same_keys():
    keys = [set(catalogue(lang)) for lang in LANGUAGES]
    assert all(k == keys[0] for k in keys), set.symmetric_difference(*keys)


def test_every_word_the_pages_use_is_in_the_catalogue():
    used = set(re.findall(r"words\.(\w+)", (WEB / "templates" / "guard.html").read_text()))
    used |= set(re.findall(r"\bW\.(\w+)", (WEB / "static" / "guard.js").read_text()))
    used |= set(OVERRIDE_REASONS)
    for lang in LANGUAGES:
        assert used <= set(catalogue(lang)), used - set(catalogue(lang))


def test_reasons_in_words():
    vi, en = catalogue("vi"), catalogue("en")
    assert reason_text("shown_again:42s", vi) == "Mã đã được quét 42 giây trước"
    assert reason_text("declared:fever", en) == "Declared: fever"
    assert reason_text("something_new", en) == "something_new"
