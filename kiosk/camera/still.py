"""A still picture from a file (`kiosk decode`, `kiosk verify --image`), refused before it is
decoded when its header says it is larger than a pixel budget.

A PNG of 30000x30000 zero pixels is under 1 MB on disk and took 32 s and 7.99 GB to decode
(OpenCV's own limit, OPENCV_IO_MAX_IMAGE_PIXELS, defaults to 2^30 pixels). The header is
read here for PNG, JPEG, GIF, BMP and WebP; for any other format, OpenCV's limit is lowered
to the same budget, when that can still take effect (see `limit_opencv`). The camera's
frames do not pass through here.
"""
from __future__ import annotations

import os
import struct
import sys

from ..exc import KioskError

__all__ = ["MAX_PIXELS", "ImageRefused", "ImageTooLarge", "limit_opencv", "pixel_size", "read"]

# 25 MP: a 24 MP camera photo passes. Measured with `kiosk decode` on this machine: a 24 MP
# photo peaks at 371 MB and takes 3.6 s, a 48 MP one 648 MB and 7.3 s.
MAX_PIXELS = 25_000_000
# JPEG: segments read before giving up on finding the frame header (EXIF, ICC come first).
_MAX_SEGMENTS = 512
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageRefused(KioskError, ValueError):
    """A picture cannot be read."""


class ImageTooLarge(ImageRefused):
    """A picture is larger than the pixel budget."""


def limit_opencv(max_pixels: int = MAX_PIXELS) -> bool:
    """Lower OpenCV's own pixel limit (OPENCV_IO_MAX_IMAGE_PIXELS) to `max_pixels`.

    OpenCV reads the variable once, when the library loads: this takes effect only before
    the first `import cv2` in the process.

    :returns: whether the limit can still take effect.
    """
    if "cv2" in sys.modules:
        return False
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(int(max_pixels))
    return True


def _png(head: bytes):
    if head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def _gif(head: bytes):
    return struct.unpack("<HH", head[6:10])


def _bmp(head: bytes):
    if len(head) < 26:
        return None
    if struct.unpack("<I", head[14:18])[0] == 12:               # OS/2 BITMAPCOREHEADER
        return struct.unpack("<HH", head[18:22])
    width, height = struct.unpack("<ii", head[18:26])
    return abs(width), abs(height)                               # negative height: top-down rows


def _webp(head: bytes):
    kind = head[12:16]
    if kind == b"VP8X":
        return (int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1)
    if kind == b"VP8L" and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg(f):
    f.seek(2)
    for _ in range(_MAX_SEGMENTS):
        byte = f.read(1)
        while byte and byte != b"\xff":                         # tolerate junk between segments
            byte = f.read(1)
        marker = f.read(1)
        while marker == b"\xff":                                # fill bytes
            marker = f.read(1)
        if not marker:
            return None
        code = marker[0]
        if code in (0x01,) or 0xD0 <= code <= 0xD7:            # markers without a length
            continue
        if code in (0xD9, 0xDA):                                # end of image, start of scan
            return None
        length = f.read(2)
        if len(length) < 2:
            return None
        size = struct.unpack(">H", length)[0]
        if code in _JPEG_SOF:
            frame = f.read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return width, height
        f.seek(size - 2, os.SEEK_CUR)
    return None


def pixel_size(path) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, GIF, BMP or WebP file; None for other
    formats or a header that cannot be read."""
    with open(path, "rb") as f:
        head = f.read(32)
        try:
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                return _png(head)
            if head[:6] in (b"GIF87a", b"GIF89a"):
                return _gif(head)
            if head.startswith(b"BM"):
                return _bmp(head)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp(head)
            if head.startswith(b"\xff\xd8"):
                return _jpeg(f)
        except (struct.error, IndexError, ValueError, OSError):
            return None
    return None


def read(path, max_pixels: int = MAX_PIXELS):
    """The picture at `path` as a BGR array, refused before decoding when over the budget.

    :param max_pixels: the pixel budget (width x height).
    :raises ImageTooLarge: the picture is larger than the budget.
    :raises ImageRefused: the picture cannot be read.
    """
    import cv2

    try:
        size = pixel_size(path)
    except OSError as e:
        raise ImageRefused(f"cannot read image: {e.strerror}") from None
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageTooLarge(f"image too large: {size[0]}x{size[1]} pixels, over the budget of "
                           f"{max_pixels} pixels")
    try:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as e:
        # OpenCV's own check of the header, for the formats not read above.
        if "CV_IO_MAX_IMAGE_PIXELS" in str(e):
            raise ImageTooLarge("image too large for OpenCV's pixel budget of "
                                f"{os.environ.get('OPENCV_IO_MAX_IMAGE_PIXELS', 2**30)} pixels") from None
        raise ImageRefused("cannot read image") from None
    if image is None:
        raise ImageRefused("cannot read image")
    return image
