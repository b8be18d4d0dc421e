"""The visitor's phone in real headless Chromium: the declaration form filled in at 390x844,
and the pass it gives read back from screenshots at phone and laptop sizes by the door's
own decoder. Screenshots go to test-artifacts/screens/ (docs/screens/ holds copies)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from kiosk.camera.decoder import QRDecoder

from .test_guard_screen import CHROMIUM, SCREENS, browser  # noqa: F401 (the browser fixture)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="chromium is not installed (make test installs Debian's chromium)")

PHONE = {"width": 390, "height": 844}
SIZES = [(360, 740), (390, 844), (430, 932), (1280, 800)]
QUESTIONS = ("travel", "contact", "fever", "cough", "breath", "throat", "taste")


@pytest.fixture
def kiosk(make_kiosk, site_key):
    return make_kiosk(sitepass__signing_key=str(site_key), form__host="127.0.0.1", form__port=0)


@pytest.fixture
def phone(browser):  # noqa: F811
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    page = context.new_page()
    yield page
    context.close()


def shoot(page, name, full_page=False) -> np.ndarray:
    SCREENS.mkdir(parents=True, exist_ok=True)
    png = page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=full_page)
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def fill_in(page, name="Trần Thị Bình", fever="no"):
    page.fill("#name", name)
    page.fill("#year_of_birth", "1985")
    page.check("input[name=sex][value=female]")
    page.fill("#id_number", "079185000111")
    page.fill("#phone", "0912 345 678")
    page.fill("#address", "45 Nguyễn Huệ, Quận 1, TP. Hồ Chí Minh")
    for key in QUESTIONS:
        page.check(f"input[name={key}][value={'yes' if key == 'fever' and fever == 'yes' else 'no'}]")


def test_the_form_on_a_phone_full_width_big_targets_nothing_chosen(kiosk, phone):
    phone.goto(kiosk.form_url + "/")
    # Nothing is chosen for the visitor: not the sex, not an answer.
    assert phone.eval_on_selector_all("input[type=radio]", "rs => rs.filter(r => r.checked).length") == 0
    # Every question takes the page's width (the issue saw ~90 px columns of ten lines).
    form_width = phone.eval_on_selector("form", "f => f.getBoundingClientRect().width")
    for key in QUESTIONS:
        legend = phone.eval_on_selector(f"#q-{key} legend", "e => e.getBoundingClientRect().width")
        assert legend >= form_width - 1, (key, legend, form_width)
    # Touch targets: every choice, field and the button at least 44 px high.
    heights = phone.eval_on_selector_all(".choices label, input[type=text], input[type=tel], input[type=number], "
                                         "button", "es => es.map(e => e.getBoundingClientRect().height)")
    assert min(heights) >= 44, heights
    # Required fields are marked.
    for field in ("name", "year_of_birth"):
        assert "*" in phone.inner_text(f"label[for={field}]")
    assert "*" in phone.inner_text("#sex legend")
    shoot(phone, "form-390x844", full_page=True)
    fill_in(phone)
    phone.click("button[type=submit]")
    phone.wait_for_selector("#pass svg")
    assert phone.inner_text("h1") == "Trần Thị Bình"
    assert kiosk.log.find_declaration(kiosk.id_hash("079185000111"), "0")["sex"] == "female"


def test_a_bad_form_says_what_is_wrong_beside_each_field_in_vietnamese(kiosk, phone):
    phone.goto(kiosk.form_url + "/")
    fill_in(phone)
    phone.fill("#id_number", "12-34")                  # the browser lets it through; the server does not
    phone.fill("#year_of_birth", "1850")
    phone.click("button[type=submit]")
    phone.wait_for_selector("#errors")
    assert phone.inner_text("#id_number-error").startswith("Số giấy tờ gồm 6 đến 12 chữ cái hoặc chữ số")
    assert phone.inner_text("#year_of_birth-error").startswith("Vui lòng nhập năm sinh bốn chữ số")
    # beside its field: right under it
    field = phone.eval_on_selector("#id_number", "e => e.getBoundingClientRect().bottom")
    message = phone.eval_on_selector("#id_number-error", "e => e.getBoundingClientRect().top")
    assert 0 <= message - field < 20
    assert phone.get_attribute("#id_number", "aria-describedby") == "id_number-error"
    # what was typed stays, and a missing answer is named at its question
    assert phone.input_value("#name") == "Trần Thị Bình"
    r = requests.post(kiosk.form_url + "/", timeout=5, data={"name": "An", "year_of_birth": "1990"})
    assert r.status_code == 400
    assert 'id="sex-error"' in r.text and 'id="fever-error"' in r.text and "Vui lòng chọn Có hoặc Không." in r.text
    shoot(phone, "form-errors-390x844", full_page=True)


def test_the_pass_reads_back_from_screenshots_at_phone_and_laptop_sizes(kiosk, phone):
    phone.goto(kiosk.form_url + "/")
    fill_in(phone, fever="yes")
    phone.click("button[type=submit]")
    phone.wait_for_selector("#pass svg")
    payload = phone.get_attribute("#pass", "data-payload").encode()
    assert "Tăng độ sáng màn hình" in phone.inner_text("#brightness")
    decoder = QRDecoder(kiosk.settings["decoder.max_payload"], remember=0)
    for width, height in SIZES:
        phone.set_viewport_size({"width": width, "height": height})
        box = phone.eval_on_selector("#pass svg", "e => { const r = e.getBoundingClientRect();"
                                     " return [r.left, r.top, r.right, r.bottom]; }")
        # the whole code with its quiet zone inside the screen
        assert box[0] >= 0 and box[1] >= 0 and box[2] <= width and box[3] <= height, (width, height, box)
        image = shoot(phone, f"pass-{width}x{height}")
        assert decoder.decode(image) == [payload], (width, height)
