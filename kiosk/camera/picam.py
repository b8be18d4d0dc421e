"""The Raspberry Pi CSI camera through picamera2 (libcamera).

picamera2 ships with Raspberry Pi OS (apt: python3-picamera2) and is imported only here.
"""
from __future__ import annotations

from ..exc import BackendUnavailable, CameraFault
from ..model import Frame
from . import FrameSource


class PiCamera(FrameSource):
    stall_after = 2.0

    def __init__(self, clock, width: int = 640, height: int = 480, fps: int = 15):
        self._clock = clock
        self._size = (width, height)
        self._fps = fps
        self._cam = None

    @classmethod
    def from_settings(cls, settings, clock) -> PiCamera:
        return cls(clock, settings["camera.width"], settings["camera.height"], settings["camera.fps"])

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as e:
            raise BackendUnavailable(
                "camera.backend=picamera2 needs picamera2: apt install python3-picamera2 "
                "and create the virtualenv with --system-site-packages") from e
        try:
            cam = Picamera2()
            # "RGB888" in libcamera's naming is B,G,R in memory: the order OpenCV expects.
            config = cam.create_video_configuration(
                main={"size": self._size, "format": "RGB888"},
                controls={"FrameRate": float(self._fps)})
            cam.configure(config)
            cam.start()
        except (RuntimeError, IndexError, OSError) as e:
            raise CameraFault(f"CSI camera not available: {e}") from e
        self._cam = cam

    def read(self, timeout: float) -> Frame | None:
        if self._cam is None:
            raise CameraFault("camera not open")
        try:
            image = self._cam.capture_array("main")
        except (RuntimeError, OSError) as e:
            raise CameraFault(f"CSI camera stopped: {e}") from e
        return Frame(image, self._clock.now(), self._clock.monotonic())

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None
