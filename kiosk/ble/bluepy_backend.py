"""Passive scanning through bluepy (BlueZ's HCI via bluepy-helper).

bluepy needs root or `sudo setcap cap_net_raw,cap_net_admin+eip <venv>/lib/python3*/site-packages/bluepy/bluepy-helper`.
The helper can hang or die on long scans, so the scan runs in short process() rounds and is
restarted when it raises or when nothing at all is heard for `ble.silence_restart` seconds
(a busy place always has some advertiser; silence means the helper is stuck).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..exc import BackendUnavailable
from ..model import Advertisement
from . import AdvertisementSource

log = logging.getLogger(__name__)

ROUND = 1.0             # seconds per Scanner.process() call, so stop is noticed quickly


# What bluepy-helper's management errors mean at a kiosk, and the fix (bluepy 1.3 reports
# "Failed to execute management command 'le on' (code: N, error: TEXT)"; older releases
# say only "Failed to execute mgmt cmd 'le on'", which is a permission or adapter problem).
FIXES = (
    ("Permission Denied", "no permission to scan: sudo setcap cap_net_raw,cap_net_admin+eip "
                          "on bluepy-helper (or AmbientCapabilities in kiosk.service)"),
    ("Not Powered", "Bluetooth adapter is off: bluetoothctl power on"),
    ("rfkill", "Bluetooth is blocked: sudo rfkill unblock bluetooth"),
    ("Invalid Index", "no such Bluetooth adapter: check ble.iface (hciconfig lists them)"),
    ("Not Supported", "this adapter cannot do Bluetooth LE"),
    ("'le on'", "cannot start scanning: sudo setcap cap_net_raw,cap_net_admin+eip on "
                "bluepy-helper, and bluetoothctl power on"),
)


def explain(error: str) -> str:
    """One line for the guard's health strip: what failed and how to fix it."""
    for needle, fix in FIXES:
        if needle.lower() in error.lower():
            return fix
    return f"scanner error: {error}"


class BluepyScanner(AdvertisementSource):
    def __init__(self, clock, iface: int = 0, silence: float = 60.0, scanner_factory=None):
        self._clock = clock
        self._iface = iface
        self._silence = silence
        self._scanner_factory = scanner_factory
        self._status = "starting"

    @classmethod
    def from_settings(cls, settings, clock) -> BluepyScanner:
        return cls(clock, settings["ble.iface"], settings["ble.silence_restart"])

    def status(self) -> str:
        return self._status

    def _make_scanner(self, deliver):
        if self._scanner_factory is None:
            try:
                from bluepy import btle
            except ImportError as e:
                raise BackendUnavailable("ble.backend=bluepy needs bluepy: pip install 'kiosk[pi]'") from e
            self._scanner_factory = btle.Scanner
        clock = self._clock

        class Delegate:
            def handleDiscovery(self, entry, is_new_dev, is_new_data):
                # rawData holds this report's AD bytes (advertisement or scan response);
                # the one parser in kiosk.ble.advertising reads them, as for replay.
                deliver(Advertisement(entry.addr, int(entry.rssi), clock.now(),
                                      bytes(entry.rawData or b""), entry.addrType or "random"))

            def handleNotification(self, handle, data):  # bluepy calls this on connections only
                pass

        return self._scanner_factory(self._iface).withDelegate(Delegate())

    def run(self, deliver: Callable[[Advertisement], None], stop: threading.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            heard = {"last": time.monotonic()}

            def counted(advert: Advertisement, heard: dict[str, float] = heard) -> None:
                heard["last"] = time.monotonic()
                deliver(advert)

            scanner = None
            try:
                scanner = self._make_scanner(counted)
                scanner.start(passive=True)
                self._status = "ok"
                backoff = 1.0
                while not stop.is_set():
                    scanner.process(ROUND)
                    # Addresses rotate every ~15 minutes: do not let bluepy keep them all.
                    scanner.clear()
                    if time.monotonic() - heard["last"] > self._silence:
                        log.warning("no advertisement for %.0f s: restarting bluepy-helper", self._silence)
                        self._status = "restarting: no advertisement heard"
                        break
            except BackendUnavailable as e:
                self._status = str(e)
                log.error("%s", e)
                stop.wait(60)
            except Exception as e:  # bluepy raises BTLEException subclasses and BrokenPipe
                self._status = explain(str(e))
                log.warning("BLE scan failed (%s); retrying in %.0f s", self._status, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
            finally:
                if scanner is not None:
                    try:
                        scanner.stop()
                    except Exception:
                        pass
