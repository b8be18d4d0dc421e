"""A code's quiet zone restored where a phone's screen draws over it, for the decoder's
"quiet zone" step.

A QR code needs a light margin of 4 modules around it (ISO/IEC 18004, the quiet zone). A
phone's status bar, notch or any dark panel drawn up to the code's edge takes it away on
that side: the outer dark ring of the finder patterns there merges with the panel, and the
finders of zxing-cpp, zbar and OpenCV, which check each finder pattern's 1:1:3:1:1 runs
across it or trace its outer ring, no longer see them. The panel cannot be told from the
code's own dark modules by its shape alone (a morphological opening narrower than the
finder's 7-module ring paints the ring's outer row away with the panel; a wider one misses
shallow panels). What the panel leaves whole is each finder pattern's centre: a dark 3 x 3
module square alone in a light 5 x 5 square. Found there, three finder patterns give the
code's place and module size, and the light margin is painted back just outside each
finder's outer ring, 4 modules wide, on its two sides away from the code. Pure numpy and
OpenCV; no decoding here.
"""
from __future__ import annotations

import itertools

import cv2
import numpy as np

QUIET = 4             # modules: the quiet zone painted back (ISO/IEC 18004)
GAP = 0.3             # modules: the panel left on a finder's ring (its edge is known to ~1 px)
MOST = 12             # finder-pattern candidates looked at, largest first


def finder_centres(binary):
    """Finder patterns by their centre alone: a dark blob that is the only thing inside a light
    hole of about 25/9 its area, both square and sharing a centre.

    :param numpy.ndarray binary: 8-bit, 255 where the code's modules are (dark ones for a
        code on a light screen).
    :returns: A list of (centre x, y in px; module size in px; hole corners, 4 x 2 px).
    """
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    links = hierarchy[0]            # next, previous, first child, parent
    found = []
    for i, blob in enumerate(contours):
        hole = links[i][3]
        # The blob is the hole's only child (an alignment pattern or a module cluster
        # inside a larger light area has siblings or the wrong proportions).
        if hole < 0 or links[hole][2] != i or links[i][0] != -1 or links[i][1] != -1:
            continue
        area, hole_area = cv2.contourArea(blob), cv2.contourArea(contours[hole])
        # 25/9 = 2.8 for a whole finder; the contours run through the boundary pixels'
        # centres (the blob's inside, the hole's outside), so small ones measure up to ~4.
        if area < 4 or not 1.8 < hole_area / area < 4.5:
            continue
        if area < 0.85 * cv2.contourArea(cv2.convexHull(blob)) \
                or hole_area < 0.85 * cv2.contourArea(cv2.convexHull(contours[hole])):
            continue
        (bx, by), (bw, bh), _ = cv2.minAreaRect(blob)
        rect = cv2.minAreaRect(contours[hole])
        (hx, hy), (hw, hh), _ = rect
        if max(bw, bh) > 1.5 * min(bw, bh) + 2 or max(hw, hh) > 1.4 * min(hw, hh) + 2:
            continue
        # A threshold too high or too low grows the blob as much as it shrinks the hole:
        # their sides (3 and 5 modules) add to 8 modules whatever the threshold.
        module = ((bw + bh) / 2 + 1 + (hw + hh) / 2 - 1) / 8
        if np.hypot(bx - hx, by - hy) > 0.5 * module:
            continue
        corners = cv2.boxPoints(((hx, hy), (hw - 1, hh - 1), rect[2]))
        found.append((np.array([hx, hy]), float(module), corners))
    found.sort(key=lambda f: -f[1])
    return found[:MOST]


def three_finders(found):
    """The three of `found` that sit as a code's finder patterns do: similar module sizes,
    at least 10 modules apart, two of them at right angles (within 60 degrees under
    perspective) from the third and at distances within 2x of each other.

    :returns: (the corner one, the other two) or None.
    """
    best = None
    for three in itertools.combinations(found, 3):
        modules = [f[1] for f in three]
        if max(modules) > 1.5 * min(modules):
            continue
        module = sum(modules) / 3
        for k in range(3):
            corner, a, b = three[k], three[(k + 1) % 3], three[(k + 2) % 3]
            u, v = a[0] - corner[0], b[0] - corner[0]
            lu, lv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
            if min(lu, lv) < 10 * module or max(lu, lv) > 2 * min(lu, lv):
                continue
            cos = abs(float(u @ v)) / (lu * lv)
            if cos > 0.5:
                continue
            score = cos + abs(np.log(lu / lv))
            if best is None or score < best[0]:
                best = (score, corner, (a, b))
    return None if best is None else (best[1], best[2])


def restored(region, polarity: str = "dark"):
    """`region` with the quiet zone painted back beside its code's three finder patterns, or
    None where three are not found.

    :param numpy.ndarray region: 8-bit grayscale around one code.
    :param str polarity: "dark" for dark modules on a light screen, "light" for a phone in
        dark mode.
    :returns: A new image, `region` padded by the quiet zone on every side (a code at the
        region's edge keeps its margin), or None.
    """
    if min(region.shape) < 32:
        return None
    flags = cv2.THRESH_OTSU + (cv2.THRESH_BINARY_INV if polarity == "dark" else cv2.THRESH_BINARY)
    _, binary = cv2.threshold(region, 0, 255, flags)
    three = three_finders(finder_centres(binary))
    if three is None:
        return None
    corner, others = three
    background = int(region[binary == 0].mean())
    pad = int(np.ceil((QUIET + 1) * max(f[1] for f in (corner, *others))))
    out = cv2.copyMakeBorder(region, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=background)
    centre = (others[0][0] + others[1][0]) / 2 + pad       # the code's middle
    for middle, module, hole in (corner, *others):
        middle, hole = middle + pad, hole + pad
        for i in range(4):
            # The hole's side i (corners i, i+1) and its outward normal; the finder's outer
            # edge is one module (the ring) beyond it, parallel.
            along = hole[(i + 1) % 4] - hole[i]
            normal = np.array([along[1], -along[0]]) / np.linalg.norm(along)
            if normal @ (hole[i] - middle) < 0:
                normal = -normal
            if normal @ (centre - middle) >= 0:
                continue                      # a side facing the code: its data is there
            edge = float(normal @ (hole[i] - middle)) + module
            direction = along / np.linalg.norm(along)
            half = float(np.linalg.norm(along)) / 2 + (1 + QUIET) * module
            near, far = middle + normal * (edge + GAP * module), middle + normal * (edge + QUIET * module)
            band = np.array([near - direction * half, near + direction * half,
                             far + direction * half, far - direction * half])
            cv2.fillConvexPoly(out, np.round(band * 16).astype(np.int32), background, cv2.LINE_8, 4)
    return out
