"""The kiosk's behaviour at its hardware boundaries: a camera that disappears, a BLE helper
that dies, as the replay backends and a bluepy-shaped fake let us see here."""
import threading

import cv2

from kiosk.ble import families
from kiosk.ble.bluepy_backend import BluepyScanner
from kiosk.clock import ManualClock
from kiosk.demo.scene import visitor_frame

from .conftest import wait_for


def test_a_camera_that_is_not_there_is_reported_and_picked_up_when_it_comes(make_kiosk, tmp_path):
    folder = tmp_path / "frames"
    kiosk = make_kiosk(camera__replay_path=str(folder), camera__replay_fps=20.0, camera__replay_loop=True)
    wait_for(lambda: kiosk.health()["camera"].startswith("offline"))
    assert "does not exist" in kiosk.health()["camera"]
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), visitor_frame("https://example.org/poster"))
    wait_for(lambda: kiosk.health()["camera"] == "ok", timeout=15)
    entry = wait_for(lambda: kiosk.log.recent(1), timeout=5)[0]
    assert entry["reasons"][0] == "unknown_code"


class FakeEntry:
    """What bluepy's ScanEntry carries into handleDiscovery."""

    def __init__(self, addr, rssi, raw):
        self.addr, self.rssi, self.rawData, self.addrType = addr, rssi, raw, "random"


class FakeScanner:
    """Behaves as bluepy.btle.Scanner does: withDelegate returns self, start(passive=...),
    process(timeout) calls delegate.handleDiscovery, stop() ends the helper."""
    script: list = []
    started = 0

    def __init__(self, iface=0):
        self.delegate = None

    def withDelegate(self, delegate):
        self.delegate = delegate
        return self

    def start(self, passive=False):
        assert passive, "the kiosk only listens"
        FakeScanner.started += 1
        step = FakeScanner.script.pop(0) if FakeScanner.script else "idle"
        if isinstance(step, Exception):
            raise step
        self.step = step

    def process(self, timeout=10.0):
        if self.step == "idle":
            threading.Event().wait(0.01)
            return
        if isinstance(self.step, Exception):
            raise self.step
        entry = FakeEntry("aa:bb:cc:dd:ee:ff", -60, families.gaen(b"\x05" * 16))
        self.delegate.handleDiscovery(entry, True, True)
        self.step = BrokenPipeError("bluepy-helper died")

    def clear(self):
        pass

    def stop(self):
        pass


def test_bluepy_backend_delivers_reports_restarts_the_helper_and_names_the_fix():
    FakeScanner.script = [PermissionError("Failed to execute management command 'le on' (Permission denied)"),
                          "advertise", "idle"]
    FakeScanner.started = 0
    scanner = BluepyScanner(ManualClock(), scanner_factory=FakeScanner)
    heard, stop = [], threading.Event()
    statuses = []
    thread = threading.Thread(target=scanner.run, args=(heard.append, stop), daemon=True)
    thread.start()
    wait_for(lambda: statuses.append(scanner.status()) or "setcap" in " ".join(statuses))
    wait_for(lambda: heard and FakeScanner.started >= 3, timeout=10)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert heard[0].raw == families.gaen(b"\x05" * 16) and heard[0].rssi == -60
