"""QR decoding past the corpus's draws: the door's scenes pushed further than
kiosk/testing/qr_corpus.py draws them, for the ladder's steps 10 ("quiet zone") and 11
("outlined"), which the corpus meets only a few times.

- bars: the corpus's notch scene with a dark bar always drawn to the code's edge (its
  quiet zone gone on that side), on a random side of the code (a status bar, a side panel,
  a tab bar), with a clock's glyphs on it;
- dark bars on dark mode: a light bar on a dark-mode code;
- steep: the corpus's perspective pose with pitch and yaw each 25-45 degrees (as the
  corpus) and 40-55 degrees (as steep as its 60-degree limit allows), a fifth dark-mode.

Each frame is read by zxing-cpp alone, the kiosk's ladder without steps 10-11, and the
ladder; the corpus stays as it is (its own draws are untouched).

Run: .venv/bin/python bench/qr_beyond.py [--per-set 40] [--seed 1] [--quick]
"""
from __future__ import annotations

import argparse
import platform
import random
from collections import Counter

import cv2
import numpy as np
import zxingcpp

from kiosk.camera import decoder
from kiosk.camera.decoder import QRDecoder
from kiosk.testing import qr_corpus as qc

cv2.setNumThreads(1)          # one core, as qr_decode.py


def _bar(rng: random.Random, module: int, turn: int, dark: bool):
    """Draws a bar over the screen's margin and the code's whole quiet zone on the side
    `turn` quarter turns from the top, up to the code's edge (or a pixel short or over)."""
    def draw(face, pad):
        face = np.rot90(face.copy(), turn).copy()
        depth = pad + 4 * module + rng.choice([0, 0, 1, -1])
        face[:depth, :] = rng.randint(5, 40) if dark else rng.randint(215, 250)
        cv2.putText(face, "12:07", (6, max(depth - 3, 6)), cv2.FONT_HERSHEY_SIMPLEX, depth / 30,
                    230 if dark else 30, 1)
        return np.rot90(face, -turn).copy()
    return draw


def bar_frames(rng: random.Random, size, n: int, dark_mode: bool):
    """`n` frames of a code under a bar drawn to its edge (a light bar on a dark-mode code
    when `dark_mode`)."""
    w, h = size
    for _ in range(n):
        bg = qc._background(rng, w, h)
        text = qc.payload(rng)
        module = max(2, int(round(rng.uniform(3, 4) * h / 480)))
        code = qc._code(text, module, invert=dark_mode)
        centre = (w / 2 + rng.uniform(-20, 20), h / 2 + rng.uniform(-20, 20))
        draw = _bar(rng, module, rng.choice([0, 0, 1, 2, 3]), dark=not dark_mode)
        yield qc._place(bg, code, rng, centre, rng.uniform(-8, 8), rng.uniform(0, 10), screen=draw), text.encode()


def steep_frames(rng: random.Random, size, n: int, degrees):
    """`n` frames of a phone pitched and turned each by `degrees` (low, high)."""
    w, h = size
    for _ in range(n):
        bg = qc._background(rng, w, h)
        text = qc.payload(rng)
        module = max(2, int(round(rng.uniform(3, 4) * h / 480)))
        code = qc._code(text, module, invert=rng.random() < 0.2)
        centre = (w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h)
        yield qc._pose(bg, code, rng, size, centre, pitch_range=degrees, yaw_range=degrees), text.encode()


def read(frames):
    """Counts of frames read: zxing-cpp alone, the ladder before steps 10-11, the ladder; and
    which step read those only the ladder read."""
    counts, steps = Counter(), Counter()
    kept = decoder.restored, decoder.code_outline
    for frame, expected in frames:
        counts["frames"] += 1
        counts["zxing-cpp"] += expected in [r.bytes for r in zxingcpp.read_barcodes(frame)]
        # The ladder as it was before steps 10-11: their locators find nothing.
        decoder.restored = decoder.code_outline = lambda region, polarity: None
        try:
            before = expected in QRDecoder().decode(frame)
        finally:
            decoder.restored, decoder.code_outline = kept
        ours = QRDecoder()
        now = expected in ours.decode(frame)
        counts["before"] += before
        counts["ladder"] += now
        if now and not before:
            steps.update(ours.steps)
    return counts, steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-set", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 4 if args.quick else args.per_set
    sizes = ((640, 480),) if args.quick else ((640, 480), (1280, 720))
    print(f"# QR decoding past the corpus's draws, {n} frames per set and size, seed {args.seed}; "
          f"{platform.machine()}, Python {platform.python_version()}, OpenCV {cv2.__version__}")
    print(f"{'set':34}{'size':>10}{'zxing-cpp':>11}{'before 10-11':>14}{'ladder':>8}  read only by the ladder")
    rng = random.Random(args.seed)
    sets = [("bar to the code's edge", lambda size: bar_frames(rng, size, n, False)),
            ("light bar, dark-mode code", lambda size: bar_frames(rng, size, n, True)),
            ("steep, pitch and yaw 25-45", lambda size: steep_frames(rng, size, n, (25, 45))),
            ("steep, pitch and yaw 40-55", lambda size: steep_frames(rng, size, n, (40, 55)))]
    for name, frames in sets:
        for size in sizes:
            counts, steps = read(frames(size))
            total = counts["frames"]
            print(f"{name:34}{f'{size[0]}x{size[1]}':>10}{counts['zxing-cpp']:>7}/{total:<3}"
                  f"{counts['before']:>10}/{total:<3}{counts['ladder']:>4}/{total:<3} "
                  + ", ".join(f"{k} {v}" for k, v in steps.most_common()))


if __name__ == "__main__":
    main()
