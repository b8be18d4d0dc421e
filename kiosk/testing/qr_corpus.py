"""A QR image corpus the project makes itself: codes of the sizes a door sees (a site pass,
an EU DCC of 300-600 characters) rendered with segno onto phone-screen-like and paper-like
backgrounds, then turned, tilted, blurred, glared, dimmed, noised, JPEG-compressed, made
small and far, or put off centre, with a fixed seed so runs compare. The door's own cases
too: phones held at a steep keystone angle in both axes (through a real camera's focal
length), codes at the frame's edge, a notch or status bar over the code's margin, a screen
turned too dim, a pass next to a printed menu's code; and clips() of whole presentations at
30 fps (the phone approaches, shakes, settles).

Over the house's ~300 lines: one generator per category, each short; test code, never
imported by the kiosk.
"""
from __future__ import annotations

import random
import string

import cv2
import numpy as np
import segno

BASE45 = string.digits + string.ascii_uppercase + " $%*+-./:"
CATEGORIES = ("nominal", "rotation", "tilt", "motion_blur", "focus_blur", "glare", "low_contrast", "noise",
              "jpeg", "small", "off_centre", "inverted", "perspective", "edge", "notch", "dim", "two_codes", "none")
HARD = ("rotation", "tilt", "motion_blur", "focus_blur", "glare", "low_contrast", "noise", "jpeg", "small",
        "off_centre", "inverted", "perspective", "edge", "notch", "dim", "two_codes")
# The door's own cases, added after the first rounds (the per-category tables show them apart).
DOOR = ("perspective", "edge", "notch", "dim", "two_codes")
# Raspberry Pi Camera Module v2: 3.04 mm lens on a 3.68 mm-wide sensor (62.2 degrees across);
# the focal length in pixels is then 0.826 of the frame's width at any resolution.
FOCAL = 3.04 / 3.68
MENU = "https://quanpho.example.vn/menu"


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
    grain = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 20, (h, w)).astype(np.float32)
    noise = cv2.GaussianBlur(grain, (0, 0), 3)
    return np.clip(base + gx + gy + noise, 0, 255).astype(np.uint8)


def _body(code, rng, screen=None):
    """The code on its phone screen or paper (a margin of the code's own light), in a phone
    body or none; `screen` draws on the screen (a notch, a status bar) before the body."""
    pad = 6 + rng.randint(0, 8)
    face = np.pad(code, pad, constant_values=int(code[0, 0]))            # phone screen or paper margin
    if screen is not None:
        face = screen(face, pad)
    return np.pad(face, rng.choice([0, 10]), constant_values=rng.choice([15, 200]))  # phone body or none


def _paste(bg, body, dst):
    """`body` warped onto `bg` with its corners at `dst` (top-left, clockwise)."""
    h, w = bg.shape
    bh, bw = body.shape
    src = np.float32([[0, 0], [bw, 0], [bw, bh], [0, bh]])
    m = cv2.getPerspectiveTransform(src, np.float32(dst))
    warped = cv2.warpPerspective(body, m, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full(body.shape, 255, np.uint8), m, (w, h), flags=cv2.INTER_NEAREST)
    out = bg.copy()
    out[mask > 0] = warped[mask > 0]
    return out


def _place(bg, code, rng, centre, angle, tilt, screen=None):
    body = _body(code, rng, screen)
    bh, bw = body.shape
    corners = np.float32([[0, 0], [bw, 0], [bw, bh], [0, bh]]) - [bw / 2, bh / 2]
    # Tilt about the vertical axis: one side narrower (perspective), up to `tilt` degrees.
    k = np.sin(np.deg2rad(tilt)) * 0.5
    corners[[1, 2], 1] *= 1 - k
    corners[[1, 2], 0] *= np.cos(np.deg2rad(tilt))
    corners[[0, 3], 0] *= np.cos(np.deg2rad(tilt))
    rad = np.deg2rad(angle)
    rot = np.array([[np.cos(rad), -np.sin(rad)], [np.sin(rad), np.cos(rad)]])
    return _paste(bg, body, corners @ rot.T + centre)


def project(shape, size, centre, pitch, yaw, roll, reach: float = 1.0):
    """Corners (top-left, clockwise) of a flat `shape` (h, w pixels) turned by `pitch` (about
    the horizontal axis, top away from the camera when positive), `yaw` (about the vertical
    axis) and `roll` (in its plane), all in degrees, seen by a camera of focal length FOCAL x
    the frame's width, with its centre at pixel `centre`. At `reach` 1 it is as far as where,
    facing the camera, it would be drawn at its own size; 2 is twice as far."""
    w, h = size
    f = FOCAL * w
    sh, sw = shape
    p, y, r = np.deg2rad([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    flat = np.array([[-sw / 2, -sh / 2, 0], [sw / 2, -sh / 2, 0], [sw / 2, sh / 2, 0], [-sw / 2, sh / 2, 0]])
    # The phone's centre on the ray through `centre`, at depth f * reach.
    z = f * reach
    origin = np.array([(centre[0] - w / 2) * reach, (centre[1] - h / 2) * reach, z])
    pts = flat @ (ry @ rx @ rz).T + origin
    return np.float32(np.stack([f * pts[:, 0] / pts[:, 2] + w / 2, f * pts[:, 1] / pts[:, 2] + h / 2], 1))


def _inside(quad, size, margin: float = 2.0) -> bool:
    w, h = size
    return bool((quad[:, 0] >= margin).all() and (quad[:, 0] <= w - margin).all()
                and (quad[:, 1] >= margin).all() and (quad[:, 1] <= h - margin).all())


def _pose(bg, code, rng, size, centre, screen=None, pitch_range=(25, 45), yaw_range=(25, 45)):
    """The code's phone held at a keystone angle in both axes (pitch and yaw together, the
    normal up to 60 degrees off the camera's axis), as far as it must be to fit the frame."""
    body = _body(code, rng, screen)
    while True:
        pitch = rng.choice([-1, 1]) * rng.uniform(*pitch_range)
        yaw = rng.choice([-1, 1]) * rng.uniform(*yaw_range)
        if np.cos(np.deg2rad(pitch)) * np.cos(np.deg2rad(yaw)) >= np.cos(np.deg2rad(60)):
            break
    roll = rng.uniform(-10, 10)
    reach = 0.8
    quad = project(body.shape, size, centre, pitch, yaw, roll, reach)
    while not _inside(quad, size) and reach < 4:
        reach *= 1.08
        quad = project(body.shape, size, centre, pitch, yaw, roll, reach)
    return _paste(bg, body, quad)


def _status_bar(rng, module: int):
    """A phone's status bar (clock, battery), a camera notch or an island over the top of the
    screen, reaching down over 30-100% of the code's quiet zone (4 modules) and margin."""
    kind = rng.choice(["bar", "notch", "island"])
    dark = rng.random() < 0.5
    over = rng.uniform(0.3, 1.0)

    def draw(face, pad):
        face = face.copy()
        fw = face.shape[1]
        depth = max(3, int(round(over * (pad + 4 * module))))
        if kind == "bar":
            ink, glyph = (15, 235) if dark else (240, 30)
            face[:depth, :] = ink
            cv2.putText(face, "9:41", (6, max(depth - 3, 6)), cv2.FONT_HERSHEY_SIMPLEX, depth / 30, glyph, 1)
            cv2.rectangle(face, (fw - 6 - depth, 2), (fw - 6, max(depth - 3, 3)), glyph, 1)
        else:
            width = int(fw * (0.45 if kind == "notch" else 0.3))
            x0 = (fw - width) // 2
            cv2.rectangle(face, (x0, 0 if kind == "notch" else max(1, depth // 4)), (x0 + width, depth), 8, -1)
        return face
    return draw


def _dimmed(code, rng):
    """The code on a screen turned down: its light 30-55 of 255, its dark 8-16, under a camera
    exposed for the room."""
    white, black = rng.uniform(30, 55), rng.uniform(8, 16)
    return (black + (code.astype(np.float32) - 20) / (235 - 20) * (white - black)).astype(np.uint8)


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
    if category in DOOR:
        return cv2.cvtColor(_door(category, bg, text, code, module, rng, size), cv2.COLOR_GRAY2BGR), text.encode()
    img = _place(bg, code, rng, centre, angle, tilt)
    if not degrade:
        pass
    elif category == "motion_blur":
        n = rng.randint(5, 9)
        kernel = np.zeros((n, n), np.float32)
        kernel[n // 2, :] = 1.0 / n
        turn = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), rng.uniform(0, 180), 1.0)
        smear = cv2.warpAffine(kernel, turn, (n, n))
        img = cv2.filter2D(img, -1, smear / max(smear.sum(), 1e-6))
    elif category == "focus_blur":
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.3, 2.0) * scale)
    elif category == "glare":
        spot = np.zeros_like(img, np.float32)
        cx, cy = int(centre[0] + rng.uniform(-40, 40) * scale), int(centre[1] + rng.uniform(-40, 40) * scale)
        cv2.ellipse(spot, (cx, cy), (int(70 * scale), int(45 * scale)), rng.uniform(0, 180), 0, 360, 170, -1)
        glow = cv2.GaussianBlur(spot, (0, 0), 25 * scale)
        img = np.clip(img.astype(np.float32) + glow, 0, 255).astype(np.uint8)
    elif category == "low_contrast":
        img = np.clip(img.astype(np.float32) * rng.uniform(0.18, 0.28) + rng.uniform(20, 50), 0, 255).astype(np.uint8)
    elif category == "noise":
        grain = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 22, img.shape)
        img = np.clip(img + grain, 0, 255).astype(np.uint8)
    elif category == "jpeg":
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(12, 25)])
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), text.encode()


def _door(category, bg, text, code, module, rng, size):
    """A frame of one of the door's own cases (DOOR), drawn from `rng` after make()'s draws."""
    w, h = size
    if category == "perspective":
        centre = (w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h)
        return _pose(bg, code, rng, size, centre)
    if category == "edge":
        # The code itself 0.5-2 modules from one or two edges of the frame: its quiet zone
        # and the phone around it are cut off by the frame.
        half = (code.shape[1] / 2 - 4 * module, code.shape[0] / 2 - 4 * module)
        gap = [rng.uniform(0.5, 2) * module for _ in range(2)]
        x = rng.choice([half[0] + gap[0], w - half[0] - gap[0]])
        y = rng.choice([half[1] + gap[1], h - half[1] - gap[1]])
        if rng.random() < 0.5:
            x = w / 2 + rng.uniform(-0.1, 0.1) * w
        elif rng.random() < 0.5:
            y = h / 2 + rng.uniform(-0.05, 0.05) * h
        return _place(bg, code, rng, (x, y), rng.uniform(-2, 2), rng.uniform(0, 3))
    if category == "notch":
        centre = (w / 2 + rng.uniform(-20, 20), h / 2 + rng.uniform(-20, 20))
        return _place(bg, code, rng, centre, rng.uniform(-8, 8), rng.uniform(0, 10),
                      screen=_status_bar(rng, module))
    if category == "dim":
        centre = (w / 2 + rng.uniform(-20, 20), h / 2 + rng.uniform(-20, 20))
        img = _place(bg, _dimmed(code, rng), rng, centre, rng.uniform(-8, 8), rng.uniform(0, 10))
        noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(2, 4), img.shape)
        return np.clip(img + noise, 0, 255).astype(np.uint8)
    if category == "two_codes":
        # The pass on a phone on one side; a printed menu's code (a short URL) on the other.
        menu = _code(MENU, max(2, module - 1))
        left = rng.random() < 0.5
        margin = 0.03 * w
        px = code.shape[1] * 0.55 + margin
        mx = menu.shape[1] * 0.6 + margin
        centre = (px if left else w - px, h / 2 + rng.uniform(-20, 20))
        img = _place(bg, code, rng, centre, rng.uniform(-8, 8), rng.uniform(0, 10))
        spot = (w - mx if left else mx, rng.uniform(menu.shape[0] * 0.6, h - menu.shape[0] * 0.6))
        return _place(img, menu, rng, spot, rng.uniform(-20, 20), rng.uniform(0, 25))
    raise ValueError(category)


def corpus(per_category: int, sizes=((640, 480), (1280, 720)), seed: int = 2026):
    """`per_category` frames of each category and size: (size, category, BGR image, expected
    payload or None). The door's cases draw from their own rng, so the older categories'
    frames are the same as before they were added."""
    rng, door = random.Random(seed), random.Random(seed + 3)
    for size in sizes:
        for category in CATEGORIES:
            for _ in range(per_category):
                img, expected = make(category, size, door if category in DOOR else rng)
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


def _smooth(rng, n: int, amplitude: float, period: float):
    """`n` samples of a random wobble of about `amplitude`, changing over `period` samples."""
    knots = np.array([rng.uniform(-1, 1) for _ in range(int(n / period) + 3)]) * amplitude
    return np.interp(np.arange(n) / period, np.arange(len(knots)), knots)


def clip(size: tuple[int, int], rng: random.Random, text: str | None = None, fps: int = 30):
    """One presentation at `fps`: a phone enters the frame and comes closer (0.4-0.8 s), shakes
    as the visitor aims (0.6-1.0 s, the shake dying away), then settles with a hand's tremor
    (1-1.2 s more), held in both axes up to 35 degrees off the camera. Each frame is
    motion-blurred along its movement over a 1/50 s exposure, so the blur fades as the hand
    steadies. Returns (frames as gray arrays, payload, index of the first frame with the
    whole code in view)."""
    w, h = size
    text = text or payload(rng)
    scale = h / 480
    module = max(2, int(round(rng.uniform(3, 4) * scale)))
    code = _code(text, module)
    body = _body(code, rng)
    bg = _background(rng, w, h)
    approach, shake, settle = (int(fps * rng.uniform(a, b)) for a, b in ((0.4, 0.8), (0.6, 1.0), (1.0, 1.2)))
    n = approach + shake + settle
    target = np.array([w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.08, 0.08) * h])
    side = rng.choice([-1, 1])
    start = target + [side * rng.uniform(0.2, 0.5) * w, rng.uniform(0.4, 0.7) * h]     # from below, aside
    pitch0, yaw0 = rng.uniform(-35, 35), rng.uniform(-35, 35)
    t = np.arange(n, dtype=np.float64)
    come = np.clip(t / max(approach, 1), 0, 1)
    come = 1 - (1 - come) ** 2                                                          # slows as it arrives
    fade = np.where(t < approach, 1.0, np.exp(-(t - approach) / max(shake / 3, 1)))      # the shake dies away
    jitter = 0.06 * w * fade + 1.5 * scale                                              # a hand's tremor stays
    centre = (start[None, :] * (1 - come)[:, None] + target[None, :] * come[:, None]
              + np.stack([_smooth(rng, n, 1, 3), _smooth(rng, n, 1, 3)], 1) * jitter[:, None])
    reach = 2.2 - 1.1 * come                                                            # twice as far, then near
    angles = np.stack([pitch0 + _smooth(rng, n, 12, 4) * fade, yaw0 + _smooth(rng, n, 12, 4) * fade,
                       rng.uniform(-8, 8) + _smooth(rng, n, 8, 4) * fade], 1)
    exposure = fps / 50                                                                  # share of a frame's motion
    frames, first = [], None
    for i in range(n):
        pitch, yaw, roll = angles[i]
        quad = project(body.shape, size, centre[i], pitch, yaw, roll, reach=reach[i])
        img = _paste(bg, body, quad)
        step = centre[i] - centre[max(i - 1, 0)]
        length = float(np.hypot(*step)) * exposure
        if length >= 1.5:
            k = int(np.ceil(length)) | 1
            kernel = np.zeros((k, k), np.float32)
            kernel[k // 2, :] = 1.0
            angle = np.degrees(np.arctan2(step[1], step[0]))
            smear = cv2.warpAffine(kernel, cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), -angle, 1.0), (k, k))
            img = cv2.filter2D(img, -1, smear / max(smear.sum(), 1e-6))
        noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 3, img.shape)
        frames.append(np.clip(img + noise, 0, 255).astype(np.uint8))
        if first is None and _inside(project(code.shape, size, centre[i], pitch, yaw, roll, reach=reach[i]), size, 0):
            first = i
    return frames, text.encode(), first


def clips(count: int, size=(640, 480), seed: int = 2026, texts=None):
    """`count` clips (see clip()), from their own rng; `texts` gives the payloads (signed
    passes for the kiosk's own loop), else random ones."""
    rng = random.Random(seed + 4)
    for i in range(count):
        yield clip(size, rng, texts[i] if texts else None)
