"""USB (V4L2) cameras, video files and RTSP/HTTP streams through cv2.VideoCapture.

On Raspberry Pi OS Bookworm the CSI camera is behind libcamera and cv2.VideoCapture(0)
cannot reach it: use the picamera2 backend for that one.

A live source (a device or a stream) is read by a grabber thread that keeps only the newest
frame: V4L2 and RTSP buffer several frames, and decoding a queue of old frames would show
the guard what happened a second ago. When decoding lags, the frames in between are
skipped, not queued. A video file is read frame by frame (every frame, as fast as decoded).
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..exc import CameraFault
from ..model import Frame
from . import FrameSource

if TYPE_CHECKING:       # cv2 is imported when the camera opens, not with the package
    import cv2

STALL = 2.0     # seconds without a frame from a live source before it counts as lost


def is_live(device) -> bool:
    return isinstance(device, int) or str(device).startswith(("/dev/", "rtsp://", "http://", "https://"))


class OpenCVCamera(FrameSource):
    def __init__(self, clock, device: str = "0", width: int = 640, height: int = 480, fps: int = 15):
        self._clock = clock
        self._device = int(device) if device.isdigit() else device
        self._size = (width, height)
        self._fps = fps
        self._cap: cv2.VideoCapture | None = None
        self.live = is_live(self._device)
        self.stall_after = STALL if self.live else None
        self._newest: Frame | None = None
        self._seq = 0
        self._taken = 0
        self._error: str | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._grabber: threading.Thread | None = None
        self.dropped = 0

    @classmethod
    def from_settings(cls, settings, clock) -> OpenCVCamera:
        return cls(clock, settings["camera.device"], settings["camera.width"],
                   settings["camera.height"], settings["camera.fps"])

    def open(self) -> None:
        import cv2

        cap = cv2.VideoCapture(self._device)
        if not cap.isOpened():
            raise CameraFault(f"cannot open camera {self._device!r}")
        if self.live:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
            cap.set(cv2.CAP_PROP_FPS, self._fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap
        self._error = None
        if self.live:
            self._stop.clear()
            self._grabber = threading.Thread(target=self._grab, name="camera-grabber", daemon=True)
            self._grabber.start()

    def _grab(self) -> None:
        cap = self._cap
        assert cap is not None, "the grabber starts after open()"
        while not self._stop.is_set():
            ok, image = cap.read()
            with self._changed:
                if not ok or image is None:
                    self._error = f"camera {self._device!r} stopped delivering frames"
                    self._changed.notify_all()
                    return
                if self._seq > self._taken:
                    self.dropped += 1           # the decoder was busy: this frame is skipped
                self._newest = Frame(image, self._clock.now(), self._clock.monotonic())
                self._seq += 1
                self._changed.notify_all()

    def read(self, timeout: float) -> Frame | None:
        if self._cap is None:
            raise CameraFault("camera not open")
        if not self.live:
            ok, image = self._cap.read()
            if not ok or image is None:
                raise CameraFault(f"{self._device} ended")
            return Frame(image, self._clock.now(), self._clock.monotonic())
        with self._changed:
            self._changed.wait_for(lambda: self._seq > self._taken or self._error, timeout)
            if self._seq > self._taken:
                self._taken = self._seq
                return self._newest
            if self._error:
                raise CameraFault(self._error)
            return None

    def close(self) -> None:
        self._stop.set()
        if self._grabber is not None:
            self._grabber.join(2.0)
            self._grabber = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None
