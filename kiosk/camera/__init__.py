"""Frame sources and the QR decoder.

A frame source is chosen by name (`camera.backend`) from BACKENDS; the library behind it
(cv2 for a USB camera, picamera2 for the CSI camera) is imported only when that backend is
built, so `import kiosk.camera` works on any machine.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from ..registry import backend_class

if TYPE_CHECKING:
    from ..model import Frame

BACKENDS = {
    "opencv": "kiosk.camera.opencv:OpenCVCamera",
    "picamera2": "kiosk.camera.picam:PiCamera",
    "replay": "kiosk.camera.replay:ReplayCamera",
}


class FrameSource(ABC):
    """A camera, as the kiosk sees it.

    A backend *must* override :meth:`read`. It *may* override :meth:`open` (acquire the
    device; raise :class:`~kiosk.exc.CameraFault` when it is not there) and :meth:`close`,
    and set :attr:`stall_after`: seconds without a frame after which a live source counts as
    lost (a USB camera that hangs without an error). :meth:`read` is only called from the
    camera thread.
    """

    stall_after: float | None = None

    def open(self) -> None:
        """Acquire the device. Backends may override; the default has nothing to acquire."""

    @abstractmethod
    def read(self, timeout: float) -> Frame | None:
        """Return the newest frame, or None when none came within `timeout` seconds.

        Raise CameraFault when the device is gone (unplugged, stream ended).
        """

    def close(self) -> None:
        """Release the device. Backends may override; the default has nothing to release."""


def open_source(settings, clock) -> FrameSource:
    """Build the frame source named by `camera.backend`."""
    cls = backend_class(BACKENDS, "camera.backend", settings["camera.backend"])
    return cls.from_settings(settings, clock)
