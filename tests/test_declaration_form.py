"""A visitor fills in the health declaration on their phone, gets a pass, shows it at the
door; the form is served on its own listener through a real server on 127.0.0.1."""
from __future__ import annotations

import base64
import html
import re

import cv2
import numpy as np
import pytest
import requests

from kiosk.ble import families
from kiosk.demo.scene import visitor_frame

ANSWERS_NO = {k: "no" for k in ("travel", "contact", "fever", "cough", "breath", "throat", "taste")}


@pytest.fixture
def kiosk(make_kiosk, site_key):
    return make_kiosk(sitepass__signing_key=str(site_key), form__host="127.0.0.1", form__port=0)


def declare(kiosk, **fields):
    form = {"name": "Nguyễn Văn An", "year_of_birth": "1990", "sex": "male", "id_number": "001099012345",
            "phone": "0912 345 678", "address": "12 Lý Thường Kiệt, Hà Nội", **ANSWERS_NO, **fields}
    return requests.post(kiosk.form_url + "/", data=form, timeout=5)


def pass_from(page: str) -> tuple[str, bytes]:
    """The pass text and its PNG, as the visitor's phone gets them."""
    payload = html.unescape(re.search(r'data-payload="([^"]+)"', page).group(1))
    png = base64.b64decode(re.search(r'href="data:image/png;base64,([^"]+)"', page).group(1))
    return payload, png


def at_the_door(kiosk, image, phone: bytes | None = None):
    if phone is not None:
        kiosk.scanner.advertise("5d:3a:10:22:8f:01", -58, phone, times=3)
        assert kiosk.scanner.wait_idle()
    kiosk.clock.advance(30)
    kiosk.camera.show(image, frames=2)
    assert kiosk.camera.wait_idle()
    return kiosk.log.recent(1)[0]


def test_the_form_in_vietnamese_with_english(kiosk):
    page = requests.get(kiosk.form_url + "/", timeout=5).text
    for words in ("Khai báo y tế", "Health declaration", "Mất vị giác hoặc khứu giác", "Loss of taste or smell",
                  "Số CCCD / CMND / Hộ chiếu"):
        assert words in page


def test_a_declaration_without_risk_gives_a_pass_that_opens_the_door(kiosk):
    r = declare(kiosk)
    assert r.status_code == 200
    payload, png = pass_from(r.text)
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    from kiosk.camera.decoder import QRDecoder
    assert QRDecoder().decode(picture) == [payload.encode()], "the saved picture is the same pass"
    phone_screen = visitor_frame(payload)
    entry = at_the_door(kiosk, phone_screen, families.bluezone_android(bytes(12)))
    assert (entry["decision"], entry["reasons"]) == ("allow", [])
    assert entry["declaration"]["holder"] == "Nguyễn Văn An"
    # What was kept: no raw ID number anywhere in the store.
    store = "".join(p.read_text(encoding="utf-8") for p in (kiosk.data_dir / "log").rglob("*.json*"))
    assert "001099012345" not in store and "0912 345 678" in store


def test_a_declared_symptom_sends_the_visitor_to_health_staff(kiosk):
    r = declare(kiosk, fever="yes", contact="yes")
    payload, _ = pass_from(r.text)
    assert "Sốt" in r.text and "Fever" in r.text
    entry = at_the_door(kiosk, visitor_frame(payload), families.bluezone_android(bytes(12)))
    assert (entry["decision"], entry["reasons"]) == ("review", ["declared:contact", "declared:fever"])


def test_pc_covid_qr_counts_with_todays_declaration_by_the_same_id(kiosk):
    declare(kiosk, name="Trần Thị Bình", id_number="079185000111")
    known = at_the_door(kiosk, visitor_frame("079185000111|Trần Thị Bình|05051985|1|QX|"),
                        families.gaen(bytes(16)))
    assert (known["declaration"]["format"], known["decision"], known["reasons"]) == ("pc-covid", "allow", [])
    stranger = at_the_door(kiosk, visitor_frame("079185000999|Lê Văn Cường|07071970|1|QY|"),
                           families.gaen(bytes(16)))
    assert (stranger["decision"], stranger["reasons"]) == ("review", ["identity_only"])


def test_a_declaration_under_someone_elses_id_number_does_not_count_for_them(kiosk):
    declare(kiosk, name="Trần Thị Bình", id_number="079185000111")
    kiosk.clock.advance(60)
    declare(kiosk, name="Lê Văn Cường", id_number="079185000111", fever="yes")      # not her
    entry = at_the_door(kiosk, visitor_frame("079185000111|Trần Thị Bình|05051985|1|QX|"),
                        families.gaen(bytes(16)))
    assert (entry["decision"], entry["reasons"]) == ("review", ["identity_only", "declaration_other_name"])


def test_the_same_name_typed_without_diacritics_counts(kiosk):
    declare(kiosk, name="tran  THI binh", id_number="079185000111")
    entry = at_the_door(kiosk, visitor_frame("079185000111|Trần Thị Bình|05051985|1|QX|"),
                        families.gaen(bytes(16)))
    assert (entry["decision"], entry["reasons"]) == ("allow", [])


def test_bad_forms_are_refused_with_the_fields_marked(kiosk):
    r = declare(kiosk, name="", year_of_birth="1850", fever="maybe", id_number="12-34")
    assert r.status_code == 400
    assert "Vui lòng kiểm tra" in r.text
    for field in ("name", "year_of_birth", "id_number"):
        assert re.search(rf'id="{field}"[^>]*class="error"', r.text), field


def test_the_lan_listener_serves_the_form_and_nothing_else(kiosk):
    for path in ("/api/v1/entries", "/events", "/api/v1/health"):
        assert requests.get(kiosk.form_url + path, timeout=5).status_code == 404


def test_one_phone_cannot_flood_the_form(kiosk):
    codes = [declare(kiosk).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
