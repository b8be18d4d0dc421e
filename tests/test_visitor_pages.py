"""The two pages a visitor's phone sees, the declaration form and the pass it gives, share
one base template (visitor.html): the same language, viewport and type, through a real
form server on 127.0.0.1."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

ANSWERS_NO = {k: "no" for k in ("travel", "contact", "fever", "cough", "breath", "throat", "taste")}


@pytest.fixture
def kiosk(make_kiosk, site_key):
    return make_kiosk(sitepass__signing_key=str(site_key), form__host="127.0.0.1", form__port=0)


def head(page: str) -> str:
    """The page up to its own title: what the base template gives every visitor page."""
    return page[:page.index("<title>")]


def test_the_form_and_the_pass_are_one_family_of_pages(kiosk):
    form = requests.get(kiosk.form_url + "/", timeout=5).text
    answer = {"name": "Nguyễn Văn An", "year_of_birth": "1990", "sex": "male", "id_number": "001099012345",
              "phone": "0912 345 678", "address": "12 Lý Thường Kiệt, Hà Nội", **ANSWERS_NO}
    pass_page = requests.post(kiosk.form_url + "/", data=answer, timeout=5).text
    assert 'data-payload="KP1:' in pass_page
    assert head(form) == head(pass_page)
    assert '<html lang="vi">' in head(form) and 'name="viewport"' in head(form)
    for page, title in ((form, "Khai báo y tế / Health declaration"), (pass_page, "Mã QR ra vào / Entry pass")):
        assert f"<title>{title}</title>" in page
        # The visitor's type and width, once, from the base; each page adds only its own rules.
        assert len(re.findall(r"font-family", page)) == 1
        assert page.index('max-width: 36rem') < page.index("</style>")
        assert page.count("<body>") == 1 and page.rstrip().endswith("</html>")


def test_both_templates_extend_the_visitor_base():
    # One place to change what every visitor page carries (language, viewport, type).
    import jinja2
    import jinja2.meta

    templates = Path(__file__).resolve().parents[1] / "kiosk" / "web" / "templates"
    env = jinja2.Environment()
    for name in ("form.html", "pass.html"):
        parsed = env.parse((templates / name).read_text(encoding="utf-8"))
        assert list(jinja2.meta.find_referenced_templates(parsed)) == ["visitor.html"], name
