"""A code's outline from its modules, for the decoder's "outlined" step.

Held far off the camera's axis in both directions, a code's far side has modules of about
2 px: zxing-cpp's and OpenCV's finders then misplace its corners or find none (zxing-cpp
locates a smaller false grid inside it and fails its checksum), while the code is still
plain to see as a dark-and-light patch on its light screen or paper. Its dark modules are
the holes of that light area; the quadrilateral around them is the code's outline in
perspective, from which it is straightened. Pure numpy and OpenCV; no decoding here.
"""
from __future__ import annotations

import cv2
import numpy as np


def code_outline(region, polarity: str = "dark"):
    """The corners of the code in `region` (its dark modules' hull as a quadrilateral), or None.

    :param numpy.ndarray region: 8-bit grayscale around one code.
    :param str polarity: "dark" for dark modules on a light screen, "light" for a phone in
        dark mode.
    :returns: 4 x 2 float32 corners (px, in `region`), clockwise on screen from the top
        left-most, or None where no light area encloses a patch of modules.
    """
    if min(region.shape) < 32:
        return None
    flags = cv2.THRESH_OTSU + (cv2.THRESH_BINARY if polarity == "dark" else cv2.THRESH_BINARY_INV)
    _, light = cv2.threshold(region, 0, 255, flags)
    contours, hierarchy = cv2.findContours(light, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return None
    links = hierarchy[0]             # next, previous, first child, parent
    # The light area with the most enclosed dark (its holes): the screen or paper around
    # the code, whose holes are the code's dark modules (the quiet zone joins the light
    # modules to it).
    best, most = None, 0.0
    for i in range(len(contours)):
        if links[i][3] != -1:
            continue
        holes, child = [], links[i][2]
        while child != -1:
            holes.append(contours[child])
            child = links[child][0]
        enclosed = sum(cv2.contourArea(h) for h in holes)
        if enclosed > most:
            best, most = holes, enclosed
    # A code has hundreds of dark patches; a few holes are text or a screen's icons.
    if best is None or len(best) < 20:
        return None
    hull = cv2.convexHull(np.concatenate(best))
    if cv2.contourArea(hull) < 400:
        return None
    quad = _quadrilateral(hull)
    h, w = region.shape
    # Corners far outside the region: sides that are not the code's.
    if quad is None or (quad < [-w / 4, -h / 4]).any() or (quad > [1.25 * w, 1.25 * h]).any():
        return None
    return quad


def _quadrilateral(hull):
    """The 4 corners where the 4 longest sides of `hull`, simplified, meet (a code whose
    corner modules are light has a cut corner; its sides still run to the true corner)."""
    poly = cv2.approxPolyDP(hull, 0.02 * cv2.arcLength(hull, True), True).reshape(-1, 2).astype(np.float64)
    if len(poly) < 4:
        return None
    sides = [(poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly))]
    longest = sorted(sorted(range(len(sides)), key=lambda i: -np.linalg.norm(sides[i][1] - sides[i][0]))[:4])
    corners = []
    for k in range(4):
        (a0, a1), (b0, b1) = sides[longest[k]], sides[longest[(k + 1) % 4]]
        da, db = a1 - a0, b1 - b0
        cross = da[0] * db[1] - da[1] * db[0]
        # Nearly parallel neighbours: not a quadrilateral's corner.
        if abs(cross) < 0.2 * np.linalg.norm(da) * np.linalg.norm(db):
            return None
        t = ((b0 - a0)[0] * db[1] - (b0 - a0)[1] * db[0]) / cross
        corners.append(a0 + t * da)
    quad = np.array(corners, np.float32)
    # Clockwise on screen (y down) from the corner nearest the top left.
    (ax, ay), (bx, by) = quad[1] - quad[0], quad[2] - quad[1]
    if ax * by - ay * bx < 0:
        quad = quad[::-1]
    first = int(np.argmin(quad.sum(1)))
    return np.roll(quad, -first, axis=0)
