"""QR decoding with pyzbar, and the once-per-presentation rule.

pyzbar needs the system library libzbar0; this module is imported by the camera thread and
`kiosk decode`, never by `import kiosk`.
"""
from __future__ import annotations

import cv2
from pyzbar import pyzbar

QR = [pyzbar.ZBarSymbol.QRCODE]


class QRDecoder:
    """Frame -> QR payloads (bytes, as decoded).

    A short ladder: grayscale as is, then contrast-equalised (CLAHE) for glare and dim light.
    Each step runs only when the one before found nothing.
    """

    def __init__(self, max_payload: int = 4096):
        self.max_payload = max_payload
        self._clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))

    def decode(self, image) -> list[bytes]:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        for step in (lambda g: g, self._clahe.apply):
            found = self._zbar(step(gray))
            if found:
                return found
        return []

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
