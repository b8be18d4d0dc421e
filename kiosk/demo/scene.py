"""Pictures of a door: visitors holding a phone with a QR code up to the camera.

Used by `kiosk demo` (rendered once into a replay folder) and by the tests. Codes are
rendered with segno and put on a phone-like screen, turned and tilted a little with OpenCV,
on a noisy background, the way a 640x480 camera at a door sees them.
"""
from __future__ import annotations

import cv2
import numpy as np
import segno

SIZE = (640, 480)


def qr_image(text: str | bytes, module_px: int = 4, border: int = 4):
    """A black-on-white QR code as a grayscale array."""
    qr = segno.make(text, error="m", micro=False)
    matrix = np.array([list(row) for row in qr.matrix], dtype=np.uint8)
    img = np.where(matrix == 1, 0, 255).astype(np.uint8)
    img = np.pad(img, border, constant_values=255)
    return cv2.resize(img, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)


def background(seed: int = 0, size=SIZE):
    """A dim, slightly noisy corridor-like backdrop (BGR)."""
    rng = np.random.default_rng(seed)
    w, h = size
    ramp = np.linspace(70, 130, w, dtype=np.float32)[None, :].repeat(h, 0)
    noise = rng.normal(0, 6, (h, w)).astype(np.float32)
    gray = np.clip(ramp + noise, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def visitor_frame(text: str | bytes | None, seed: int = 0, angle: float = 8.0,
                  centre: tuple[int, int] = (330, 240), tilt: float = 0.08):
    """One camera frame; `text=None` is the empty doorway."""
    frame = background(seed)
    if text is None:
        return frame
    code = qr_image(text)
    # A phone: the code on a white screen inside a dark body.
    pad = 14
    screen = np.pad(code, pad, constant_values=250)
    phone = np.pad(screen, 10, constant_values=25)
    phone = cv2.cvtColor(phone, cv2.COLOR_GRAY2BGR)
    ph, pw = phone.shape[:2]
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], dtype=np.float32)
    # Turn by `angle` and lean the top edge back by `tilt` (perspective) around the centre.
    rad = np.deg2rad(angle)
    rot = np.array([[np.cos(rad), -np.sin(rad)], [np.sin(rad), np.cos(rad)]])
    corners = src - [pw / 2, ph / 2]
    corners[:2, 0] *= 1 - tilt
    dst = (corners @ rot.T + centre).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    w, h = SIZE
    warped = cv2.warpPerspective(phone, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), m, (w, h))
    frame[mask > 0] = warped[mask > 0]
    return frame
