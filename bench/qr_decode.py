"""QR decoding at the door: decode rate and time per frame, by category and overall, at
640x480 and 1280x720, for (a) plain pyzbar on the full frame, (b) the kiosk's decoder,
(c) OpenCV's QRCodeDetector, (d) zxing-cpp when it is installed (reference only); all in
the same run on the corpus of bench/qr_corpus.py, with ratios against plain pyzbar.

Run: .venv/bin/python bench/qr_decode.py [--per-category 40] [--quick]
Targets (issue #3): ours >= the best of (a), (c), (d) on the hard categories; >= 30 frames/s
on frames with no code at 640x480 on one core; p95 <= 100 ms with a code; 100% on nominal.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from pyzbar import pyzbar  # noqa: E402

from kiosk.camera.decoder import QRDecoder  # noqa: E402
from qr_corpus import CATEGORIES, HARD, corpus  # noqa: E402

cv2.setNumThreads(1)          # one core, as the targets say


def plain_pyzbar(img):
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return [s.data for s in pyzbar.decode(gray, symbols=[pyzbar.ZBarSymbol.QRCODE])]


_detector = cv2.QRCodeDetector()


def opencv(img):
    text, _, _ = _detector.detectAndDecode(img)
    return [text.encode()] if text else []


def decoders():
    ours = QRDecoder()
    found = {"pyzbar (plain)": plain_pyzbar, "kiosk decoder": ours.decode, "OpenCV QRCodeDetector": opencv}
    try:
        import zxingcpp

        def zxing(img):
            return [r.bytes for r in zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode)]
        found["zxing-cpp (reference)"] = zxing
    except ImportError:
        pass
    return found


STEPS = QRDecoder().steps


def run(per_category: int, sizes):
    images = list(corpus(per_category, sizes))
    results = defaultdict(lambda: defaultdict(list))    # (decoder, size) -> category -> [(ok, seconds)]
    for name, decode in decoders().items():
        # A fresh decoder per image: no state carried from the previous image.
        for size, category, img, expected in images:
            if name == "kiosk decoder":
                ours = QRDecoder()
                decode = ours.decode
            start = time.perf_counter()
            got = decode(img)
            took = time.perf_counter() - start
            ok = (got == [] if expected is None else expected in got)
            results[(name, size)][category].append((ok, took))
            if name == "kiosk decoder":
                STEPS.update(ours.steps)
    return results


def report(results, sizes, out=sys.stdout):
    names = sorted({n for n, _ in results}, key=lambda n: ["pyzbar (plain)", "kiosk decoder",
                                                           "OpenCV QRCodeDetector", "zxing-cpp (reference)"].index(n))
    for size in sizes:
        print(f"\n## {size[0]}x{size[1]}: decode rate by category", file=out)
        print(f"{'category':14}" + "".join(f"{n[:22]:>24}" for n in names), file=out)
        for category in CATEGORIES:
            row = f"{category:14}"
            for n in names:
                xs = results[(n, size)][category]
                row += f"{100 * sum(ok for ok, _ in xs) / len(xs):23.0f}%"
            print(row, file=out)
        print(f"\n## {size[0]}x{size[1]}: overall", file=out)
        print(f"{'decoder':24} {'hard rate':>10} {'all rate':>9} {'ms median':>10} {'ms p95 (code)':>14} "
              f"{'fps no code':>12} {'hard vs pyzbar':>15}", file=out)
        base_hard = None
        for n in names:
            cats = results[(n, size)]
            hard = [ok for c in HARD for ok, _ in cats[c]]
            everything = [ok for c in CATEGORIES for ok, _ in cats[c]]
            with_code = [t for c in CATEGORIES if c != "none" for _, t in cats[c]]
            no_code = [t for _, t in cats["none"]]
            hard_rate = sum(hard) / len(hard)
            base_hard = base_hard or hard_rate
            print(f"{n:24} {100 * hard_rate:9.1f}% {100 * sum(everything) / len(everything):8.1f}% "
                  f"{1000 * statistics.median(with_code):10.1f} {1000 * statistics.quantiles(with_code, n=20)[-1]:14.1f} "
                  f"{1 / statistics.mean(no_code):12.0f} {hard_rate / base_hard:14.2f}x", file=out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-category", type=int, default=40)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    per = 4 if args.quick else args.per_category
    sizes = ((640, 480),) if args.quick else ((640, 480), (1280, 720))
    print(f"# QR decoding, {per} images per category and size, one core; {platform.machine()}, "
          f"Python {platform.python_version()}, OpenCV {cv2.__version__}")
    report(run(per, sizes), sizes)
    print("\n## which step of the kiosk's ladder read the code (all images)")
    for step, n in STEPS.most_common():
        print(f"{step:20} {n:6}")
    shared = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "qr"
    if shared.is_dir():
        print(f"\n(also present: {shared}; not read by this version)")


if __name__ == "__main__":
    main()
