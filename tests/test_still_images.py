"""Pictures given to `kiosk decode` and `kiosk verify --image`: a decompression bomb (a PNG
under 1 MB that inflates to 30000x30000 pixels) is refused from its header, with a clear
error on its own JSON line, and the other pictures are still decoded. The commands run as
real processes, with their address space capped so that decoding the bomb would fail the
test rather than swap the machine.
"""
from __future__ import annotations

import json
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno

from kiosk.camera import still

ROOT = Path(__file__).resolve().parents[1]
# Far below the 7.99 GB the bomb took to decode, above what the kiosk needs to start.
ADDRESS_SPACE = 3 * 2**30


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid grayscale PNG of width x height zero pixels, compressed a block of rows at a
    time: the same compressed block is repeated (a full flush makes blocks independent), so
    building it costs one block's compression, not the image's."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = width + 1                                   # a filter byte, then the pixels
    rows_per_block = max(1, 8_000_000 // row)
    block = bytes(row * rows_per_block)
    blocks, rest = divmod(height, rows_per_block)
    tail_rows = bytes(row * rest)
    if blocks == 0:
        body = zlib.compress(tail_rows)
    else:
        z = zlib.compressobj(9)
        first = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
        again = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
        tail = z.compress(tail_rows) + z.flush(zlib.Z_FINISH)
        adler = 1
        for _ in range(blocks):
            adler = zlib.adler32(block, adler)
        adler = zlib.adler32(tail_rows, adler)
        body = first + again * (blocks - 1) + tail[:-4] + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png", 30000, 30000)


@pytest.fixture
def code_picture(tmp_path) -> Path:
    path = tmp_path / "pass.png"
    segno.make("KP1:STILL", error="m", micro=False).save(str(path), scale=6)
    return path


def _cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def kiosk(*args, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "KIOSK_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-c", "from kiosk.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=120, preexec_fn=_cap_memory)


def test_the_generated_bomb_is_a_real_png(tmp_path):
    small = cv2.imread(str(png_bomb(tmp_path / "small.png", 3000, 9000)), cv2.IMREAD_UNCHANGED)
    assert small.shape == (9000, 3000) and not small.any()


def test_kiosk_decode_refuses_the_bomb_and_decodes_the_next_picture(bomb, code_picture, tmp_path):
    assert bomb.stat().st_size < 1_000_000
    result = kiosk("decode", str(bomb), str(code_picture), tmp_path=tmp_path)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1, result.stderr
    assert lines[0] == {"image": str(bomb), "error": "image too large: 30000x30000 pixels, over the "
                                                     f"budget of {still.MAX_PIXELS} pixels"}
    assert lines[1]["image"] == str(code_picture) and lines[1]["payloads"] == [{"text": "KP1:STILL"}]


def test_kiosk_verify_refuses_the_bomb(bomb, tmp_path):
    result = kiosk("verify", "--image", str(bomb), tmp_path=tmp_path)
    out = json.loads(result.stdout)
    assert result.returncode == 1, result.stderr
    assert (out["status"], out["reasons"]) == ("unknown", ["image_too_large"])
    assert "30000x30000" in out["error"]


def test_a_format_without_a_header_reader_meets_opencvs_own_limit(tmp_path, code_picture):
    # TIFF: no header reader here; OpenCV's OPENCV_IO_MAX_IMAGE_PIXELS, set before it loads.
    tiff = tmp_path / "pass.tiff"
    assert cv2.imwrite(str(tiff), cv2.imread(str(code_picture)))
    assert still.pixel_size(tiff) is None
    result = kiosk("decode", "--max-pixels", "1000", str(tiff), tmp_path=tmp_path)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["error"] == "image too large for OpenCV's pixel budget of 1000 pixels"
    result = kiosk("decode", str(tiff), tmp_path=tmp_path)
    assert json.loads(result.stdout)["payloads"] == [{"text": "KP1:STILL"}]


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp"])
def test_the_header_gives_the_size_of_what_opencv_writes(tmp_path, ext):
    path = tmp_path / f"picture{ext}"
    assert cv2.imwrite(str(path), np.zeros((123, 457, 3), np.uint8))
    assert still.pixel_size(path) == (457, 123)


def test_a_jpeg_with_exif_before_its_frame_header(tmp_path):
    ok, jpeg = cv2.imencode(".jpg", np.zeros((40, 60, 3), np.uint8))
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 3000) + b"Exif\x00\x00" + bytes(2994)
    path = tmp_path / "exif.jpg"
    path.write_bytes(jpeg[:2].tobytes() + app1 + jpeg[2:].tobytes())
    assert still.pixel_size(path) == (60, 40)
    assert still.read(path).shape == (40, 60, 3)


def test_a_gif_header(tmp_path):
    path = tmp_path / "huge.gif"
    path.write_bytes(b"GIF89a" + struct.pack("<HH", 65535, 65535) + bytes(20))
    assert still.pixel_size(path) == (65535, 65535)
    with pytest.raises(still.ImageTooLarge):
        still.read(path)


def test_a_missing_or_unreadable_picture_is_refused(tmp_path):
    with pytest.raises(still.ImageRefused, match="cannot read image"):
        still.read(tmp_path / "absent.png")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a picture")
    with pytest.raises(still.ImageRefused, match="cannot read image"):
        still.read(garbage)
