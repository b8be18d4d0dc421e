"""Presentations, not frames: how long a visitor holds the phone up before the door answers.

Clips of bench/qr_corpus.clips (2-3 s at 30 fps: the phone approaches, shakes, settles, its
motion blur fading) are played to
(a) the kiosk itself: `Kiosk` with the replay camera at real time (newest frame only), a
    signed site pass in each clip, the decision read from the guard screen's event stream
    (server-sent events over HTTP from waitress); time from the first frame with the whole
    code in view to the decision arriving;
(b) the same clips through a model of a camera loop under the same frame budget (30 fps,
    newest frame only, one core, each decode taking the time it took here): the kiosk's
    decoder, a plain loop of pyzbar, a plain loop of zxing-cpp; time from first sight to
    the first read (no verification or screen).
With --slower F the decode times of (b) are multiplied by F (a slower core, by model).

Run: .venv/bin/python bench/qr_clips.py [--clips 40] [--quick] [--slower 4]
Target (issue #16): the share of clips read within 1 s; median and p95 first sight -> screen.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import cv2
from pyzbar import pyzbar

from kiosk.camera.decoder import QRDecoder
from kiosk.testing.qr_corpus import clips, corpus

cv2.setNumThreads(1)          # one core
FPS = 30
GAP = 20                      # empty frames between clips (0.67 s): the next visitor steps up


def plain_pyzbar(img, t=None):
    gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return [s.data for s in pyzbar.decode(gray, symbols=[pyzbar.ZBarSymbol.QRCODE])]


def plain_zxing(img, t=None):
    import zxingcpp

    return [r.bytes for r in zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode)]


def loop_model(decode, frames, payload, first: int, slower: float = 1.0):
    """Seconds from first sight to the first read by a loop that takes the newest frame of a
    `FPS` camera whenever the decoder is free; None when the clip ends unread. `decode` is
    called with the frame and the model's time in seconds."""
    t = 0.0
    while True:
        i = int(t * FPS)
        if i >= len(frames):
            return None
        # The CPU time the decode took (not wall time: other work on the machine must not
        # slow the model's core), and the model's own time passed to the decoder.
        start = time.thread_time()
        got = decode(frames[i], t)
        t += (time.thread_time() - start) * slower
        if payload in got:
            return max(0.0, t - first / FPS)
        t = max(t, (i + 1) / FPS)          # the next frame is not there yet


def summary(times, n):
    """(share read within 1 s, median, p95 in ms over all clips; an unread clip counts as
    never, so the p95 is 'unread' when more than 5% are unread)."""
    within = sum(1 for t in times if t is not None and t <= 1.0) / n
    ordered = sorted(t if t is not None else float("inf") for t in times)
    med = ordered[len(ordered) // 2]
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return within, med * 1000, p95 * 1000


def fmt(ms):
    return "unread" if ms == float("inf") else f"{ms:.0f}"


def build(count, size, seed, texts, folder: Path):
    """Write the clips (JPEG, as a USB camera's MJPEG) with GAP empty frames before each;
    returns [(frames as read back, payload, first sight, index of its first frame)]."""
    gaps = corpus(count * GAP // 2 + 1, sizes=(size,), seed=seed + 5)
    empty = [img for _, category, img, _ in gaps if category == "none"]
    out, index = [], 0

    def write(img):
        nonlocal index
        cv2.imwrite(str(folder / f"{index:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        index += 1
        return cv2.imread(str(folder / f"{index - 1:06d}.jpg"), cv2.IMREAD_GRAYSCALE)

    for c, (frames, payload, first) in enumerate(clips(count, size, seed, texts)):
        for k in range(GAP):
            write(empty[(c * GAP + k) % len(empty)])
        start = index
        out.append(([write(f) for f in frames], payload, first, start))
    for k in range(GAP):                               # the last visitor walks away
        write(empty[k % len(empty)])
    return out


def kiosk_loop(folder: Path, played, names, settings_dir: Path, key_path: Path):
    """The kiosk's own camera loop at real time: seconds from first sight to the decision on
    the guard screen's event stream, per clip (None = no decision)."""
    import requests

    from kiosk import config
    from kiosk.checkpoint import Kiosk
    from kiosk.declarations import sitepass

    base = {s.name: s.default for s in config.SETTINGS}
    settings = config.load(env={}, base=base, overrides={
        "site.id": "bench", "data_dir": str(settings_dir / "kiosk"), "camera.backend": "replay",
        "camera.replay_path": str(folder), "camera.replay_fps": float(FPS), "ble.backend": "replay",
        "gpio.pin_factory": "mock", "web.port": 0, "door.open_seconds": 0.1,
        "sitepass.public_keys": [str(sitepass.public_path(key_path))]})
    kiosk = Kiosk(settings)
    arrived: dict[str, float] = {}
    kiosk.log.start()
    kiosk._start_web()
    stream = requests.get(kiosk.web_url + "/events", stream=True, timeout=30)

    def listen():
        event = None
        try:
            for line in stream.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "entry":
                    holder = json.loads(line[6:]).get("holder")
                    arrived.setdefault(holder, time.monotonic())
        except (requests.RequestException, AttributeError, ValueError):
            pass                                       # the stream closed at the end
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.3)                                    # the stream is subscribed
    # The camera and the rest start now: frame 0 is due at the camera's start.
    for name, target in (("camera", kiosk._camera_loop), ("ble", kiosk._ble_loop)):
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        kiosk._threads.append(thread)
    while kiosk.camera.started is None:
        time.sleep(0.01)
    started = kiosk.camera.started
    total = played[-1][3] + len(played[-1][0]) + GAP
    deadline = time.monotonic() + total / FPS + 5
    while kiosk.camera_health.cause != "camera_offline" and time.monotonic() < deadline:
        time.sleep(0.05)
    dropped, decoded = kiosk.camera.dropped, kiosk.frames_decoded
    stream.close()
    kiosk.stop()
    out = []
    for (_, _, first, start), name in zip(played, names, strict=True):
        seen = started + (start + first) / FPS
        out.append(arrived[name] - seen if name in arrived else None)
    return out, decoded, dropped, total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--slower", type=float, default=1.0, help="decode times x this in the loop model")
    parser.add_argument("--no-kiosk", action="store_true", help="the loop model only")
    args = parser.parse_args()
    count = 2 if args.quick else args.clips
    size = (640, 480)
    from kiosk.declarations import sitepass

    work = Path(tempfile.mkdtemp(prefix="qr-clips-"))
    try:
        key_path = work / "site-key.pem"
        sitepass.save_key(sitepass.new_key(), key_path)
        key = sitepass.load_private_key(key_path)
        names = [f"Khách {i}" for i in range(count)]
        texts = [sitepass.issue(key, "bench", name, time.time(), 86400 * 365) for name in names]
        folder = work / "frames"
        folder.mkdir()
        played = build(count, size, args.seed, texts, folder)
        load = os.getloadavg()[0]
        print(f"# presentations: {count} clips of 2-3 s at {FPS} fps, {size[0]}x{size[1]}, seed {args.seed}, "
              f"load {load:.1f}; {platform.machine()}, Python {platform.python_version()}")
        rows = []
        if not args.no_kiosk:
            times, decoded, dropped, total = kiosk_loop(folder, played, names, work, key_path)
            rows.append(("kiosk: camera loop -> guard screen (real time)", times))
            print(f"kiosk loop: {decoded} frames decoded of {total} played ({dropped} skipped as stale), "
                  f"{decoded / (total / FPS):.1f} decoded/s")
        from kiosk import config

        every = next(s.default for s in config.SETTINGS if s.name == "decoder.climb_every")
        for name, make in (("model: kiosk decoder", lambda: QRDecoder(climb_every=every).decode),
                           ("model: pyzbar loop", lambda: plain_pyzbar),
                           ("model: zxing-cpp loop", lambda: plain_zxing)):
            times = []
            for frames, payload, first, _ in played:
                times.append(loop_model(make(), frames, payload, first, args.slower))
            rows.append((name + (f" (decode x{args.slower:g})" if args.slower != 1 else ""), times))
        print(f"{'loop':52} {'read <= 1 s':>11} {'read':>6} {'median ms':>10} {'p95 ms':>8}")
        for name, times in rows:
            within, med, p95 = summary(times, count)
            read = sum(t is not None for t in times)
            print(f"{name:52} {100 * within:10.0f}% {read:3}/{count:<2} {fmt(med):>10} {fmt(p95):>8}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
