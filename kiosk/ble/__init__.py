"""BLE: advertisement sources, parsing, app families and presence at the door.

An advertisement source is chosen by name (`ble.backend`) from BACKENDS; bluepy is imported
only when its backend is built.
"""
from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from typing import Callable

from ..exc import ConfigError
from ..model import Advertisement

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
    name = settings["ble.backend"]
    try:
        module_name, cls_name = BACKENDS[name].split(":")
    except KeyError:
        raise ConfigError(f"ble.backend: unknown backend {name!r}") from None
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls.from_settings(settings, clock)
