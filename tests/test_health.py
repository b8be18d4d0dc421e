"""Health has a type: each part's state (ok / degraded / down) with a declared cause and a
technical detail, read by the guard screen, the operator API and `kiosk doctor` alike."""
from __future__ import annotations

import jsonschema
import pytest
import requests

from kiosk.clock import ManualClock
from kiosk.health import CAUSES, PARTS, Health, State, disk_health, trust_list_health
from kiosk.web.guard import health_view
from kiosk.web.i18n import catalogue
from kiosk.web.openapi import SPEC

from .conftest import OPERATOR_TOKEN


def test_a_cause_must_be_declared():
    with pytest.raises(ValueError, match="undeclared health cause"):
        Health("camera", State.DOWN, "camera_on_fire")
    with pytest.raises(ValueError, match="unknown part"):
        Health("toaster")


def test_the_trust_list_state_has_one_rendering():
    none, old, fresh = (trust_list_health("none", None, 0), trust_list_health("old", 40.2, 3),
                        trust_list_health("ok", 0.5, 3))
    assert (none.state, none.cause) == (State.DOWN, "trust_none")
    assert (old.state, old.cause, old.figures["days"]) == (State.DEGRADED, "trust_old", 40)
    assert fresh.ok and fresh.figures == {"signers": 3, "days": 0.5}
    assert old.detail == "out of date: 40 days old"          # the journal's and the API's text


def test_free_disk_is_counted_in_gigabytes_and_low_below_200_mb():
    assert disk_health(12 * 2**30).figures == {"mb": 12 * 1024, "gb": 12.0}
    low = disk_health(150 * 2**20)
    assert (low.state, low.cause) == (State.DEGRADED, "disk_low")


def test_every_part_is_reported_typed_and_the_api_document_validates(make_kiosk):
    kiosk = make_kiosk()
    parts = kiosk.parts()
    assert tuple(parts) == PARTS
    assert all(isinstance(h, Health) and (h.cause is None or h.cause in CAUSES) for h in parts.values())
    # no DCC trust list in the test kiosk: DCCs cannot be verified, and the screen says why in words
    assert (parts["trust_list"].state, parts["trust_list"].cause) == (State.DOWN, "trust_none")
    strip = {item["key"]: item for item in health_view(kiosk, catalogue("vi"))}
    assert strip["trust_list"]["ok"] is False
    assert strip["trust_list"]["text"] == catalogue("vi")["cause_trust_none"]
    body = requests.get(kiosk.web_url + "/api/v1/health", timeout=10,
                        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}).json()
    jsonschema.validate(body, {**SPEC, "$ref": "#/components/schemas/Health"})
    assert body["parts"]["trust_list"] == {"state": "down", "cause": "trust_none",
                                           "detail": "none: DCCs cannot be verified (kiosk trust update)",
                                           "figures": {}}
    assert body["trust_list"] == body["parts"]["trust_list"]["detail"]   # the older one-line field


def test_an_unsynchronised_clock_is_a_degraded_part(kiosk_settings):
    from kiosk.checkpoint import Kiosk

    # NTP says it has not synchronised the clock (as timedatectl would after a cold boot)
    kiosk = Kiosk(kiosk_settings(), clock=ManualClock(synchronised=False))
    try:
        kiosk.clock_watch.check()
        assert kiosk.clock_state() == "unsynced"
        clock = kiosk.parts()["clock"]
        assert (clock.state, clock.cause) == (State.DEGRADED, "clock_unsynced")
    finally:
        kiosk.stop()


def test_the_demo_ships_a_fresh_trust_list_of_its_own_signer(tmp_path):
    from kiosk.checkpoint import Kiosk
    from kiosk.demo.run import prepare
    from kiosk.testing import free_port

    settings, _ = prepare(tmp_path / "demo", free_port(), free_port(), free_port())
    kiosk = Kiosk(settings)
    try:
        trust = kiosk.parts()["trust_list"]
        assert trust.ok and trust.figures["signers"] == 1
    finally:
        kiosk.stop()


def test_health_lines_are_written_for_a_guard_in_each_language():
    from zoneinfo import ZoneInfo

    from kiosk.web.guard import health_lines

    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    parts = {"disk": disk_health(int(12.4 * 2**30)),
             "log": Health("log", State.DOWN, "log_unavailable", "[Errno 28] No space left on device: '/var/lib'",
                           {"held": 0, "not_logged": 2}),
             "camera": Health("camera", State.DOWN, "camera_offline", "/dev/video0 does not exist")}
    vi = {line["key"]: line for line in health_lines(parts, catalogue("vi"), tz)}
    en = {line["key"]: line for line in health_lines(parts, catalogue("en"), tz)}
    assert (vi["disk"]["label"], vi["disk"]["text"], en["disk"]["text"]) == ("Ổ nhớ trống", "12,4 GB", "12.4 GB")
    assert vi["log"]["text"] == "không ghi được · 2 lượt chưa ghi được" and vi["log"]["state"] == "down"
    assert vi["camera"]["text"] == "không hoạt động"            # the device path stays in the journal
