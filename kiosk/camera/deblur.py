"""Blind deblurring of one region of a frame, for the decoder's "deblurred" and "refocused"
steps, and the busy regions where a code may be.

A phone moving during the exposure smears the code along a straight line (10-30 ms is
too short for the path to bend), so the blur is a box along one direction of unknown
length and angle. Both are measured on the region itself: the direction is the one along
which the region varies least (the smallest eigenvector of its gradients' structure
tensor; a code's own edges run both ways equally, so without blur the tensor is round),
the length is where the autocorrelation of the derivative along that direction dips (a
box of length L turns each edge into a pair of opposite steps L apart; the dip is looked
for within 10 degrees of that direction too). A Wiener filter with that line then undoes
the smear. A lens out of focus has no direction: the decoder tries a few Gaussians and
discs instead (gaussian_psf, disc_psf). Pure numpy and OpenCV; no decoding here.
"""
from __future__ import annotations

import cv2
import numpy as np

CELL = 8              # px: side of the cells of the detail map (code_regions)
LONGEST = 24          # px: the longest smear measured (a phone crossing a 640 px frame in 2/3 s, 1/40 s exposure)
NSR = 0.005           # the Wiener filter's noise-to-signal power ratio


def code_regions(gray, blur, level: float = 6.0, smallest: int = 16, most: int = 2):
    """Boxes around areas as busy as a code whose box is at most half the frame (the
    regions the deblurring steps may take), largest first.

    :param numpy.ndarray gray: The frame, 8-bit grayscale.
    :param numpy.ndarray blur: The frame Gaussian-blurred (the decoder's sigma 2 copy).
    :param float level: Gray levels (of 255) of mean detail for a cell to count.
    :param int smallest: Fewest cells of a region (16 cells: 32 x 32 px at 8 px cells).
    :param int most: Most regions returned.
    :returns: Up to `most` boxes (x0, y0, x1, y1) in frame pixels (see busy_regions).
    """
    return [box for box, compact in busy_regions(gray, blur, level, smallest) if compact][:most]


def busy_regions(gray, blur, level: float = 6.0, smallest: int = 16):
    """Areas as busy as a code: cells of CELL x CELL px whose mean absolute difference from
    `blur` is at least `level`, joined where they touch; those of at most half the frame's
    cells, largest first, each with whether its box is at most half the frame.

    :param numpy.ndarray gray: The frame, 8-bit grayscale.
    :param numpy.ndarray blur: The frame Gaussian-blurred (the decoder's sigma 2 copy).
    :param float level: Gray levels (of 255) of mean detail for a cell to count.
    :param int smallest: Fewest cells of a region (16 cells: 32 x 32 px at 8 px cells).
    :returns: (box, compact) pairs: box (x0, y0, x1, y1) in frame pixels, with a margin of
        one cell and the longest smear around the cells; compact when the cells' box covers
        at most half the frame.
    """
    h, w = gray.shape
    hc, wc = h // CELL, w // CELL
    # One row of each cell (its middle): a code is busy on all its rows, and this runs on
    # every frame the finder finds nothing in. Cell means from the integral image
    # (OpenCV's INTER_AREA resize of all rows took 0.3 ms at 640x480; this 0.03).
    rows = (slice(CELL // 2, hc * CELL, CELL), slice(0, wc * CELL))
    total = cv2.integral(cv2.absdiff(gray[rows], blur[rows]))[:, ::CELL]
    cells = ((total[1:, 1:] - total[:-1, 1:] - total[1:, :-1] + total[:-1, :-1]) // CELL).astype(np.uint8)
    busy = (cells >= level).astype(np.uint8)
    if int(busy.sum()) < smallest:
        return []
    # Sensor noise makes every cell a little busy: a code must stand well above the
    # frame's calm cells (its quietest quarter: a phone held close fills half the frame).
    typical = int(np.searchsorted(np.cumsum(np.bincount(cells.ravel(), minlength=256)), cells.size // 4))
    if 3 * typical > level:
        busy = (cells >= 3 * typical).astype(np.uint8)
    # A smeared code has calm streaks inside it (along the smear): closing joins them.
    busy = cv2.morphologyEx(busy, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(busy, connectivity=8)
    # More than half the frame's cells busy: a busy scene (a shelf, a poster), not a phone's
    # code. A code held close and turned fills its box only in part (a trapezoid, about half
    # of it): its box may cover more than half the frame; compact says which.
    half = busy.size // 2
    found = sorted((int(stats[i, cv2.CC_STAT_AREA]), i) for i in range(1, n)
                   if smallest <= stats[i, cv2.CC_STAT_AREA] <= half)[::-1]
    margin = CELL + LONGEST // 2
    regions = []
    for _, i in found:
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        regions.append(((max(0, x * CELL - margin), max(0, y * CELL - margin),
                         min(w, (x + bw) * CELL + margin), min(h, (y + bh) * CELL + margin)),
                        bw * bh <= half))
    return regions


def smear(region):
    """The direction and length of a linear motion blur in `region`, or None when its
    gradients run every way alike (no smear to undo).

    :param numpy.ndarray region: 8-bit grayscale, at least 32 x 32 px.
    :returns: (angle in degrees, 0-180, x to the right and y down; length in px,
        2..LONGEST; anisotropy, the smaller over the larger eigenvalue, 0..1), or None.
    """
    g = region.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    jxx, jyy, jxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    spread = float(np.hypot(jxx - jyy, 2 * jxy))
    if jxx + jyy <= 0:
        return None
    anisotropy = (jxx + jyy - spread) / (jxx + jyy + spread)
    if anisotropy > 0.8:
        return None
    # The direction of the largest gradients, turned 90 degrees: the smear's.
    angle = (0.5 * np.degrees(np.arctan2(2 * jxy, jxx - jyy)) + 90) % 180
    t = np.deg2rad(angle)
    d = np.float32(np.cos(t)) * cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=1) \
        + np.float32(np.sin(t)) * cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=1)
    d -= d.mean()
    spectrum = np.fft.rfft2(d)
    auto = np.fft.fftshift(np.fft.irfft2(np.abs(spectrum) ** 2, s=d.shape)).astype(np.float32)
    cy, cx = d.shape[0] // 2, d.shape[1] // 2
    if auto[cy, cx] <= 0:
        return None
    # The dip, looked for within 10 degrees of that direction too (a code's own edges pull
    # the tensor's direction by up to about 5 degrees).
    lags = np.arange(1, LONGEST + 1, dtype=np.float32)[None, :]
    turns = np.deg2rad(angle + np.arange(-10, 11, 2, dtype=np.float32))[:, None]
    around = cv2.remap(auto, (cx + np.cos(turns) * lags).astype(np.float32),
                       (cy + np.sin(turns) * lags).astype(np.float32), cv2.INTER_LINEAR)
    turn, lag = np.unravel_index(int(np.argmin(around)), around.shape)
    length = lag + 1
    if length < 2:
        return None
    return float((np.degrees(turns[turn, 0])) % 180), int(length), float(anisotropy)


def line_psf(length: float, angle: float):
    """A box blur `length` px long at `angle` degrees (x right, y down), anti-aliased,
    summing to 1, in an odd square."""
    n = (int(np.ceil(length)) | 1) + 2
    c = (n - 1) / 2
    s = np.linspace(-(length - 1) / 2, (length - 1) / 2, max(2, int(length * 8)))
    x, y = c + s * np.cos(np.deg2rad(angle)), c + s * np.sin(np.deg2rad(angle))
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    psf = np.zeros((n + 1, n + 1), np.float64)
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                           (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(psf, (y0 + dy, x0 + dx), weight)
    psf = psf[:n, :n]
    return psf / psf.sum()


class Deconvolver:
    """Wiener deconvolution of one region by several blurs, its spectrum taken once.

    :param numpy.ndarray region: 8-bit grayscale.
    :param int margin: Pixels of mirrored border added around it (at least the blur's
        length: the filter treats the picture as periodic, and a hard seam rings).
    """

    def __init__(self, region, margin: int = LONGEST):
        self.margin = margin
        h, w = region.shape
        # Sizes of small prime factors: the FFT of 300 x 300 px takes a third of 307 x 307's.
        bottom = cv2.getOptimalDFTSize(h + 2 * margin) - h - margin
        right = cv2.getOptimalDFTSize(w + 2 * margin) - w - margin
        padded = cv2.copyMakeBorder(region, margin, bottom, margin, right, cv2.BORDER_REFLECT)
        self.size = (h, w)
        self.shape = padded.shape
        self.spectrum = np.fft.rfft2(padded.astype(np.float32))

    def undo(self, psf, nsr: float = NSR):
        """The region with `psf` undone.

        :param numpy.ndarray psf: The blur (odd square, sums to 1).
        :param float nsr: Noise-to-signal power ratio of the Wiener filter (larger: less
            ringing, less sharpening).
        :returns: 8-bit grayscale, the region's size.
        """
        h, w = self.shape
        k = psf.shape[0]
        pad = np.zeros((h, w), np.float32)
        pad[:k, :k] = psf
        otf = np.fft.rfft2(np.roll(pad, (-(k // 2), -(k // 2)), (0, 1)))
        out = np.fft.irfft2(self.spectrum * np.conj(otf) / (np.abs(otf) ** 2 + nsr), s=(h, w))
        m = self.margin
        return np.clip(out[m:m + self.size[0], m:m + self.size[1]], 0, 255).astype(np.uint8)


def gaussian_psf(sigma: float):
    """A Gaussian blur of `sigma` px (a lens a little out of focus, with its aberrations),
    in an odd square of +-3 sigma, summing to 1."""
    g = cv2.getGaussianKernel(2 * int(np.ceil(3 * sigma)) + 1, sigma)
    return g @ g.T


def disc_psf(radius: float):
    """A uniform disc of `radius` px, anti-aliased, summing to 1: a lens well out of focus
    (each point spreads over the image of its aperture)."""
    n = 2 * int(np.ceil(radius)) + 3
    # Each pixel's share of the disc, from 8 x 8 samples within it.
    fine = (np.arange(8 * n) + 0.5) / 8 - n / 2
    inside = (fine[:, None] ** 2 + fine[None, :] ** 2 <= radius ** 2).astype(np.float32)
    psf = inside.reshape(n, 8, n, 8).sum(axis=(1, 3))
    return psf / psf.sum()

