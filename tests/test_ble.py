"""Advertising data, app families and presence at the door: pure, time passed in.

Every byte string is built by kiosk.ble.families from the published formats (Bluezone's
source, Exposure Notification Bluetooth Specification v1.2); see that module.
"""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk import demo
from kiosk.ble import advertising as adv
from kiosk.ble import families
from kiosk.ble.presence import HISTORY, PresenceTracker
from kiosk.model import Advertisement

T0 = 1_795_000_000.0


def test_parse_bluezone_android():
    ad = adv.parse(families.bluezone_android(bytes(range(12))))
    assert ad.uuid16 == [0x4E56]
    assert ad.manufacturer == [(0x22B5, bytes(range(12)))]
    assert ad.flags == 0x06 and not ad.malformed


def test_parse_stops_at_a_bad_length_without_raising():
    ad = adv.parse(b"\x02\x01\x06\x09\xff\xb5\x22")    # second structure claims 9 bytes, has 3
    assert ad.flags == 0x06 and ad.malformed and ad.manufacturer == []


@given(st.binary(max_size=62))
def test_any_bytes_parse_without_exceptions(raw):
    families.classify(adv.parse(raw))


@pytest.mark.parametrize("raw, family, strength", [
    (families.bluezone_android(b"\x01" * 12), "bluezone", "strong"),
    (families.bluezone_ios_foreground(), "bluezone", "strong"),
    (families.ios_background_overflow(), "bluezone", "weak"),
    (families.gaen(b"\x02" * 16), "gaen", "strong"),
    (families.gaen(b"\x02" * 16, flags=True), "gaen", "strong"),
])
def test_families(raw, family, strength):
    matches = families.classify(adv.parse(raw))
    assert [(m.family, m.strength) for m in matches] == [(family, strength)]


def test_not_an_app():
    assert families.classify(adv.parse(families.unrelated_device())) == []
    assert families.classify(adv.parse(families.ios_background_overflow(0x01))) == []
    # GAEN service data must be 16-byte RPI + 4-byte metadata
    short = adv.build((adv.SERVICE_DATA16, b"\x6f\xfd" + bytes(10)))
    assert families.classify(adv.parse(short)) == []


def _hear(tracker, addr, raw, rssi_by_second):
    for second, rssi in rssi_by_second:
        tracker.record(Advertisement(addr, rssi, T0 + second, raw))


def test_a_visitor_approaching_is_confirmed():
    tracker = PresenceTracker(window=30, rssi_near=-75)
    _hear(tracker, "aa:00:00:00:00:01", families.bluezone_android(b"\x01" * 12),
          [(0, -90), (1, -82), (2, -70), (3, -60), (4, -58)])
    p = tracker.at(T0 + 4)
    assert (p.outcome, p.family, p.count_near) == ("confirmed", "bluezone", 1)
    assert -64 <= p.rssi <= -58          # mean of the last 2 s: -70, -60, -58


def test_a_phone_far_away_or_walked_off_does_not_count():
    tracker = PresenceTracker(window=30, rssi_near=-75)
    _hear(tracker, "aa:00:00:00:00:02", families.bluezone_android(b"\x02" * 12),
          [(s, -86) for s in range(20)])                           # guard's phone at the desk
    _hear(tracker, "aa:00:00:00:00:03", families.gaen(b"\x03" * 16),
          [(0, -58), (1, -58), (2, -60), (3, -74), (4, -88), (5, -95)])  # previous visitor leaving
    assert tracker.at(T0 + 8).outcome == "not_detected"


def test_the_overflow_bit_alone_is_only_likely():
    tracker = PresenceTracker(window=30, rssi_near=-75)
    _hear(tracker, "aa:00:00:00:00:04", families.ios_background_overflow(), [(0, -60), (1, -61)])
    assert tracker.at(T0 + 1).outcome == "likely"


def test_other_apps_do_not_count_unless_required():
    herald = adv.build((adv.UUID16_COMPLETE, (0xFCF6).to_bytes(2, "little")))
    tracker = PresenceTracker(window=30, rssi_near=-75)
    _hear(tracker, "aa:00:00:00:00:05", herald, [(0, -55)])
    assert tracker.at(T0).outcome == "not_detected"
    tracker = PresenceTracker(required=("herald",), window=30, rssi_near=-75)
    _hear(tracker, "aa:00:00:00:00:05", herald, [(0, -55)])
    assert tracker.at(T0).outcome == "confirmed"


def test_memory_stays_bounded_with_rotating_addresses():
    tracker = PresenceTracker(window=30, rssi_near=-75)
    for i in range(5000):       # a new random address every second, for over an hour
        tracker.record(Advertisement(f"r{i}", -80, T0 + i, families.gaen(i.to_bytes(16, "big"))))
    assert len(tracker) <= HISTORY + 2      # forgotten after HISTORY seconds unheard


def test_the_bundled_demo_capture_is_built_from_the_scene():
    bundled = [json.loads(line) for line in demo.CAPTURE.read_text().splitlines()]
    assert bundled == [a.to_json() for a in demo.build_capture()]


def test_the_demo_scene_has_the_app_where_it_should():
    tracker = PresenceTracker(window=30, rssi_near=-75)
    for advert in demo.build_capture():
        tracker.record(advert)
    outcomes = [tracker.at(demo.CAPTURE_START + v.start).outcome for v in demo.SCENE]
    assert outcomes == ["confirmed", "confirmed", "not_detected", "confirmed", "not_detected", "confirmed"]
