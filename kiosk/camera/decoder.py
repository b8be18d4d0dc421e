"""QR decoding with zxing-cpp and pyzbar, and the once-per-presentation rule.

pyzbar needs the system library libzbar0; this module is imported by the camera thread and
`kiosk decode`, never by `import kiosk`. zxing-cpp and pyzbar (zbar) decode; OpenCV only
sharpens, finds and straightens codes for them.

The ladder (bench/qr_decode.py measures what each step adds, `self.steps` counts which
step read each frame, `self.cpu` the CPU seconds of each stage). Each step runs only when
the ones before read nothing.
1. "zxing": zxing-cpp on the grayscale frame: reads most codes, codes at a steep keystone
   angle in both axes and dim screens too, in 0.6 ms at 640x480 (zbar took 5 ms here).
   With 2. the only cost of a frame with no code (the common case at the door).
2. Evidence: OpenCV's ArUco-based QR finder (cv2.QRCodeDetectorAruco, inverted codes too)
   on the frame, then on the frame sharpened with an unsharp mask (sigma 2, amount 2), which
   finds defocused codes. Adaptive-threshold windows 6, 14, 22 px (OpenCV's default 3, 13,
   23 lets tilted codes at 1280x720 slip). About 2 + 3 ms at 640x480 on an x86 core, no
   false finds on the corpus's empty frames. When it finds nothing: cells of 8 x 8 px as
   busy as a code (kiosk.camera.deblur.busy_regions; a smeared code hides its finder
   patterns from the finder, not its busy-ness), 0.1 ms at 640x480, none on the corpus's
   empty frames nor in sensor noise. Steps 3-7 run only when the finder found a code;
   8 when a code was read a moment ago; 9-11 and 13-14 on up to two regions: the finder's
   codes, or the busy cells, then the last location; 12 on the union of the busy regions
   (or of the finder's). Busy regions of more than half the frame's cells are a busy scene
   (a shelf, a poster) and left out; those whose box covers more than half the frame (a
   code held close and turned: a trapezoid fills about half its box) go to 9-11 only.
3. "gray": zbar on the grayscale frame (once per frame).
4. "rectified": the found code perspective-warped to an upright square with a quiet zone
   (codes tilted 30-50 degrees, small codes), turned light-on-dark when the border is darker
   than the code (phones in dark mode). The
   border is a thin ring just outside the code (its quiet zone): the outer margin of a
   tilted code reaches past the screen or paper into the background. zbar, then zxing-cpp.
5. "sharpened": the square at twice the size, unsharp-masked (sigma 4, amount 2):
   focus and motion blur. zbar, then zxing-cpp.
6. "re-rectified": the finder again on the square of step 4, and the square straightened a
   second time from those corners (the finder guesses the fourth corner, which has no
   finder pattern; on the nearly upright square it guesses better).
7. "sharpened frame": zbar on the whole sharpened frame from step 2 (blur where the found
   corners were too rough to straighten).
8. "last location": when 2. found nothing but a code was read within the last
   `remember` frames, zbar on the sharpened crop around where it was (a phone moving fast
   blurs the finder patterns away; the phone is still where it was a frame ago). The
   benchmark's corpus has independent images, so bench/qr_decode.py measures this step on
   its own pairs (a read frame, then a degraded frame of the same code moved a little).
9. "enlarged (zxing)": zxing-cpp on the region enlarged 1.5x (bicubic): at a steep
   keystone the far side's modules are under 2 px, too few for its binarizer.
10. "quiet zone": a phone's status bar, notch or side panel drawn up to the code takes
   its 4-module quiet zone on that side; the finder patterns' outer ring merges with the
   panel and no finder sees them. Their centres are whole (a dark 3 x 3 module square alone
   in a light 5 x 5 one): three found so (kiosk.camera.quietzone) give the code's place,
   and the quiet zone is painted back beside each, outside its outer ring, on its two
   sides away from the code; dark-on-light, then light-on-dark; zxing-cpp.
   Where it reads: 2-5 ms on an x86 core (12 ms when read on the light-on-dark pass);
   on a blurred code's region: median 1-2 ms, at most 18 ms.
11. "outlined": held far off the camera's axis in both directions, the far side's modules
   are about 2 px and the finders misplace the code's corners or find none. The dark
   modules are the holes of the light screen around them: their hull, as a quadrilateral
   (kiosk.camera.outline), is the code's outline in perspective; the code straightened
   from it as in 4., dark-on-light, then light-on-dark; zxing-cpp. Where it
   reads: 2-5 ms; on a blurred code's region: median 1-3 ms, at most 11 ms.
12. "stretched": a phone's screen turned down, its light and dark modules a few tens of
   gray levels apart: zxing-cpp's binarizer takes an 8 x 8 block whose range is under 24
   levels for flat (MIN_DYNAMIC_RANGE, core/src/HybridBinarizer.cpp). The busy cells of
   such a code are few and make regions that each cut it; their union, denoised (Gaussian,
   sigma 1 px) and its darker part (below Otsu's threshold: the camera is exposed for the
   room, the screen is the darkest thing in view) stretched to 0-255; zxing-cpp. One
   zxing-cpp call on the union box.
13. "deblurred": a phone moving during the exposure smears the code along a line. Its
   direction and length are measured on the region (kiosk.camera.deblur.smear), undone by
   a Wiener filter, then zxing-cpp and zbar read; 1 px longer and shorter and 4 degrees
   either way are tried too (5 tries). 5-40 ms on an x86 core, by the region's size.
14. "refocused": where the region has no direction of blur, a lens out of focus: Gaussians
   of sigma 1.3-3.7 px, then discs of radius 3-6 px, undone the same way (9 tries).
   With `climb_every`, 9-14 are part of the climb whose cost sets the wait before the next.

What each step added when it came, and what was tried and dropped: docs/performance.md
("QR decoding: the ladder's history").
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

import cv2
import numpy as np
import zxingcpp
from pyzbar import pyzbar

from kiosk.camera.deblur import Deconvolver, busy_regions, disc_psf, gaussian_psf, line_psf, smear
from kiosk.camera.outline import code_outline
from kiosk.camera.quietzone import restored

QR = [pyzbar.ZBarSymbol.QRCODE]
# The smear as measured, then 1 px longer and shorter, then turned 4 degrees either way
# (px, degrees): the measure is within about 1 px and 5 degrees.
SMEAR_TRIES = ((0, 0), (1, 0), (-1, 0), (0, -4), (0, 4))
# Defocus tried: Gaussians of sigma 1.3-3.7 px, 1.3x apart (narrower is the unsharp
# mask's), then discs of radius 3-6 px (a lens well out of focus).
FOCUS_TRIES = tuple(partial(gaussian_psf, sigma) for sigma in (1.3, 1.7, 2.2, 2.9, 3.7)) \
    + tuple(partial(disc_psf, radius) for radius in (3, 4, 5, 6))
CLIMB_SHARE = 3      # with climb_every: climbs wait 3x their own cost (at most 1/4 of the time)


def _sharpen(gray, sigma: float, amount: float):
    """Unsharp mask: gray + amount * (gray - gaussian(gray, sigma)), saturated to 0..255."""
    return cv2.addWeighted(gray, 1 + amount, cv2.GaussianBlur(gray, (0, 0), sigma), -amount, 0)


def _given(image):
    """`image` itself: a ladder step whose picture is already made."""
    return image


def _around(box, shape):
    """`box` (x0, y0, x1, y1) with a margin of an eighth of its size and at least 16 px
    (the quiet zone, and the smear reaching past the code), within a frame of `shape`."""
    x0, y0, x1, y1 = box
    h, w = shape
    mx, my = max(16, (x1 - x0) // 8), max(16, (y1 - y0) // 8)
    return max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)


def _apart(regions):
    """`regions` ((box, deblur) pairs) without those whose box's centre lies in an earlier
    box (the finder finds the same code on the frame and on its sharpened copy)."""
    kept: list = []
    for box, deblur in regions:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        if not any(k[0] <= cx <= k[2] and k[1] <= cy <= k[3] for k, _ in kept):
            kept.append((box, deblur))
    return kept


def _longest_side(quad) -> float:
    return float(max(np.linalg.norm(quad[i] - quad[(i + 1) % 4]) for i in range(4)))


class QRDecoder:
    """Frame -> QR payloads (bytes, as decoded; binary payloads are not mangled).

    Keeps where the last code was read (`remember` frames) for step 8; one decoder per
    camera. :attr:`steps` counts the step that read each frame, :attr:`cpu` the CPU seconds
    of each stage (gray, zxing, finder, zbar, straighten), as the camera thread's health
    reports them.

    :param int max_payload: Longest payload returned, in bytes; longer ones are dropped.
    :param int remember: How many frames after a read step 8 still looks where the code was.
    :param float climb_every: Seconds between two climbs past step 1 (0 = every frame): at a
        door a presentation lasts seconds, and on a slow core the later steps on every frame
        would leave the newest frames unread while the phone steadies.
    """

    def __init__(self, max_payload: int = 4096, remember: int = 15, climb_every: float = 0.0):
        self.max_payload = max_payload
        self.remember = remember
        self.climb_every = climb_every
        self._climbed: float | None = None     # when the steps after the first last ran
        self._climb_cost: float | None = None  # how long that took (until the next call)
        self._finder = cv2.QRCodeDetectorAruco()
        params = self._finder.getArucoParameters()
        params.detectInvertedMarker = True        # dark-mode phones: light modules on black
        params.adaptiveThreshWinSizeMin = 6       # threshold windows 6, 14, 22 (default 3, 13, 23)
        params.adaptiveThreshWinSizeStep = 8
        self._finder.setArucoParameters(params)
        self._last: tuple[int, int, int, int] | None = None   # x0, y0, x1, y1 of the last code read
        self._since = 0                                        # frames since it was read
        self.steps: Counter = Counter()          # which step read the code (for the benchmark)
        self.cpu: defaultdict[str, float] = defaultdict(float)   # CPU seconds by stage (gray, zbar, zxing, finder, ...)

    def decode(self, image, t: float | None = None) -> list[bytes]:
        """Read the QR codes in one frame; returns their payloads, each once, in reading order.

        :param numpy.ndarray image: The frame, BGR (height x width x 3) or grayscale
            (height x width), 8 bits per channel.
        :param float t: The frame's time in seconds (time.monotonic() when None); with
            `climb_every` > 0, the steps after zxing-cpp run on a frame only when they last
            ran at least `climb_every` seconds before.
        :returns: The payloads as decoded bytes; empty when no step of the ladder read one.
        """
        start = time.thread_time()
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        self.cpu["gray"] += time.thread_time() - start
        self._since += 1
        climb = True
        if self.climb_every > 0:
            t = time.monotonic() if t is None else t
            if self._climbed is not None:
                if self._climb_cost is None:
                    # The last climb took until this call: later climbs wait CLIMB_SHARE times
                    # as long, so they take at most a quarter of the loop's time on any core.
                    self._climb_cost = t - self._climbed
                climb = t - self._climbed >= max(self.climb_every, CLIMB_SHARE * self._climb_cost)
            if climb:
                self._climbed, self._climb_cost = t, None
        found, step, where = self._ladder(gray, climb)
        self.steps[step] += 1
        if found:
            self._last, self._since = where, 0
        return found

    def _timed(self, stage: str, work, *args):
        start = time.thread_time()
        try:
            return work(*args)
        finally:
            self.cpu[stage] += time.thread_time() - start

    def _ladder(self, gray, climb: bool = True):
        found, where = self._zxing(gray)
        if found:
            return found, "zxing", where
        if not climb:
            return [], "none", None
        blur = self._timed("finder", cv2.GaussianBlur, gray, (0, 0), 2)
        sharp = self._timed("finder", cv2.addWeighted, gray, 3, blur, -2, 0)   # _sharpen(gray, 2, 2)
        seen = False
        boxes = []                              # where the finder saw a code
        for picture in (gray, sharp):
            quad = self._find(picture)
            if quad is None:
                continue
            where = self._box(quad)
            boxes.append(_around(where, gray.shape))
            if not seen:
                symbols = self._symbols(gray)
                found = self._payloads(symbols)
                if found:
                    return found, "gray", self._box(np.concatenate([s.polygon for s in symbols]))
            square = self._timed("straighten", self._rectified, gray, quad, 1)
            steps: list[tuple[str, Callable[[], Any], bool]] = [
                ("rectified", partial(_given, square), True),
                ("sharpened", partial(self._timed, "straighten", self._sharpened, gray, quad), True),
                ("re-rectified", partial(self._again, square), False)]
            if not seen:                        # the whole sharpened frame: once, not per find
                steps.append(("sharpened frame", lambda: sharp, False))
            seen = True
            for step, read, both in steps:
                picture = read()
                found = self._payloads(self._symbols(picture))
                if found:
                    return found, step, where
                if both:
                    found, _ = self._zxing(picture)
                    if found:
                        return found, f"{step} (zxing)", where
        if not seen and self._last is not None and self._since <= self.remember:
            x0, y0, x1, y1 = self._last
            h, w = gray.shape
            mx, my = (x1 - x0) // 4, (y1 - y0) // 4
            x0, y0, x1, y1 = max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)
            found = self._payloads(self._symbols(sharp[y0:y1, x0:x1]))
            if found:
                return found, "last location", self._last
            boxes.append((x0, y0, x1, y1))
        # The regions, each with whether the deblurring steps may take it (whose cost grows
        # with the region's size).
        regions = [(box, True) for box in boxes]
        busy: list = []
        if not seen:
            # A smeared code hides its finder patterns from the finder; it is still as busy
            # as a code (and an empty doorway is not: on the corpus's empty frames this is
            # all that runs, about 0.1 ms at 640x480).
            busy = self._timed("deblur", busy_regions, gray, blur)
            # Boxes over half the frame (a code held close and turned) only to the cheap
            # steps: a busy scene's would send every climb through the deconvolutions.
            regions[:0] = [(box, True) for box, compact in busy if compact][:2] \
                + [(box, False) for box, compact in busy if not compact]
        regions = _apart(regions)[:2]
        for box, _ in regions:
            for attempt in (self._enlarged, self._quiet, self._outlined):
                found, step = attempt(gray, box)
                if found:
                    return found, step, box
        spread = [region for region, _ in busy] or [box for box, _ in regions]
        if spread:
            # A dim code's busy cells are few and split into regions that each cut the code
            # (the finder's boxes, where it saw a code, are its guesses): their union holds it.
            corners = np.array(spread)
            box = tuple(int(v) for v in (*corners[:, :2].min(axis=0), *corners[:, 2:].max(axis=0)))
            found, step = self._stretched(gray, box)
            if found:
                return found, step, box
        for box, deblur in regions:
            if deblur:
                found, step = self._deblurred(gray, box)
                if found:
                    return found, step, box
        return [], "none", None

    def _enlarged(self, gray, box):
        """Payloads zxing-cpp reads in `box` of `gray` enlarged 1.5x (bicubic): at a steep
        keystone the far side's modules are under 2 px, too few for its binarizer."""
        x0, y0, x1, y1 = box
        region = gray[y0:y1, x0:x1]
        if min(region.shape) < 32:
            return [], None
        found, _ = self._zxing(self._timed("straighten", cv2.resize, region, None, None, 1.5, 1.5, cv2.INTER_CUBIC))
        return found, "enlarged (zxing)"

    def _quiet(self, gray, box):
        """Payloads zxing-cpp reads in `box` of `gray` once the quiet zone is painted back
        beside the three finder patterns found by their centres (a phone's status bar or
        panel drawn up to the code)."""
        x0, y0, x1, y1 = box
        return self._either_polarity(gray[y0:y1, x0:x1], lambda region, polarity: self._timed(
            "finder", restored, region, polarity), "quiet zone (zxing)")

    def _outlined(self, gray, box):
        """Payloads zxing-cpp reads in `box` of `gray` straightened from the code's outline
        (the hull of its modules on their light screen)."""
        def straightened(region, polarity):
            quad = self._timed("finder", code_outline, region, polarity)
            return None if quad is None else self._timed("straighten", self._rectified, region, quad, 1)
        x0, y0, x1, y1 = box
        return self._either_polarity(gray[y0:y1, x0:x1], straightened, "outlined (zxing)")

    def _either_polarity(self, region, picture, step: str):
        """(payloads zxing-cpp reads in `picture(region, polarity)`, `step`): dark modules on
        light first, then light on dark (a phone in dark mode); `picture` gives None where
        it finds nothing to read."""
        for polarity in ("dark", "light"):
            made = picture(region, polarity)
            if made is not None:
                found, _ = self._zxing(made)
                if found:
                    return found, step
        return [], None

    def _stretched(self, gray, box):
        """Payloads zxing-cpp reads in `box` of `gray` denoised (Gaussian, sigma 1 px) with its
        darker part (below Otsu's threshold) stretched to 0-255: a dim screen's light and dark
        modules a few tens of gray levels apart, which zxing-cpp's binarizer takes for flat."""
        x0, y0, x1, y1 = box
        region = gray[y0:y1, x0:x1]
        if min(region.shape) < 32:
            return [], None
        smooth = self._timed("straighten", cv2.GaussianBlur, region, (0, 0), 1)
        # A camera exposed for the room: a screen turned down is the darkest thing in view,
        # and its code spans only the lower part of the gray levels.
        top, _ = cv2.threshold(smooth, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        low = int(smooth.min())
        if top <= low:
            return [], None
        stretched = cv2.convertScaleAbs(smooth, alpha=255 / (top - low), beta=-255 * low / (top - low))
        found, _ = self._zxing(stretched)
        return found, "stretched (zxing)"

    def _deblurred(self, gray, box):
        """Payloads read in `box` of `gray` once its blur is undone (Wiener), and the step's
        name: a linear motion blur measured there ("deblurred"), or where the region has no
        direction of blur, a defocus tried at a few widths ("refocused")."""
        x0, y0, x1, y1 = box
        region = gray[y0:y1, x0:x1]
        if min(region.shape) < 32:
            return [], None
        measured = self._timed("deblur", smear, region)
        if measured is None:
            step, blurs = "refocused", list(FOCUS_TRIES)
        else:
            angle, length, _ = measured
            step = "deblurred"
            blurs = [partial(line_psf, max(2, length + dl), angle + da) for dl, da in SMEAR_TRIES]
        undo = self._timed("deblur", Deconvolver, region)
        for blur in blurs:
            picture = self._timed("deblur", lambda b: undo.undo(b()), blur)
            found, _ = self._zxing(picture)
            if found:
                return found, f"{step} (zxing)"
            found = self._payloads(self._symbols(picture))
            if found:
                return found, step
        return [], None

    def _sharpened(self, gray, quad):
        """The code straightened at twice its size, unsharp-masked (sigma 4, amount 2)."""
        return _sharpen(self._rectified(gray, quad, 2), 4, 2)

    def _zxing(self, gray):
        """Payloads zxing-cpp reads in `gray`, and the box around them."""
        if gray.size == 0:
            return [], None
        start = time.thread_time()
        try:
            results = zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode)
        finally:
            self.cpu["zxing"] += time.thread_time() - start
        found = self._payloads(r.bytes for r in results)
        if not found:
            return [], None
        corners = [(p.x, p.y) for r in results for p in (r.position.top_left, r.position.top_right,
                                                           r.position.bottom_right, r.position.bottom_left)]
        return found, self._box(corners)

    def _find(self, gray):
        """Corners of a code found by OpenCV's finder, or None."""
        start = time.thread_time()
        try:
            ok, points = self._finder.detect(gray)
        except cv2.error:
            return None
        finally:
            self.cpu["finder"] += time.thread_time() - start
        if not ok or points is None:
            return None
        quad = points.reshape(-1, 4, 2)[0].astype(np.float32)
        return None if _longest_side(quad) < 21 else quad

    def _again(self, square):
        """The straightened square straightened a second time from the finder's corners on it
        (the finder guesses the corner without a finder pattern; on the square it guesses
        better); empty when the finder finds nothing there."""
        quad = self._find(square)
        return square[:0] if quad is None else self._rectified(square, quad, 1)

    @staticmethod
    def _box(points):
        xs, ys = np.asarray(points, dtype=np.float32).reshape(-1, 2).T
        return int(xs.min()), int(ys.min()), int(np.ceil(xs.max())) + 1, int(np.ceil(ys.max())) + 1

    @staticmethod
    def _rectified(gray, quad, scale: float):
        """The code warped to an upright square `scale` times its longest side, with a quiet
        zone, dark modules on light (dark-mode codes are inverted back)."""
        side = int(scale * _longest_side(quad))
        margin = side // 8
        target = np.array([[margin, margin], [margin + side, margin], [margin + side, margin + side],
                           [margin, margin + side]], np.float32)
        m = cv2.getPerspectiveTransform(quad, target)
        square = cv2.warpPerspective(gray, m, (side + 2 * margin, side + 2 * margin),
                                     flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        # The quiet zone: a thin ring just outside the code (the outer margin of a tilted
        # code reaches past the phone's screen or the paper into the background).
        a, b = margin - max(2, side // 40), margin - 1
        ring = np.concatenate([square[a:b, a:-a].ravel(), square[-b:-a, a:-a].ravel(),
                               square[a:-a, a:b].ravel(), square[a:-a, -b:-a].ravel()])
        if ring.mean() < square[margin:-margin, margin:-margin].mean():
            square = cv2.bitwise_not(square)
        return square

    def _symbols(self, gray):
        if gray.size == 0:
            return []
        start = time.thread_time()
        try:
            return pyzbar.decode(gray, symbols=QR)
        finally:
            self.cpu["zbar"] += time.thread_time() - start

    def _payloads(self, symbols) -> list[bytes]:
        """The payloads (pyzbar symbols, or bytes) within max_payload, each once."""
        out = []
        for symbol in symbols:
            data = symbol if isinstance(symbol, bytes) else symbol.data
            if len(data) <= self.max_payload and data not in out:
                out.append(data)
        return out


class PresentationFilter:
    """Report each payload once per presentation.

    A payload seen again within `cooldown` seconds of its last sighting is the same
    presentation (a visitor holding a phone up for five seconds); after a longer absence it
    is a new one.

    :param float cooldown: Seconds of absence after which a payload counts as new.
    """

    def __init__(self, cooldown: float = 2.0):
        self.cooldown = cooldown
        self._last_seen: dict[bytes, float] = {}

    def new(self, payloads: list[bytes], t: float) -> list[bytes]:
        """The payloads of this frame that start a new presentation.

        :param list payloads: The payloads read in the frame (from :meth:`QRDecoder.decode`).
        :param float t: The frame's time in seconds, on a clock that does not step (the
            frame's monotonic time; UNIX seconds where it has none).
        :returns: The payloads not seen within `cooldown` seconds before `t`.
        """
        fresh = []
        for payload in payloads:
            last = self._last_seen.get(payload)
            # Seen "later" than now: the clock stepped back since (a Pi without a real-time
            # clock, NTP arriving); how long ago is unknown, so it is a new presentation.
            if last is None or t - last > self.cooldown or t < last:
                fresh.append(payload)
            self._last_seen[payload] = t
        # Forget what left the view long ago (or was seen before a step back) so memory stays bounded.
        for payload in [p for p, seen in self._last_seen.items() if t - seen > self.cooldown or seen > t]:
            del self._last_seen[payload]
        return fresh
