"""QR decoding with pyzbar, and the once-per-presentation rule.

pyzbar needs the system library libzbar0; this module is imported by the camera thread and
`kiosk decode`, never by `import kiosk`.

The ladder (bench/qr_decode.py measures what each step adds; docs/performance.md):
1. zbar on the grayscale frame: reads most codes; the only step for most frames.
2. zbar on the inverted frame: phones in dark mode show white modules on black, which
   zbar does not read.
3. OpenCV's finder-pattern detector; when it finds a code zbar could not read, the code is
   rectified (perspective-warped to a square: codes tilted 30-50 degrees) and read again.
Each step runs only when the ones before found nothing. Measured and dropped: CLAHE on the
frame or on the rectified code, and the inverted rectified code (they read nothing the
steps above missed on the corpus), and a downscaled pass (it lost small codes).
"""
from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
from pyzbar import pyzbar

QR = [pyzbar.ZBarSymbol.QRCODE]


class QRDecoder:
    """Frame -> QR payloads (bytes, as decoded; binary payloads are not mangled)."""

    def __init__(self, max_payload: int = 4096):
        self.max_payload = max_payload
        self._detector = cv2.QRCodeDetector()
        self.steps: Counter = Counter()          # which step read the code (for the benchmark)

    def decode(self, image) -> list[bytes]:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        for step, picture in (("gray", lambda: gray), ("inverted", lambda: cv2.bitwise_not(gray))):
            found = self._zbar(picture())
            if found:
                self.steps[step] += 1
                return found
        square = self._rectified(gray)
        if square is not None:
            found = self._zbar(square)
            if found:
                self.steps["rectified"] += 1
                return found
        self.steps["none"] += 1
        return []

    def _rectified(self, gray):
        """The code found by OpenCV's detector, warped to an upright square with a quiet zone."""
        try:
            ok, points = self._detector.detect(gray)
        except cv2.error:
            return None
        if not ok or points is None:
            return None
        quad = points.reshape(4, 2).astype(np.float32)
        side = int(max(np.linalg.norm(quad[i] - quad[(i + 1) % 4]) for i in range(4)))
        if side < 21:
            return None
        margin = side // 8
        target = np.float32([[margin, margin], [margin + side, margin], [margin + side, margin + side],
                             [margin, margin + side]])
        m = cv2.getPerspectiveTransform(quad, target)
        return cv2.warpPerspective(gray, m, (side + 2 * margin, side + 2 * margin),
                                   flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)

    def _zbar(self, gray) -> list[bytes]:
        out = []
        for symbol in pyzbar.decode(gray, symbols=QR):
            data = symbol.data
            if len(data) <= self.max_payload and data not in out:
                out.append(data)
        return out


class PresentationFilter:
    """Report each payload once per presentation.

    A payload seen again within `cooldown` seconds of its last sighting is the same
    presentation (a visitor holding a phone up for five seconds); after a longer absence it
    is a new one.
    """

    def __init__(self, cooldown: float = 2.0):
        self.cooldown = cooldown
        self._last_seen: dict[bytes, float] = {}

    def new(self, payloads: list[bytes], t: float) -> list[bytes]:
        fresh = []
        for payload in payloads:
            last = self._last_seen.get(payload)
            if last is None or t - last > self.cooldown:
                fresh.append(payload)
            self._last_seen[payload] = t
        # Forget what left the view long ago so memory stays bounded.
        for payload in [p for p, seen in self._last_seen.items() if t - seen > self.cooldown]:
            del self._last_seen[payload]
        return fresh
