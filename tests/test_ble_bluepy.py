"""The bluepy backend's control flow, against a fake that behaves as bluepy.btle.Scanner
does (bluepy 1.3.0, btle.py): withDelegate() returns the scanner; start(passive) starts
bluepy-helper and sends 'le on' (raising BTLEManagementError when that fails); process()
calls delegate.handleDiscovery(ScanEntry, isNewDev, isNewData) and keeps every address in
`scanned` until clear(); a dead helper surfaces as BrokenPipeError / BTLEDisconnectError."""
import threading

import pytest

from kiosk.ble import families
from kiosk.ble.bluepy_backend import BluepyScanner, explain
from kiosk.clock import ManualClock

from .conftest import wait_for


class FakeEntry:
    """The fields of bluepy's ScanEntry that the kiosk reads."""

    def __init__(self, addr, rssi, raw):
        self.addr, self.rssi, self.rawData, self.addrType = addr, rssi, raw, "random"


class FakeScanner:
    plan: list = []            # what each start() does: an exception, "advertise" or "silent"
    started = 0
    largest_scanned = 0

    def __init__(self, iface=0):
        self.delegate = None
        self.scanned = {}
        self.step = "silent"
        self.sent = 0

    def withDelegate(self, delegate):
        self.delegate = delegate
        return self

    def start(self, passive=False):
        assert passive, "the kiosk only listens: passive scanning"
        FakeScanner.started += 1
        step = FakeScanner.plan.pop(0) if FakeScanner.plan else "silent"
        if isinstance(step, Exception):
            raise step
        self.step = step

    def process(self, timeout=10.0):
        FakeScanner.largest_scanned = max(FakeScanner.largest_scanned, len(self.scanned))
        if self.step == "silent":
            threading.Event().wait(0.02)
            return
        for i in range(20):      # 20 phones with fresh random addresses
            self.sent += 1
            entry = FakeEntry(f"7a:00:00:00:{self.sent // 256:02x}:{self.sent % 256:02x}", -60 - i % 5,
                              families.gaen(self.sent.to_bytes(16, "big")))
            self.scanned[entry.addr] = entry
            self.delegate.handleDiscovery(entry, True, True)
        if self.sent >= 100:
            raise BrokenPipeError("[Errno 32] Broken pipe")   # the helper died mid-scan

    def clear(self):
        self.scanned = {}

    def stop(self):
        pass


def run_scanner(scanner):
    heard, stop = [], threading.Event()
    thread = threading.Thread(target=scanner.run, args=(heard.append, stop), daemon=True)
    thread.start()
    return heard, stop, thread


@pytest.fixture(autouse=True)
def fresh_fake():
    FakeScanner.plan, FakeScanner.started, FakeScanner.largest_scanned = [], 0, 0


def test_reports_are_delivered_raw_and_a_dead_helper_is_restarted():
    FakeScanner.plan = ["advertise", "advertise"]
    scanner = BluepyScanner(ManualClock(), scanner_factory=FakeScanner)
    heard, stop, thread = run_scanner(scanner)
    wait_for(lambda: len(heard) >= 200, timeout=10)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert FakeScanner.started >= 2
    assert heard[0].raw == families.gaen((1).to_bytes(16, "big")) and heard[0].rssi == -60
    assert FakeScanner.largest_scanned <= 20, "rotating addresses must not pile up in Scanner.scanned"


def test_permission_denied_names_the_fix_and_it_keeps_trying():
    btle = pytest.importorskip("bluepy.btle", reason="bluepy comes with the 'pi' extra (make test installs it)")
    error = btle.BTLEManagementError("Failed to execute management command 'le on'",
                                {"code": [20], "estat": [20], "emsg": ["Permission Denied"]})
    FakeScanner.plan = [error, "advertise"]
    scanner = BluepyScanner(ManualClock(), scanner_factory=FakeScanner)
    statuses = []
    heard, stop, thread = run_scanner(scanner)
    wait_for(lambda: statuses.append(scanner.status()) or any("setcap" in s for s in statuses))
    wait_for(lambda: heard, timeout=10)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def test_silence_restarts_the_helper():
    scanner = BluepyScanner(ManualClock(), silence=0.2, scanner_factory=FakeScanner)
    heard, stop, thread = run_scanner(scanner)
    wait_for(lambda: FakeScanner.started >= 3, timeout=10)
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and heard == []


@pytest.mark.parametrize("message, fix", [
    ("Failed to execute management command 'le on' (code: 20, error: Permission Denied)", "setcap"),
    ("Failed to execute management command 'le on' (code: 15, error: Not Powered)", "bluetoothctl power on"),
    ("Failed to execute management command 'le on' (code: 17, error: Invalid Index)", "ble.iface"),
    ("Failed to execute management command 'le on' (code: 12, error: Not Supported)", "cannot do Bluetooth LE"),
    ("Failed to execute mgmt cmd 'le on'", "setcap"),
    ("[Errno 32] Broken pipe", "scanner error"),
])
def test_errors_are_explained(message, fix):
    assert fix in explain(message)
