"""USB (V4L2) cameras, video files and RTSP/HTTP streams through cv2.VideoCapture.

On Raspberry Pi OS Bookworm the CSI camera is behind libcamera and cv2.VideoCapture(0)
cannot reach it: use the picamera2 backend for that one.
"""
from __future__ import annotations

from ..exc import CameraFault
from ..model import Frame
from . import FrameSource


class OpenCVCamera(FrameSource):
    def __init__(self, clock, device: str = "0", width: int = 640, height: int = 480, fps: int = 15):
        self._clock = clock
        self._device = int(device) if device.isdigit() else device
        self._size = (width, height)
        self._fps = fps
        self._cap = None

    @classmethod
    def from_settings(cls, settings, clock) -> "OpenCVCamera":
        return cls(clock, settings["camera.device"], settings["camera.width"],
                   settings["camera.height"], settings["camera.fps"])

    def open(self) -> None:
        import cv2

        cap = cv2.VideoCapture(self._device)
        if not cap.isOpened():
            raise CameraFault(f"cannot open camera {self._device!r}")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
        cap.set(cv2.CAP_PROP_FPS, self._fps)
        # V4L2 queues several buffers; with one we decode what is in front of the camera
        # now, not what was there half a second ago.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap

    def read(self, timeout: float) -> Frame | None:
        if self._cap is None:
            raise CameraFault("camera not open")
        ok, image = self._cap.read()
        if not ok or image is None:
            raise CameraFault(f"camera {self._device!r} stopped delivering frames")
        return Frame(image, self._clock.now())

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
