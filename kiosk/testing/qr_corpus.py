"""A QR image corpus the project makes itself: codes of the sizes a door sees (a site pass,
an EU DCC of 300-600 characters) rendered with segno onto phone-screen-like and paper-like
backgrounds, then turned, tilted, blurred, glared, dimmed, noised, JPEG-compressed, made
small and far, or put off centre, with a fixed seed so runs compare."""
from __future__ import annotations

import random
import string

import cv2
import numpy as np
import segno

BASE45 = string.digits + string.ascii_uppercase + " $%*+-./:"
CATEGORIES = ("nominal", "rotation", "tilt", "motion_blur", "focus_blur", "glare", "low_contrast", "noise",
              "jpeg", "small", "off_centre", "inverted", "none")
HARD = ("rotation", "tilt", "motion_blur", "focus_blur", "glare", "low_contrast", "noise", "jpeg", "small",
        "off_centre", "inverted")


def payload(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return "KP1:" + "".join(rng.choice(BASE45) for _ in range(rng.randint(180, 230)))
    return "HC1:" + "".join(rng.choice(BASE45) for _ in range(rng.randint(300, 600)))


def _code(text: str, module: int, invert: bool = False) -> np.ndarray:
    qr = segno.make(text, error="l" if len(text) > 400 else "m", micro=False)
    m = np.array([list(row) for row in qr.matrix], dtype=np.uint8)
    img = np.where(m == 1, 20, 235).astype(np.uint8)
    if invert:
        img = 255 - img
    img = np.pad(img, 4, constant_values=20 if invert else 235)
    return cv2.resize(img, None, fx=module, fy=module, interpolation=cv2.INTER_NEAREST)


def _background(rng: random.Random, w: int, h: int) -> np.ndarray:
    base = np.full((h, w), rng.randint(60, 150), np.float32)
    gx = np.linspace(0, rng.uniform(-40, 40), w, dtype=np.float32)[None, :]
    gy = np.linspace(0, rng.uniform(-40, 40), h, dtype=np.float32)[:, None]
    noise = cv2.GaussianBlur(np.random.default_rng(rng.randint(0, 2**31)).normal(0, 20, (h, w)).astype(np.float32), (0, 0), 3)
    return np.clip(base + gx + gy + noise, 0, 255).astype(np.uint8)


def _place(bg, code, rng, centre, angle, tilt):
    h, w = bg.shape
    ch, cw = code.shape
    pad = 6 + rng.randint(0, 8)
    screen = np.pad(code, pad, constant_values=int(code[0, 0]))            # phone screen or paper margin
    body = np.pad(screen, rng.choice([0, 10]), constant_values=rng.choice([15, 200]))  # phone body or none
    bh, bw = body.shape
    src = np.float32([[0, 0], [bw, 0], [bw, bh], [0, bh]])
    corners = src - [bw / 2, bh / 2]
    # Tilt about the vertical axis: one side narrower (perspective), up to `tilt` degrees.
    k = np.sin(np.deg2rad(tilt)) * 0.5
    corners[[1, 2], 1] *= 1 - k
    corners[[1, 2], 0] *= np.cos(np.deg2rad(tilt))
    corners[[0, 3], 0] *= np.cos(np.deg2rad(tilt))
    rad = np.deg2rad(angle)
    rot = np.array([[np.cos(rad), -np.sin(rad)], [np.sin(rad), np.cos(rad)]])
    dst = (corners @ rot.T + centre).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(body, m, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full(body.shape, 255, np.uint8), m, (w, h), flags=cv2.INTER_NEAREST)
    out = bg.copy()
    out[mask > 0] = warped[mask > 0]
    return out


def make(category: str, size: tuple[int, int], rng: random.Random, degrade: bool = True,
         moved: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> tuple[np.ndarray, bytes | None]:
    """One frame of `category`; degrade=False leaves out the blur, glare, noise... (the
    placement stays), `moved` shifts the code by (dx, dy) pixels and turns it by degrees.
    Neither changes what the rng draws, so a frame and its moved twin share code and scene."""
    w, h = size
    bg = _background(rng, w, h)
    if category == "none":
        return cv2.cvtColor(bg, cv2.COLOR_GRAY2BGR), None
    text = payload(rng)
    scale = h / 480
    module = max(2, int(round(rng.uniform(3, 4) * scale)))
    if category == "small":
        module = 2
    code = _code(text, module, invert=category == "inverted")
    half = max(code.shape) * 0.75
    centre = (w / 2 + rng.uniform(-20, 20), h / 2 + rng.uniform(-20, 20))
    if category == "off_centre":
        centre = (rng.choice([half, w - half]) + rng.uniform(-5, 5), rng.choice([half, h - half]))
    angle = rng.uniform(-8, 8)
    if category == "rotation":
        angle = rng.uniform(0, 360)
    tilt = rng.uniform(0, 10)
    if category == "tilt":
        tilt = rng.uniform(30, 50)
    centre, angle = (centre[0] + moved[0], centre[1] + moved[1]), angle + moved[2]
    img = _place(bg, code, rng, centre, angle, tilt)
    if not degrade:
        pass
    elif category == "motion_blur":
        n = rng.randint(5, 9)
        kernel = np.zeros((n, n), np.float32)
        kernel[n // 2, :] = 1.0 / n
        kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), rng.uniform(0, 180), 1.0), (n, n))
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    elif category == "focus_blur":
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.3, 2.0) * scale)
    elif category == "glare":
        spot = np.zeros_like(img, np.float32)
        cx, cy = int(centre[0] + rng.uniform(-40, 40) * scale), int(centre[1] + rng.uniform(-40, 40) * scale)
        cv2.ellipse(spot, (cx, cy), (int(70 * scale), int(45 * scale)), rng.uniform(0, 180), 0, 360, 170, -1)
        spot = cv2.GaussianBlur(spot, (0, 0), 25 * scale)
        img = np.clip(img.astype(np.float32) + spot, 0, 255).astype(np.uint8)
    elif category == "low_contrast":
        img = np.clip(img.astype(np.float32) * rng.uniform(0.18, 0.28) + rng.uniform(20, 50), 0, 255).astype(np.uint8)
    elif category == "noise":
        img = np.clip(img + np.random.default_rng(rng.randint(0, 2**31)).normal(0, 22, img.shape), 0, 255).astype(np.uint8)
    elif category == "jpeg":
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(12, 25)])
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), text.encode()


def corpus(per_category: int, sizes=((640, 480), (1280, 720)), seed: int = 2026):
    rng = random.Random(seed)
    for size in sizes:
        for category in CATEGORIES:
            for _ in range(per_category):
                img, expected = make(category, size, rng)
                yield size, category, img, expected


def presentations(per_category: int, categories, sizes=((640, 480), (1280, 720)), seed: int = 2026):
    """Pairs of frames of one presentation: the code as the camera first sees it (placement
    of `category`, no blur, glare or noise), then the `category` frame of the same code and
    scene with the phone moved 10-25 px (at 480 lines) in x and y and turned up to 3 degrees.
    For the decoder's memory of where the last code was. Other rngs than corpus(), so the
    corpus stays as it was."""
    rng, motion = random.Random(seed + 1), random.Random(seed + 2)
    for size in sizes:
        scale = size[1] / 480
        for category in categories:
            for _ in range(per_category):
                moved = (motion.choice([-1, 1]) * motion.uniform(10, 25) * scale,
                         motion.choice([-1, 1]) * motion.uniform(10, 25) * scale, motion.uniform(-3, 3))
                state = rng.getstate()
                first, expected = make(category, size, rng, degrade=False)
                rng.setstate(state)
                second, _ = make(category, size, rng, moved=moved)
                yield size, category, first, second, expected
