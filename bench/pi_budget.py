"""A Pi 4 core's budget: the whole kiosk process (`kiosk run`) inside a CPU cap that models one
Raspberry Pi 4 core, with the replay camera at 30 fps of 640x480 and a replayed BLE capture
at a busy door's rate; against the same process uncapped in the same run.

The cap is a cgroup (v1 cpu controller: cpu.cfs_quota_us / cpu.cfs_period_us, or v2
cpu.max), made for the run and removed after it; the bench says so and skips the capped rows
when it cannot make one (not root, no cpu controller). FACTOR: one Pi 4 core (Cortex-A72 at
1.5 GHz) is taken as 1/4 of one core of this machine (docs/performance.md says why).

Per run: frames decoded per second with no code in view, CPU by stage (from the kiosk's own
health: grab, gray, zxing, zbar, finder, straighten, scan; the BLE, store, web threads),
and, with presentation clips in view, scan-to-screen: the frame's time stamp (the entry's
time) to the decision arriving on the guard screen's event stream. Then bench/qr_clips.py
inside the cap: the share of clips read within 1 s of first sight.

Run (as root): .venv/bin/python bench/pi_budget.py [--factor 4] [--seconds 20] [--quick]
Goals (issue #16), under the cap: >= 15 decoded frames/s with no code; scan-to-screen
p95 <= 300 ms.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
from qr_clips import FPS, build  # bench/qr_clips.py beside this file

from kiosk.testing import free_port, settings_toml
from kiosk.testing.qr_corpus import corpus

ROOT = Path(__file__).resolve().parents[1]

FACTOR = 4.0
PERIOD_US = 100_000
TOKEN = "pi-budget-operator"
PHONES = 40                     # phones around a busy door, each advertising ~4 times a second
STAGES = ("grab", "gray", "zxing", "zbar", "finder", "straighten", "scan", "ble thread", "store thread",
          "web thread", "camera thread", "other threads", "process")


def sweep_stale(root: Path) -> list[str]:
    """Remove the empty cgroups of earlier runs whose bench process is gone (a run killed
    before close()); returns their names. A group still holding a process is left alone."""
    removed = []
    if not root.is_dir():
        return removed
    for path in root.glob("kiosk-pi-budget-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        try:
            path.rmdir()                        # fails while a process is still inside
            removed.append(path.name)
        except OSError:
            pass
    return removed


class CpuCap:
    """A cgroup that holds a process to `1 / factor` of one CPU; removed by close()."""

    def __init__(self, factor: float):
        self.factor = factor
        self.path: Path | None = None
        self.reason = ""
        quota = int(PERIOD_US / factor)
        v1 = Path("/sys/fs/cgroup/cpu")
        v2 = Path("/sys/fs/cgroup")
        name = f"kiosk-pi-budget-{os.getpid()}"
        for root in (v1, v2):
            sweep_stale(root)
        try:
            if (v1 / "cpu.cfs_quota_us").exists():
                self.path = v1 / name
                self.path.mkdir()
                (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (self.path / "cpu.cfs_quota_us").write_text(str(quota))
            elif (v2 / "cgroup.controllers").exists() and "cpu" in (v2 / "cgroup.controllers").read_text():
                self.path = v2 / name
                self.path.mkdir()
                (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            else:
                self.reason = "no cgroup cpu controller under /sys/fs/cgroup"
        except OSError as e:
            self.reason = f"cannot make a cgroup ({e.strerror}; run as root)"
            self.close()

    @property
    def ok(self) -> bool:
        return self.path is not None

    def enter(self) -> None:
        """Put the calling process in the cgroup (used in the child, before exec)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def close(self) -> None:
        if self.path is not None and self.path.exists():
            for _ in range(50):                 # the group's processes must have left
                try:
                    self.path.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        self.path = None


def ble_capture(path: Path, seconds: float = 10.0, seed: int = 2026) -> float:
    """A capture of PHONES phones sending exposure-notification beacons (0xFD6F) ~4 times a
    second each at -60..-90 dBm; returns the adverts per second."""
    rng = random.Random(seed)
    phones = [(":".join(f"{rng.randrange(256):02x}" for _ in range(6)), rng.randint(-90, -60)) for _ in range(PHONES)]
    lines = []
    t0 = 1795420800.0
    for addr, rssi in phones:
        key = bytes(rng.randrange(256) for _ in range(20)).hex()
        t = rng.uniform(0, 0.25)
        while t < seconds:
            raw = "02011a" + "03036ffd" + "17166ffd" + key
            lines.append((t0 + t, json.dumps({"t": t0 + t, "addr": addr, "addr_type": "random",
                                              "rssi": rssi + rng.randint(-4, 4), "raw": raw})))
            t += rng.uniform(0.2, 0.3)
    lines.sort()
    path.write_text("\n".join(line for _, line in lines) + "\n")
    return len(lines) / seconds


def settings_file(work: Path, frames: Path, capture: Path, port: int, loop: bool, max_fps: float) -> Path:
    from kiosk.declarations import sitepass

    sections = {
        "": {"data_dir": str(work / f"data-{port}")},
        "site": {"id": "bench"}, "kiosk": {"id": "pi-budget"},
        "camera": {"backend": "replay", "replay_path": str(frames), "replay_fps": float(FPS), "replay_loop": loop},
        "decoder": {"max_fps": max_fps},
        "ble": {"backend": "replay", "replay_path": str(capture), "replay_period": 10.0},
        "gpio": {"pin_factory": "mock"},
        "web": {"port": port, "operator_tokens": [hashlib.sha256(TOKEN.encode()).hexdigest()], "rate_limit": 100000},
        "sitepass": {"public_keys": [str(sitepass.public_path(work / "site-key.pem"))]},
    }
    path = work / f"kiosk-{port}.toml"
    path.write_text(settings_toml(sections))
    return path


RUNNING: list = []              # kiosk processes to end however the bench ends


class KioskProcess:
    """`kiosk run` in its own process, in `cap` when given; its health and entries through
    the operator API, its decisions through the guard screen's event stream."""

    def __init__(self, config: Path, port: int, cap: CpuCap | None):
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.url = f"http://127.0.0.1:{port}"
        # Its log to a file: a pipe nobody reads would stop the kiosk once 64 kB are written.
        self.log = config.with_suffix(".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", "from kiosk.cli import main; main()", "run",
                                          "--config", str(config)], env=env, stdout=subprocess.DEVNULL, stderr=log,
                                         preexec_fn=cap.enter if cap else None)
        RUNNING.append(self.proc)
        self.arrived: dict[str, float] = {}     # entry id -> wall time it reached the screen's stream
        import requests

        self._requests = requests
        deadline = time.monotonic() + 60
        while True:
            try:
                self.health()
                break
            except requests.RequestException:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("kiosk run did not start: " + self.log.read_text()[-2000:]) from None
                time.sleep(0.2)
        self._stream = requests.get(self.url + "/events", stream=True, timeout=60)
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self):
        event = None
        try:
            for line in self._stream.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "entry":
                    self.arrived.setdefault(json.loads(line[6:])["id"], time.time())
        except (self._requests.RequestException, AttributeError, ValueError):
            pass

    def health(self) -> dict:
        r = self._requests.get(self.url + "/api/v1/health", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        r.raise_for_status()
        return r.json()

    def entries(self) -> list[dict]:
        r = self._requests.get(self.url + "/api/v1/entries?limit=1000",
                               headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        r.raise_for_status()
        return r.json()["entries"]

    def stop(self) -> None:
        self.proc.terminate()           # first: closing the stream waits for the server
        self._stream.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure_idle(work, frames, capture, cap, seconds, max_fps=0.0):
    """Frames decoded per second and CPU seconds by stage per second, no code in view."""
    port = free_port()
    kiosk = KioskProcess(settings_file(work, frames, capture, port, True, max_fps), port, cap)
    try:
        time.sleep(3.0)                                   # warm up: first frames, first BLE lap
        a, ta = kiosk.health(), time.monotonic()
        time.sleep(seconds)
        b, tb = kiosk.health(), time.monotonic()
    finally:
        kiosk.stop()
    wall = tb - ta
    cpu = {k: (b["cpu_seconds"].get(k, 0) - a["cpu_seconds"].get(k, 0)) / wall for k in STAGES}
    # The main thread, OpenCV's worker threads, housekeeping, sync: what no stage names.
    cpu["other threads"] = cpu["process"] - sum(v for k, v in cpu.items() if k.endswith(" thread"))
    return (b["frames_decoded"] - a["frames_decoded"]) / wall, b["camera_fps"], cpu


def measure_scans(work, clips_folder, n_frames, capture, cap):
    """Scan-to-screen in ms (the entry's frame time to the event on the guard's stream), per
    entry; and the decoded frames per second with codes in view."""
    port = free_port()
    kiosk = KioskProcess(settings_file(work, clips_folder, capture, port, False, 0.0), port, cap)
    try:
        deadline = time.monotonic() + n_frames / FPS + 20
        while not kiosk.health()["camera"].startswith("offline") and time.monotonic() < deadline:
            time.sleep(0.25)
        h = kiosk.health()
        time.sleep(0.5)
        entries = kiosk.entries()
    finally:
        kiosk.stop()
    from kiosk.model import parse_iso

    latencies = [1000 * (kiosk.arrived[e["id"]] - parse_iso(e["time"])) for e in entries if e["id"] in kiosk.arrived]
    return latencies, len(entries), h["frames_decoded"]


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--factor", type=float, default=FACTOR, help="this machine's core / a Pi 4 core")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds, count = (3.0, 2) if args.quick else (args.seconds, args.clips)
    from kiosk.declarations import sitepass

    work = Path(tempfile.mkdtemp(prefix="pi-budget-"))
    cap = CpuCap(args.factor)
    try:
        sitepass.save_key(sitepass.new_key(), work / "site-key.pem")
        key = sitepass.load_private_key(work / "site-key.pem")
        empty = work / "empty"
        empty.mkdir()
        for i, (_, category, img, _) in enumerate(corpus(2, sizes=((640, 480),), seed=11)):
            if category == "none":
                cv2.imwrite(str(empty / f"{i:04d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        capture = work / "ble.jsonl"
        rate = ble_capture(capture)
        clips_folder = work / "clips"
        clips_folder.mkdir()
        names = [f"Khách {i}" for i in range(count)]
        build(count, (640, 480), 2026, [sitepass.issue(key, "bench", n, time.time(), 86400 * 365)
                                                 for n in names], clips_folder)
        n_frames = len(list(clips_folder.iterdir()))
        print(f"# the kiosk process on a Pi 4 core's budget: replay camera {FPS} fps of 640x480 (JPEG), "
              f"BLE {PHONES} phones, {rate:.0f} adverts/s; {platform.machine()}, Python {platform.python_version()}, "
              f"load {os.getloadavg()[0]:.1f}")
        if cap.ok:
            print(f"cap: cgroup {cap.path}, quota {int(PERIOD_US / args.factor)} us per {PERIOD_US} us "
                  f"(1/{args.factor:g} of a core = one Pi 4 core by the factor chosen)")
        else:
            print(f"cap: skipped, {cap.reason}; uncapped rows only")
        runs = [("uncapped", None)] + ([(f"Pi 4 model (1/{args.factor:g} core)", cap)] if cap.ok else [])
        if cap.ok and not args.quick:
            runs.append(("Pi 4 model, decoder.max_fps 10", cap))
        print(f"\n{'run':34} {'decoded/s no code':>18} {'health fps':>11} {'scan->screen ms p50':>20} {'p95':>6} "
              f"{'max':>6} {'scans':>6}")
        cpu_rows = []
        for name, group in runs:
            max_fps = 10.0 if "max_fps" in name else 0.0
            fps, shown, cpu = measure_idle(work, empty, capture, group, seconds, max_fps)
            if "max_fps" in name:
                print(f"{name:34} {fps:18.1f} {shown:11.1f}")
                cpu_rows.append((name, cpu))
                continue
            latencies, scans, _ = measure_scans(work, clips_folder, n_frames, capture, group)
            print(f"{name:34} {fps:18.1f} {shown:11.1f} {pct(latencies, 0.5):20.0f} {pct(latencies, 0.95):6.0f} "
                  f"{max(latencies, default=float('nan')):6.0f} {scans:3}/{count:<2}")
            cpu_rows.append((name, cpu))
        print("\n## CPU by stage with no code in view, ms of CPU per second (share of the modelled Pi core)")
        print(f"{'stage':16}" + "".join(f"{n[:30]:>32}" for n, _ in cpu_rows))
        budget = 1000 / args.factor
        for stage in STAGES:
            print(f"{stage:16}" + "".join(f"{1000 * c[stage]:20.1f} ({100 * 1000 * c[stage] / budget:5.1f}%)    "
                                          for _, c in cpu_rows))
        if cap.ok and not args.quick:
            print(f"\n## presentations inside the cap (bench/qr_clips.py, {count} clips)")
            sys.stdout.flush()
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            child = subprocess.Popen([sys.executable, str(ROOT / "bench" / "qr_clips.py"), "--clips", str(count)],
                                     env=env, preexec_fn=cap.enter)
            RUNNING.append(child)
            if child.wait() != 0:
                raise RuntimeError("bench/qr_clips.py failed inside the cap")
        print("\ngoals under the cap: >= 15 decoded frames/s with no code; scan-to-screen p95 <= 300 ms")
    finally:
        for proc in RUNNING:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        cap.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
