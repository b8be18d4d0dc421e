"""Scenes at the door, run through `kiosk ble analyze` (the door's parser, classifier and
tracker), with the kiosk's default settings."""
import json

from click.testing import CliRunner

from kiosk.ble import families
from kiosk.cli import main

from .fixtures.ble_scenes import T0, Scene, approach


def analyze(tmp_path, scene: Scene, *scan_at: float) -> list[dict]:
    path = tmp_path / "capture.jsonl"
    path.write_text("".join(json.dumps(a.to_json()) + "\n" for a in scene.records))
    args = ["ble", "analyze", str(path)] + [a for t in scan_at for a in ("--scan-at", str(T0 + t))]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def outcomes(rows):
    return [r["outcome"] for r in rows]


def test_a_visitor_walking_up_with_bluezone(tmp_path):
    scene = Scene().phone("bluezone-android", 100, 130, approach(100, 110))
    rows = analyze(tmp_path, scene, 95, 112)
    assert outcomes(rows) == ["not_detected", "confirmed"]
    assert rows[1]["family"] == "bluezone" and -62 <= rows[1]["rssi"] <= -54
    assert rows[1]["at"] == T0 + 112


def test_the_guards_phone_by_the_door_for_an_hour_is_credited_to_no_one(tmp_path):
    # Near enough to count (-66 dBm), rotating address and id every 15 minutes.
    scene = Scene().phone("bluezone-android", 0, 3600, -66, addr_prefix="6e")
    scans = [60, 900 + 5, 1800 + 20, 2700 + 60, 3500]        # including just after rotations
    assert outcomes(analyze(tmp_path, scene, *scans)) == ["confirmed"] + ["not_detected"] * 4
    # ...while a visitor who walks up in the middle of it is confirmed.
    scene.phone("gaen", 1795, 1830, approach(1795, 1805))
    rows = analyze(tmp_path, scene, 1806)
    assert (rows[0]["outcome"], rows[0]["family"]) == ("confirmed", "gaen")


def test_a_passer_by_far_away_does_not_count(tmp_path):
    scene = Scene().phone("gaen", 0, 60, -88).band(0, 60)
    assert outcomes(analyze(tmp_path, scene, 30)) == ["not_detected"]


def test_two_visitors_at_once(tmp_path):
    scene = Scene().phone("bluezone-android", 10, 60, approach(10, 20)).phone("gaen", 12, 60, approach(12, 21),
                                                                               addr_prefix="4c")
    rows = analyze(tmp_path, scene, 22)
    assert rows[0]["outcome"] == "confirmed"


def test_an_iphone_in_the_background_is_only_likely(tmp_path):
    scene = Scene().phone("ios-background", 0, 40, approach(0, 8))
    rows = analyze(tmp_path, scene, 10)
    assert (rows[0]["outcome"], rows[0]["family"]) == ("likely", "bluezone")


def test_an_iphone_in_the_foreground_is_confirmed(tmp_path):
    scene = Scene().phone("bluezone-ios", 0, 40, approach(0, 8))
    assert outcomes(analyze(tmp_path, scene, 10)) == ["confirmed"]


def test_a_visitor_with_no_app(tmp_path):
    scene = Scene().phone("bluezone-android", 0, 600, -86, addr_prefix="6e").band(0, 600)
    assert outcomes(analyze(tmp_path, scene, 300)) == ["not_detected"]


def test_someone_who_waited_in_the_lobby_and_then_came_to_the_door(tmp_path):
    # Heard far off for ten minutes (too long ago to be an arrival), then rises by 28 dB.
    scene = Scene().phone("gaen", 0, 620, lambda t: -86 if t < 600 else -58)
    assert outcomes(analyze(tmp_path, scene, 590, 605)) == ["not_detected", "confirmed"]


def test_a_phone_that_left_and_came_back_is_a_new_arrival(tmp_path):
    raw = families.bluezone_android(bytes(12))
    scene = Scene()
    scene.hear("aa:00:00:00:00:01", raw, 0, 20, -60).hear("aa:00:00:00:00:01", raw, 400, 420, -60)
    assert outcomes(analyze(tmp_path, scene, 10, 300, 410)) == ["confirmed", "not_detected", "confirmed"]


def test_summary_lists_families_and_identities(tmp_path):
    scene = Scene().phone("bluezone-android", 0, 1800, -70).phone("ios-background", 0, 10, -60).band(0, 10)
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(a.to_json()) + "\n" for a in scene.records))
    result = CliRunner().invoke(main, ["ble", "analyze", str(path), "--summary"])
    summary = json.loads(result.output.splitlines()[0])
    assert summary["families"]["bluezone"]["identities"] == 3      # two Android identities + the iPhone
    assert summary["families"]["bluezone"]["weak"] == 20
    assert summary["not_app"] == 10


def test_analyze_needs_a_question(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("")
    result = CliRunner().invoke(main, ["ble", "analyze", str(path)])
    assert result.exit_code == 2 and "--scan-at" in result.output


def test_a_capture_with_a_broken_line_is_read_around_it(tmp_path, caplog):
    scene = Scene().phone("gaen", 0, 20, -60)
    path = tmp_path / "c.jsonl"
    lines = [json.dumps(a.to_json()) for a in scene.records]
    lines.insert(3, '{"t": 1, "addr": "x"')               # a power cut while recording
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["ble", "analyze", str(path), "--scan-at", str(T0 + 10)])
    assert json.loads(result.output)["outcome"] == "confirmed"


def test_record_writes_what_the_scanner_hears_and_calibrate_shows_it(tmp_path):
    # The replay backend stands in for bluepy: the same commands run on a Pi with ble.backend=bluepy.
    scene = Scene().phone("gaen", 0, 10, approach(0, 4)).band(0, 10)
    source = tmp_path / "door.jsonl"
    source.write_text("".join(json.dumps(a.to_json()) + "\n" for a in scene.records))
    env = {"KIOSK_BLE_BACKEND": "replay", "KIOSK_BLE_REPLAY_PATH": str(source), "KIOSK_BLE_REPLAY_SPEED": "20"}
    out = tmp_path / "recorded.jsonl"
    result = CliRunner().invoke(main, ["ble", "record", "--out", str(out), "--seconds", "1.5"], env=env)
    assert result.exit_code == 0, result.output
    recorded = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["addr"], r["rssi"], r["raw"]) for r in recorded] == \
           [(a.addr, a.rssi, a.raw.hex()) for a in sorted(scene.records, key=lambda a: a.t)]
    assert set(recorded[0]) == {"t", "addr", "addr_type", "rssi", "raw"}

    env["KIOSK_BLE_REPLAY_SPEED"] = "2"
    result = CliRunner().invoke(main, ["ble", "calibrate", "--seconds", "3"], env=env)
    assert result.exit_code == 0, result.output
    assert "threshold -75 dBm" in result.output and "gaen" in result.output and "NEAR" in result.output
