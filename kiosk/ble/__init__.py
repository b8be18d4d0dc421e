"""BLE: advertisement sources, parsing, app families and presence at the door.

An advertisement source is chosen by name (`ble.backend`) from BACKENDS; bluepy is imported
only when its backend is built.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

from ..model import Advertisement
from ..registry import backend_class

BACKENDS = {
    "bluepy": "kiosk.ble.bluepy_backend:BluepyScanner",
    "replay": "kiosk.ble.replay:ReplayScanner",
}


class AdvertisementSource(ABC):
    """A passive BLE scanner, as the kiosk sees it.

    A backend *must* override :meth:`run`, which hands every advertising report to
    `deliver` until `stop` is set, and returns soon after. It *may* override :meth:`status`
    (one line for the guard's health strip).
    """

    @abstractmethod
    def run(self, deliver: Callable[[Advertisement], None], stop: threading.Event) -> None:
        """Scan until `stop` is set."""

    def status(self) -> str:
        return "ok"


def open_source(settings, clock) -> AdvertisementSource:
    cls = backend_class(BACKENDS, "ble.backend", settings["ble.backend"])
    return cls.from_settings(settings, clock)
