"""Visitors at the door, from the camera to the central server.

A kiosk built from settings (replay camera and BLE driven by the test, gpiozero mock pins,
a manual clock) syncs to a real central server on 127.0.0.1.
"""
from __future__ import annotations

import json
import math
import re
import threading

import requests

from kiosk import syncproto
from kiosk.ble import families
from kiosk.declarations import sitepass
from kiosk.demo.scene import visitor_frame

from .conftest import KIOSK_TOKEN, OPERATOR_TOKEN, SITE, wait_for

EMPTY_DOORWAY = visitor_frame(None)


class Door:
    """What happens in front of the kiosk: phones advertise, codes are held up."""

    def __init__(self, kiosk):
        self.kiosk = kiosk
        self.relay = kiosk.signals.factory.pin(kiosk.settings["door.relay_pin"])

    def visitor(self, code: str, phone: bytes | None = None, addr: str = "5d:3a:10:22:8f:01",
                rssi: int = -58, frames: int = 4):
        self.relay.clear_states()
        if phone is not None:
            self.kiosk.scanner.advertise(addr, rssi, phone, times=4)
            assert self.kiosk.scanner.wait_idle()
        before = len(self.kiosk.log.recent(100))
        # Held up for several frames: one presentation, one entry.
        self.kiosk.camera.show(visitor_frame(code), frames=frames)
        self.kiosk.camera.show(EMPTY_DOORWAY)
        assert self.kiosk.camera.wait_idle()
        entries = self.kiosk.log.recent(100)
        assert len(entries) == before + 1, "one presentation must make exactly one entry"
        return entries[0]


def relay_pulses(pin) -> list[float]:
    """Durations (s) of each energised period recorded on a mock pin."""
    states = list(pin.states)
    return [states[i + 1].timestamp for i in range(len(states) - 1)
            if states[i].state and not states[i + 1].state]


def test_a_morning_at_the_gate(make_kiosk, central, site_key, clock):
    kiosk = make_kiosk(sync__url=central.url)
    door = Door(kiosk)
    key = sitepass.load_private_key(site_key)
    now = clock.now()
    an_pass = sitepass.issue(key, SITE, "Nguyễn Văn An", now, 86400)
    binh_pass = sitepass.issue(key, SITE, "Trần Thị Bình", now, 86400)
    forged = sitepass.issue(sitepass.new_key(), SITE, "Phạm Quốc Dũng", now, 86400,
                            kid=sitepass.cose.key_id(key.public_key()))

    # The guard screen listens for live events before anyone arrives.
    events, stream_open = [], threading.Event()

    def listen():
        with requests.get(kiosk.web_url + "/events", stream=True, timeout=30) as r:
            stream_open.set()
            kind = None
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "entry":
                    events.append(json.loads(line[6:]))
                    if len(events) == 5:
                        return
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert stream_open.wait(5)
    wait_for(lambda: len(kiosk.bus._subscribers) == 1)

    # 1. An arrives with Bluezone running and a valid pass, holds it up for a while.
    e1 = door.visitor(an_pass, families.bluezone_android(bytes(range(12))))
    assert (e1["decision"], e1["reasons"]) == ("allow", [])
    assert e1["declaration"]["holder"] == "Nguyễn Văn An"
    assert e1["ble"]["outcome"] == "confirmed" and e1["ble"]["family"] == "bluezone"
    wait_for(lambda: len(relay_pulses(door.relay)) == 1, timeout=3)
    assert [s.state for s in door.relay.states] == [False, True, False]
    assert math.isclose(relay_pulses(door.relay)[0], 0.3, abs_tol=0.1)

    # 2. Bình has a valid pass but no app heard: a guard decides.
    clock.advance(60)
    e2 = door.visitor(binh_pass)
    assert (e2["decision"], e2["reasons"]) == ("review", ["app_not_detected"])

    # 3. A forged pass (signed by someone else, claiming the site's key id), phone with GAEN.
    clock.advance(60)
    e3 = door.visitor(forged, families.gaen(bytes(16)), addr="4c:91:e2:07:b3:5a")
    assert (e3["decision"], e3["reasons"]) == ("deny", ["bad_signature"])
    assert e3["declaration"]["holder"] is None, "an unverified name is not shown as the holder's"
    assert e3["ble"]["outcome"] == "confirmed" and e3["ble"]["family"] == "gaen"

    # 4. Someone shows a restaurant menu QR.
    clock.advance(60)
    e4 = door.visitor("https://menu.example/pho-bo")
    assert (e4["decision"], e4["reasons"]) == ("deny", ["unknown_code", "app_not_detected"])

    # 5. An's pass again, four minutes later (a screenshot passed down the queue).
    clock.advance(60)
    e5 = door.visitor(an_pass, families.bluezone_android(bytes(range(12))))
    assert (e5["decision"], e5["reasons"]) == ("review", ["shown_again:240s"])

    # No door opened for anyone but An: the relay never left its resting state since.
    assert relay_pulses(door.relay) == [] and not door.relay.state

    # The guard's screen got every decision live, in order.
    listener.join(5)
    assert [e["decision"] for e in events] == ["allow", "review", "deny", "deny", "review"]
    assert events[0]["holder"] == "Nguyễn Văn An"

    # The guard page shows them too.
    page = requests.get(kiosk.web_url + "/", timeout=5).text
    assert "Nguyễn Văn An" in page and "Trần Thị Bình" in page
    assert "Phạm Quốc Dũng" not in page
    recent = re.findall(r'<li class="(\w+)" data-id="(\w+)"><time>[^<]*</time> <b>([^<]*)</b>', page)
    assert [(decision, word) for decision, _, word in recent] == [
        ("review", "CHỜ KIỂM TRA"), ("deny", "TỪ CHỐI"), ("deny", "TỪ CHỐI"),
        ("review", "CHỜ KIỂM TRA"), ("allow", "MỜI VÀO")]
    assert re.search(r'<main id="decision" class="decision review"', page)

    # The operator API lists them, for a token only.
    api = kiosk.web_url + "/api/v1/entries"
    assert requests.get(api, timeout=5).status_code == 401
    assert requests.get(api, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    listed = requests.get(api, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=5).json()
    ids = [e["id"] for e in (e1, e2, e3, e4, e5)]
    assert [e["id"] for e in listed["entries"]] == ids
    assert all("payload" not in e for e in listed["entries"])

    # The central server holds exactly those entries, once each.
    wait_for(lambda: kiosk.log.backlog() == 0)
    at_central = requests.get(central.url + "/api/v1/entries",
                              headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=5).json()
    assert [e["id"] for e in at_central["entries"]] == ids
    assert [e["decision"] for e in at_central["entries"]] == ["allow", "review", "deny", "deny", "review"]

    # Delivering the same batch again stores nothing twice.
    body, headers = syncproto.signed_request(KIOSK_TOKEN, {"kiosk": "gate-1", "entries": listed["entries"]})
    again = requests.post(central.url + "/api/v1/ingest", data=body, headers=headers, timeout=5).json()
    assert again == {"stored": [], "duplicate": ids}


def test_the_same_pass_held_up_is_one_scan_and_shown_again_later_is_another(make_kiosk, site_key, clock):
    kiosk = make_kiosk(decoder__cooldown=2.0)
    code = sitepass.issue(sitepass.load_private_key(site_key), SITE, "Lê Văn Cường", clock.now(), 3600)
    image = visitor_frame(code)
    for _ in range(5):                  # five seconds in front of the camera, a frame a second
        kiosk.camera.show(image)
        assert kiosk.camera.wait_idle()
        clock.advance(1.0)
    assert len(kiosk.log.recent()) == 1
    clock.advance(3.0)                  # out of view longer than the cooldown
    kiosk.camera.show(image)
    assert kiosk.camera.wait_idle()
    entries = kiosk.log.recent()
    assert len(entries) == 2
    assert entries[0]["reasons"][-1] == "shown_again:8s"


def test_the_kiosk_stops_promptly_with_a_guard_screen_attached(make_kiosk):
    import time

    kiosk = make_kiosk()
    opened = threading.Event()

    def screen():
        try:
            with requests.get(kiosk.web_url + "/events", stream=True, timeout=30) as r:
                opened.set()
                for _ in r.iter_lines():
                    pass
        except requests.RequestException:
            pass                            # the kiosk went away: what a screen sees on shutdown
    threading.Thread(target=screen, daemon=True).start()
    assert opened.wait(5)
    wait_for(lambda: len(kiosk.bus._subscribers) == 1)
    start = time.monotonic()
    kiosk.stop()
    assert time.monotonic() - start < 3.0
    assert not any(t.is_alive() for t in kiosk._threads)


def test_at_an_exit_kiosk_the_same_pass_is_the_visitor_leaving(make_kiosk, site_key, clock):
    kiosk = make_kiosk(kiosk__direction="out")
    door = Door(kiosk)
    code = sitepass.issue(sitepass.load_private_key(site_key), SITE, "Lê Văn Cường", clock.now(), 3600)
    phone = families.bluezone_android(bytes(12))
    first = door.visitor(code, phone)
    clock.advance(120)
    again = door.visitor(code, phone)
    assert (first["direction"], again["direction"]) == ("out", "out")
    assert again["decision"] == "allow" and not any(r.startswith("shown_again") for r in again["reasons"])
