"""The small hooks bench/soak.py drives a kiosk process through: a spool folder for the replay
camera that can vanish, a BLE capture followed as it grows (and a stuck one), a clock stepped
through a file, one log line per door pulse, and a bound on the guard's open streams."""
import json
import logging
import os
import threading

import numpy as np
import pytest
import segno

from kiosk.ble import families
from kiosk.ble.replay import ReplayScanner
from kiosk.camera.replay import SPOOL_FRAMES, ReplayCamera
from kiosk.clock import ManualClock, OffsetFileClock
from kiosk.exc import CameraFault
from kiosk.model import ALLOW, DENY, Decision
from kiosk.signals import DoorSignals, pin_factory

from .conftest import wait_for


def code_png(path, text):
    qr = segno.make(text, error="m", micro=False)
    qr.save(str(path), scale=4, border=6)


def test_a_spooled_code_is_shown_for_a_few_frames_and_removed_once_handled(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    camera = ReplayCamera(ManualClock(), spool, fps=0, spool=True)
    camera.open()
    assert camera.read(0.05) is None                      # nobody at the door
    code_png(spool / "v1.png", "KP1:VISITOR-ONE")
    code_png(spool / "v2.png", "KP1:VISITOR-TWO")
    first = camera.read(0.05)
    assert first is not None and (spool / "v1.png").exists()  # not yet handled by the kiosk
    frames = [first] + [camera.read(0.05) for _ in range(SPOOL_FRAMES - 1)]
    assert all(f is not None for f in frames)
    assert not (spool / "v1.png").exists()                # the kiosk came back: handled
    assert all(np.array_equal(f.image, first.image) for f in frames)
    nxt = camera.read(0.05)
    assert nxt is not None and not np.array_equal(nxt.image, first.image)   # the next visitor


def test_a_spool_folder_that_vanishes_is_a_camera_fault_until_it_is_back(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    camera = ReplayCamera(ManualClock(), spool, fps=0, spool=True)
    camera.open()
    spool.rename(tmp_path / "unplugged")
    with pytest.raises(CameraFault, match="gone"):
        camera.read(0.05)
    with pytest.raises(CameraFault, match="gone"):
        camera.open()
    (tmp_path / "unplugged").rename(spool)
    camera.open()
    assert camera.read(0.05) is None


def line(addr, rssi):
    return json.dumps({"t": 0, "addr": addr, "rssi": rssi, "raw": families.gaen(b"\x01" * 16).hex()}) + "\n"


def test_a_followed_capture_delivers_what_is_written_after_the_start_and_survives_replacement(tmp_path):
    path = tmp_path / "ble.jsonl"
    path.write_text(line("aa:00:00:00:00:01", -60))       # heard before the kiosk started: not replayed
    heard, stop = [], threading.Event()
    scanner = ReplayScanner(ManualClock(), path, follow=True)
    thread = threading.Thread(target=scanner.run, args=(heard.append, stop), daemon=True)
    thread.start()
    try:
        wait_for(lambda: scanner.status() == "ok")
        with open(path, "a") as f:
            f.write(line("aa:00:00:00:00:02", -55))
        assert wait_for(lambda: [a.addr for a in heard] == ["aa:00:00:00:00:02"])
        path.unlink()                                      # the scanner's source is gone
        assert wait_for(lambda: scanner.status().startswith("capture gone"))
        path.write_text(line("aa:00:00:00:00:03", -50))   # back: a new file, read from its start
        assert wait_for(lambda: [a.addr for a in heard][-1:] == ["aa:00:00:00:00:03"])
        assert scanner.status() == "ok"
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_a_fifo_in_place_of_the_capture_hangs_the_scanner_until_released(tmp_path):
    path = tmp_path / "ble.jsonl"
    path.touch()
    heard, stop = [], threading.Event()
    scanner = ReplayScanner(ManualClock(), path, follow=True)
    thread = threading.Thread(target=scanner.run, args=(heard.append, stop), daemon=True)
    thread.start()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    os.replace(fifo, path)                  # the scanner's next open() blocks: a stuck helper
    os.link(path, fifo)
    with open(fifo, "a") as f:              # prove it was stuck: only an opened writer frees it
        pass
    fresh = tmp_path / "fresh"
    fresh.write_text("")
    os.replace(fresh, path)
    with open(path, "a") as f:
        f.write(line("aa:00:00:00:00:04", -50))
    assert wait_for(lambda: [a.addr for a in heard] == ["aa:00:00:00:00:04"])
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def test_the_offset_file_steps_the_clock_of_a_running_kiosk(tmp_path):
    path = tmp_path / "offset"
    clock = OffsetFileClock(path, reread=0)
    assert clock.offset() == 0.0                          # no file: the system clock
    path.write_text("-7200\n")
    assert clock.offset() == -7200.0
    path.write_text("21600")
    assert clock.offset() == 21600.0
    path.write_text("not a number")
    assert clock.offset() == 0.0


def test_each_door_pulse_is_one_log_line_naming_what_opened_it(caplog):
    signals = DoorSignals(pin_factory("mock"), 17, 27, 22, 23, open_seconds=0.05)
    try:
        with caplog.at_level(logging.INFO, logger="kiosk.signals"):
            signals.show(Decision(ALLOW), "entry E1")
            signals.show(Decision(DENY), "entry E2")
            signals.open_door("override allow of entry E3")
        pulses = [r.getMessage() for r in caplog.records if r.name == "kiosk.signals"]
        assert pulses == ["door relay pulse 0.1 s for entry E1",
                          "door relay pulse 0.1 s for override allow of entry E3"]
    finally:
        signals.close()
