"""The guard's phone across its identity changes, and the visitors who still count.

Every scene runs through `kiosk ble analyze` (the door's parser, classifier and tracker) with
the kiosk's default settings. The guard's phone lies by the kiosk from the start of the day,
near enough to count (-64 dBm, +-4 or +-5 dB of noise per packet, 15% of packets lost). It
changes its identity (address and payload together) `d` seconds before a scan, with the
change falling before, inside or after Bluezone's 15 s advertising pause:

| guard's phone         | change falls                  | d (s)    | at the door             | expected      |
|-----------------------|-------------------------------|----------|-------------------------|---------------|
| Bluezone, 15 s on/off | 1 s before the pause          | 2, 5, 10 | a visitor without app   | not_detected  |
| Bluezone, 15 s on/off | 7 s into the pause            | 2, 5, 10 | a visitor without app   | not_detected  |
| Bluezone, 15 s on/off | 1 s after the pause           | 2, 5, 10 | a visitor without app   | not_detected  |
| GAEN, continuous      | the same instants             | 2, 5, 10 | a visitor without app   | not_detected  |
| any of the above      | any of the above              | 2, 5, 10 | a visitor with Bluezone | confirmed     |
| any of the above      | any of the above              | 2, 5, 10 | a visitor with GAEN     | confirmed     |
"""
import json

import pytest
from click.testing import CliRunner

from kiosk.cli import main

from .fixtures.ble_scenes import BLUEZONE_OFF, BLUEZONE_ON, T0, Scene, advertising_phone, approach

GUARD = -64
BURST = 600.0                       # a burst of the guard's phone starts here (20 cycles in)
PAUSE_STARTS = BURST + BLUEZONE_ON  # 615: its pause runs to 630
CHANGE_AT = {"before the pause": PAUSE_STARTS - 1, "inside the pause": PAUSE_STARTS + 7,
             "after the pause": PAUSE_STARTS + BLUEZONE_OFF + 1}


def analyze(tmp_path, scene: Scene, *scan_at: float) -> list[dict]:
    path = tmp_path / "capture.jsonl"
    path.write_text("".join(json.dumps(a.to_json()) + "\n" for a in scene.records))
    args = ["ble", "analyze", str(path)] + [a for t in scan_at for a in ("--scan-at", str(T0 + t))]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def guards_phone(scene, family, change, end, seed, noise=4.0):
    duty = {"on": BLUEZONE_ON, "off": BLUEZONE_OFF} if family == "bluezone-android" else {}
    return advertising_phone(scene, family, 0, end, GUARD, changes=[change], noise=noise,
                             seed=seed, **duty)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("d", [2, 5, 10])
@pytest.mark.parametrize("where", list(CHANGE_AT))
@pytest.mark.parametrize("family", ["bluezone-android", "gaen"])
def test_the_guards_phone_changing_identity_is_not_credited_to_a_visitor_without_the_app(
        tmp_path, family, where, d, seed):
    change = CHANGE_AT[where]
    scan = change + d
    scene = guards_phone(Scene(), family, change, scan + 30, seed, noise=5.0 if seed == 3 else 4.0)
    scene.band(scan - 20, scan + 10)                      # the visitor's fitness band: no app
    row = analyze(tmp_path, scene, scan)[0]
    assert row["outcome"] == "not_detected", row


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("d", [2, 5, 10])
@pytest.mark.parametrize("where", list(CHANGE_AT))
@pytest.mark.parametrize("visitor", ["bluezone-android", "gaen"])
@pytest.mark.parametrize("family", ["bluezone-android", "gaen"])
def test_a_visitor_with_the_app_is_still_confirmed_whenever_the_guards_phone_changes(
        tmp_path, family, where, d, visitor, seed):
    change = CHANGE_AT[where]
    scan = change + d
    scene = guards_phone(Scene(), family, change, scan + 30, seed)
    # The visitor's phone is first heard far off 10 s before the scan and is at the door
    # from 2 s before it; a Bluezone phone is in an advertising burst as it walks up.
    duty = {"on": BLUEZONE_ON, "off": BLUEZONE_OFF} if visitor == "bluezone-android" else {}
    advertising_phone(scene, visitor, scan - 10, scan + 20, approach(scan - 10, scan - 2, near=-56),
                      addr_prefix="4a", seed=seed + 10, **duty)
    row = analyze(tmp_path, scene, scan)[0]
    assert row["outcome"] == "confirmed", row


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_phone_that_takes_a_new_address_at_every_burst_keeps_its_lineage(tmp_path, seed):
    # An Android advertiser restarted for each burst may come back with a fresh random
    # address while the payload (the Bluezone ID) is the same.
    scene = advertising_phone(Scene(), "bluezone-android", 0, 700, GUARD, on=BLUEZONE_ON,
                              off=BLUEZONE_OFF, new_addr_each_burst=True, seed=seed)
    scans = [602, 605, 610, 631, 633, 640, 662]
    rows = analyze(tmp_path, scene, *scans)
    assert [r["outcome"] for r in rows] == ["not_detected"] * len(scans), rows
    assert rows[-1]["lineage"]["identities"][-1]["joined_by"] == ["same_id"]


@pytest.mark.parametrize("into_pause", [5, 9])
def test_a_visitor_standing_at_the_guards_level_early_in_its_pause_is_not_taken_for_it(tmp_path, into_pause):
    # The guard's phone neither runs its burst 5 s longer than it ever does nor resumes 9 s
    # into a 15 s pause: a phone first heard then, at the same level, is someone else.
    scene = advertising_phone(Scene(), "bluezone-android", 0, 700, GUARD, on=BLUEZONE_ON,
                              off=BLUEZONE_OFF, changes=[PAUSE_STARTS + 7], seed=4)
    advertising_phone(scene, "bluezone-android", PAUSE_STARTS + into_pause, 700, GUARD - 1,
                      addr_prefix="4a", seed=5)
    rows = analyze(tmp_path, scene, PAUSE_STARTS + 12, PAUSE_STARTS + 20)
    assert [r["outcome"] for r in rows] == ["confirmed", "confirmed"], rows
    assert rows[0]["lineage"]["identities"][0]["addr"].startswith("4a")


def test_a_phone_sending_four_times_as_often_is_not_the_guards_phone(tmp_path):
    # Same family, same level, first heard just as the guard's phone resumes after its pause,
    # but advertising every 250 ms where the guard's sends every second: another phone.
    scene = advertising_phone(Scene(), "bluezone-android", 0, 700, GUARD, on=BLUEZONE_ON,
                              off=BLUEZONE_OFF, changes=[PAUSE_STARTS + 7], seed=6, loss=0.0)
    advertising_phone(scene, "bluezone-android", PAUSE_STARTS + 14.5, 700, GUARD, every=0.25,
                      addr_prefix="4a", seed=7, loss=0.0)
    row = analyze(tmp_path, scene, PAUSE_STARTS + 20)[0]
    assert row["outcome"] == "confirmed", row
    assert row["lineage"]["identities"][0]["addr"].startswith("4a")
    assert len(row["lineage"]["identities"]) == 1


def test_a_visitor_taken_for_the_guards_phone_gets_its_own_lineage_when_the_guards_phone_resumes(tmp_path):
    # A visitor's phone first heard 1 s after the guard's phone went into its pause, at the
    # same level, looks like the guard's next identity. When the guard's phone is heard again
    # after its pause, the two are two phones: the visitor's lineage starts at its own arrival.
    scene = advertising_phone(Scene(), "bluezone-android", 0, 700, GUARD, on=BLUEZONE_ON,
                              off=BLUEZONE_OFF, seed=8, loss=0.0)
    advertising_phone(scene, "bluezone-android", PAUSE_STARTS + 1, 700, GUARD,
                      addr_prefix="4a", seed=9, loss=0.0)
    during, after = analyze(tmp_path, scene, PAUSE_STARTS + 10, PAUSE_STARTS + BLUEZONE_OFF + 3)
    assert during["lineage"]["identities"][-1]["addr"].startswith("4a")      # the known limit
    assert after["outcome"] == "confirmed", after
    assert after["lineage"]["why"].startswith("arrived")
    assert [i["addr"][:2] for i in after["lineage"]["identities"]] == ["4a"]


def test_analyze_shows_the_lineage_it_used(tmp_path):
    change = CHANGE_AT["inside the pause"]
    scene = guards_phone(Scene(), "bluezone-android", change, change + 40, seed=1)
    before, after = analyze(tmp_path, scene, change - 10, change + 10)
    assert set(before) >= {"at", "outcome", "family", "rssi", "lineage"}
    for row in (before, after):
        lineage = row["lineage"]
        assert row["outcome"] == "not_detected" and lineage["counted"] is False
        assert lineage["first_seen"] == pytest.approx(T0, abs=1.5)
        assert "near for" in lineage["why"]
    assert len(before["lineage"]["identities"]) == 1
    old, new = after["lineage"]["identities"]
    assert old["addr"] != new["addr"] and old["id"] != new["id"]
    assert {"family", "level", "cycle"} <= set(new["joined_by"])
    assert abs(new["level_db"]) <= 8 and BLUEZONE_OFF - 3 <= new["gap_s"] <= BLUEZONE_OFF + 3
    assert after["lineage"]["id"] == before["lineage"]["id"]


def test_analyze_shows_the_visitors_new_lineage_and_nothing_when_nothing_is_near(tmp_path):
    scene = advertising_phone(Scene(), "gaen", 100, 130, approach(100, 110), addr_prefix="4a", seed=2)
    far, near = analyze(tmp_path, scene, 95, 112)
    assert far["lineage"] is None
    lineage = near["lineage"]
    assert (near["outcome"], lineage["counted"]) == ("confirmed", True)
    assert lineage["why"].startswith("arrived") and len(lineage["identities"]) == 1
    assert lineage["identities"][0]["joined_by"] == []
