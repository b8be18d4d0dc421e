"""A camera that replays images: a folder, a video file, a spool folder, or frames a test pushes.

Like gpiozero's MockPin, this fake ships in the package: `kiosk demo` plays a folder of
rendered visitors, tests call :meth:`ReplayCamera.show`, and bench/soak.py drops visitors into
a spool folder from another process (`camera.replay_spool`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exc import CameraFault
from ..handoff import Handoff
from ..model import Frame
from . import FrameSource

if TYPE_CHECKING:       # cv2 is imported when a video is opened, not with the package
    import cv2

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
SPOOL_FRAMES = 3     # reads a spooled image stays in view: a code held up for a moment


class ReplayCamera(FrameSource):
    """Frames from `path` (folder of images in name order, or a video file) at `fps`.

    At `fps` > 0 it plays at real time, as a live camera: a read returns the newest frame
    due, and the frames that fell due while the kiosk was decoding are skipped (counted in
    :attr:`dropped`), never queued. At `fps` 0 every frame is returned, as fast as read.
    With `path=None` the camera yields only what :meth:`show` pushed, stamped with the
    kiosk's clock when read.
    """

    def __init__(self, clock, path: str | Path | None = None, fps: float = 10.0, loop: bool = False,
                 spool: bool = False):
        self._clock = clock
        self._spool = spool and path is not None
        self._path = Path(path) if path else None
        self._fps = fps
        self._loop = loop
        self._pushed = Handoff()
        self._frames: list | None = None
        self._video: cv2.VideoCapture | None = None
        self._index = 0
        self._started: float | None = None
        self.dropped = 0
        # spool: (file still to remove or None, image, reads left)
        self._shown: tuple[Path | None, Any, int] | None = None

    @classmethod
    def from_settings(cls, settings, clock) -> ReplayCamera:
        return cls(clock, settings["camera.replay_path"] or None, settings["camera.replay_fps"],
                   settings["camera.replay_loop"], settings["camera.replay_spool"])

    # -- controls for tests ------------------------------------------------------------
    @property
    def started(self) -> float | None:
        """time.monotonic() at which frame 0 of a folder or video was due (None before open)."""
        return self._started

    def show(self, image, frames: int = 1) -> None:
        """Put `image` (a numpy array) in front of the camera for `frames` reads."""
        self._pushed.put(image, frames)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every pushed frame has been read and handled by the kiosk."""
        return self._pushed.wait_idle(timeout)

    # -- FrameSource -------------------------------------------------------------------
    def open(self) -> None:
        if self._path is None:
            return
        import cv2

        if self._spool:
            if not self._path.is_dir():
                raise CameraFault(f"spool folder {self._path} is gone")
            self._shown = None
            self._started = time.monotonic()
            return

        if self._path.is_dir():
            names = sorted(p for p in self._path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not names:
                raise CameraFault(f"replay folder {self._path} holds no images")
            self._frames = names
        elif self._path.is_file():
            self._video = cv2.VideoCapture(str(self._path))
            if not self._video.isOpened():
                raise CameraFault(f"cannot open video {self._path}")
        else:
            raise CameraFault(f"replay path {self._path} does not exist")
        self._index = 0
        self._started = time.monotonic()

    def read(self, timeout: float) -> Frame | None:
        if self._path is None:
            return self._read_pushed(timeout)
        if self._spool:
            return self._read_spool(timeout)
        if self._fps > 0:
            assert self._started is not None, "read() before open()"
            due = self._started + self._index / self._fps
            delay = due - time.monotonic()
            if delay > timeout:
                time.sleep(timeout)
                return None
            if delay > 0:
                time.sleep(delay)
            # A live camera holds only its newest frame: skip what fell due while the
            # caller was busy (a backlog would show the door what happened seconds ago).
            newest = int((time.monotonic() - self._started) * self._fps)
            if newest > self._index:
                self._skip(newest - self._index)
        image = self._next_image()
        self._index += 1
        return Frame(image, self._clock.now(), self._clock.monotonic())

    def _read_spool(self, timeout: float) -> Frame | None:
        """The oldest image in the spool folder, shown for SPOOL_FRAMES reads at `fps`.

        The file is removed when the camera comes back for the next frame, so only after
        the kiosk has handled the first frame that showed it (decided, logged, signalled):
        a writer sees the removal as "handled", and an image left behind by a killed kiosk
        is shown again when it restarts.
        """
        import cv2

        if self._fps > 0:
            time.sleep(min(timeout, 1.0 / self._fps))
        if self._shown is not None:
            path, image, left = self._shown
            if path is not None:
                path.unlink(missing_ok=True)
            self._shown = (None, image, left - 1) if left > 0 else None
            if left > 0:
                return Frame(image, self._clock.now(), self._clock.monotonic())
        folder = self._path
        assert folder is not None, "a spool camera has a folder"     # _spool needs a path
        try:
            names = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except FileNotFoundError:
            raise CameraFault(f"spool folder {self._path} is gone") from None
        for name in names:
            image = cv2.imread(str(name), cv2.IMREAD_COLOR)
            if image is not None:      # None: still being written, or not an image
                self._shown = (name, image, SPOOL_FRAMES - 1)
                return Frame(image, self._clock.now(), self._clock.monotonic())
        return None

    def _read_pushed(self, timeout: float) -> Frame | None:
        image = self._pushed.take(timeout)
        return None if image is None else Frame(image, self._clock.now(), self._clock.monotonic())

    def _skip(self, frames: int) -> None:
        if self._frames is not None:
            if not self._loop:
                frames = min(frames, max(0, len(self._frames) - 1 - self._index))
        elif self._video is not None:
            for n in range(frames):
                if not self._video.grab():       # the end: the next read says so (or loops)
                    frames = n
                    break
        self._index += frames
        self.dropped += frames

    def _next_image(self):
        import cv2

        if self._frames is not None:
            if not self._loop and self._index >= len(self._frames):
                raise CameraFault("replay ended")
            name = self._frames[self._index % len(self._frames)]
            image = cv2.imread(str(name), cv2.IMREAD_COLOR)
            if image is None:
                raise CameraFault(f"cannot read image {name}")
            return image
        ok, image = self._video.read()
        if not ok and self._loop:
            self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._video.read()
        if not ok:
            raise CameraFault("replay video ended")
        return image

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None
