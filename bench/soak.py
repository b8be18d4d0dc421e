"""A soak of the whole kiosk (issue 17): the real `kiosk run` and `kiosk-central serve`
processes on loopback, a factory's shift-change traffic at the door, guard screens, operator
pulls, and a fault schedule injected while the traffic flows; then every scan is accounted for.

What runs:
- `kiosk run` with the replay camera on a spool folder (camera.replay_spool: each visitor's
  code is dropped there as a PNG, shown for three frames, removed once handled), the replay
  BLE scanner following a JSON-lines file (ble.replay_follow: the harness writes each phone's
  advertisements as its owner walks up), gpiozero's mock pins (GPIOZERO_PIN_FACTORY=mock),
  the data folder on a small tmpfs mounted for the whole run, and its clock read through
  clock.offset_file. Restarted 2 s after it dies, as kiosk.service's RestartSec=2 does.
- `kiosk-central serve` on a private PostgreSQL (kiosk.testing.pgcluster), reached through a
  small HTTP proxy in this script that can refuse connections, answer 500 half the time, or
  answer slowly.
- 20 SSE clients on the guard's /events that drop and reconnect, one more that stays (the
  guard's screen: what the guard saw), the guard page and the operator API every minute.

The fault schedule is written for one hour (SCHEDULE, seconds) and scaled by duration/3600;
visitor rates are not scaled (a visitor every 2 s at peak is the door's real pace).

Run: make soak DURATION=3600   (or: python bench/soak.py --duration 180 --out DIR)
Exit 0 when every check passes; the report (markdown, JSON, PNG) goes to --out.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import hmac
import http.server
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from kiosk.ble import families
from kiosk.central import db as central_db
from kiosk.declarations import sitepass
from kiosk.testing import free_port
from kiosk.testing.pgcluster import private_postgres

HOUR = 3600.0
# (name, start, length) in seconds of a one-hour run; scaled by duration/3600.
SCHEDULE = (
    ("camera gone", 300, 120),
    ("BLE dead", 480, 120),
    ("BLE hung", 600, 120),
    ("kill -9", 780, 0),
    ("central down", 840, 1200),
    ("central 500 half the time", 2040, 180),
    ("central slow", 2220, 180),
    ("data dir full", 2520, 150),
    ("clock back 2 h", 2790, 150),
    ("clock forward 6 h", 3030, 150),
)
PEAK_INTERVAL = 2.0          # seconds between visitors at a shift change
QUIET_INTERVAL = 10.0        # seconds between visitors between shift changes
PEAK_SHARE = 0.7             # of each shift-change cycle
KINDS = (("valid", 0.50), ("expired", 0.10), ("forged", 0.10), ("reused", 0.15), ("unknown", 0.15))
APP_SHARE = 0.7              # visitors whose phone runs Bluezone
REUSE_AFTER = 20.0           # seconds: a code is shown again this long after its first showing, or later
# Two showings of one code whose images left the spool less than this apart are one
# presentation to the kiosk: decoder.cooldown (2 s) after the last of 3 frames at 10 fps.
SAME_PRESENTATION = 2.2
SSE_CLIENTS = 20
PULL_EVERY = 60.0            # seconds between operator API pulls and guard page loads
SAMPLE_EVERY = 10.0          # seconds between RSS/fd/thread samples
HEALTH_EVERY = 2.0           # seconds between the harness's health reads (recovery times)
RESTART_SEC = 2.0            # systemd/kiosk.service: RestartSec=2
TMPFS_MB = 256               # the data folder's filesystem (the guard shows red below 200 MB free)
SLOW_SECONDS = 4.0           # the slow central's delay per answer (the kiosk's timeout is 10 s)
LATENCY_P95_MS = 300.0       # the issue's bound, outside outage windows
# Ending values against the last process's values after warm-up (see docs/reliability.md).
RSS_BAND = 0.20              # +-20 %
FD_BAND = 25                 # +-25 fds: 21 SSE streams come and go, each a socket
THREAD_BAND = 8              # +-8 threads: gpiozero starts one per blink, waitress keeps 8


def now() -> float:
    return time.monotonic()


@dataclass
class Visit:
    seq: int
    kind: str
    app: bool
    payload: str
    dropped: float = 0.0           # monotonic time the code was put before the camera
    handled: float | None = None   # when the camera came back for the next frame (decided, logged)
    name: str = ""


@dataclass
class Fault:
    name: str
    start: float                   # seconds since the run began (planned)
    length: float
    began: float | None = None     # monotonic, as injected
    ended: float | None = None
    recovered: float | None = None
    recovery_what: str = ""
    notes: list = field(default_factory=list)


class Run:
    """Everything one soak holds: folders, processes, the record of what happened."""

    def __init__(self, duration: float, out: Path, seed: int):
        self.duration = duration
        self.scale = duration / HOUR
        self.out = out
        self.rng = random.Random(seed)
        self.tmp = Path(tempfile.mkdtemp(prefix="kiosk-soak-"))
        self.data = self.tmp / "data"
        self.spool = self.tmp / "spool"
        self.spool_gone = self.tmp / "spool-unplugged"
        self.ble_path = self.tmp / "ble.jsonl"
        self.clock_file = self.tmp / "clock-offset"
        self.stop = threading.Event()
        self.traffic_done = threading.Event()
        self.lock = threading.Lock()
        self.visits: list[Visit] = []
        self.pending: dict[str, Visit] = {}
        self.faults = [Fault(name, start * self.scale, length * self.scale) for name, start, length in SCHEDULE]
        self.samples: list[dict] = []
        self.health: list[tuple[float, dict | None]] = []
        self.guard_health: list[tuple[float, list]] = []
        self.guard_entries: list[tuple[float, str]] = []
        self.sse_stats = {"connects": 0, "failures": 0, "events": 0}
        self.pulls: list[tuple[float, str, int | None, float]] = []
        self.camera_away = False
        self.ble_mode = "ok"
        self.mounted = False
        self.t0 = now()
        self.kiosk: KioskProcess | None = None
        self.threads: list[threading.Thread] = []

    def at(self, t_mono: float) -> float:
        return t_mono - self.t0

    def spawn(self, target, name):
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self.threads.append(t)
        return t


# -- the central, behind a proxy that can misbehave ------------------------------------------
class CentralProxy:
    """An HTTP proxy in front of the central: "pass", "down" (connections closed unanswered),
    "flaky" (500 for half the requests) or "slow" (SLOW_SECONDS before each answer)."""

    def __init__(self, upstream: str, rng: random.Random):
        self.mode = "pass"
        self.upstream = upstream
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                mode = proxy.mode
                if mode == "down":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "flaky" and rng.random() < 0.5:
                    self._answer(500, b'{"error": "injected by the soak"}', "application/json")
                    return
                if mode == "slow":
                    time.sleep(SLOW_SECONDS)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "authorization") or k.lower().startswith("x-kiosk")}
                try:
                    r = requests.request(self.command, proxy.upstream + self.path, data=body, headers=headers,
                                         timeout=30)
                except requests.RequestException:
                    self._answer(502, b'{"error": "central unreachable"}', "application/json")
                    return
                self._answer(r.status_code, r.content, r.headers.get("Content-Type", "application/json"))

            def _answer(self, status, body, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="proxy", daemon=True).start()


class CentralProcess:
    def __init__(self, db_url: str, folder: Path):
        self.db_url, self.folder = db_url, folder
        self.port = free_port()
        self.proc = None
        self.runs = 0

    def start(self):
        self.runs += 1
        exe = Path(sys.executable).with_name("kiosk-central")
        self.proc = subprocess.Popen([str(exe), "--db", self.db_url, "serve", "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / f"central-{self.runs}.log", "wb"))
        wait_http(f"http://127.0.0.1:{self.port}/api/v1/health", 60, self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_http(url: str, seconds: float, proc=None) -> float:
    """Wait until `url` answers (any status); return the seconds it took."""
    start = now()
    while True:
        try:
            requests.get(url, timeout=2)
            return now() - start
        except requests.RequestException:
            if now() - start > seconds or (proc is not None and proc.poll() is not None):
                raise RuntimeError(f"{url} did not come up in {seconds:.0f} s") from None
            time.sleep(0.1)


# -- the kiosk process, restarted as systemd would -------------------------------------------
class KioskProcess:
    def __init__(self, run: Run, config: Path, web: str):
        self.run, self.config, self.web = run, config, web
        self.proc = None
        self.incarnations: list[dict] = []
        self.stopping = False
        self.lock = threading.Lock()

    def start(self):
        env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock")
        exe = Path(sys.executable).with_name("kiosk")
        n = len(self.incarnations) + 1
        log = self.run.tmp / f"kiosk-{n}.log"
        self.proc = subprocess.Popen([str(exe), "run", "--config", str(self.config)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
        self.incarnations.append({"n": n, "pid": self.proc.pid, "started": now(), "log": log, "ended": None,
                                  "how": None})

    def watch(self):
        """Restart the kiosk RESTART_SEC after it exits, until the run stops it."""
        while not self.stopping:
            time.sleep(0.2)
            with self.lock:
                if self.stopping or self.proc.poll() is None:
                    continue
                self.incarnations[-1]["ended"] = now()
                self.incarnations[-1]["how"] = self.incarnations[-1]["how"] or f"exit {self.proc.returncode}"
            time.sleep(RESTART_SEC)
            with self.lock:
                if not self.stopping:
                    self.start()

    def kill9(self):
        with self.lock:
            self.incarnations[-1]["how"] = "kill -9"
            os.kill(self.proc.pid, signal.SIGKILL)

    def terminate(self):
        with self.lock:
            self.stopping = True
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.incarnations[-1]["ended"] = now()
            self.incarnations[-1]["how"] = self.incarnations[-1]["how"] or "SIGTERM at the end"


# -- visitors ----------------------------------------------------------------------------------
def payloads(run: Run, key, forger):
    """Make a visitor's code of each kind; passes are stamped 3 h back so a clock stepped back
    2 h still finds them valid (the step is a clock fault, not an expiry test)."""
    issued = time.time() - 3 * 3600
    shown_valid: list[tuple[float, str]] = []

    def make(kind: str) -> tuple[str, str]:
        # Shown again after REUSE_AFTER at least: a code back within the decoder's cooldown
        # is the same presentation to the kiosk (camera/decoder.py), not a second visitor.
        earlier = [text for t, text in shown_valid[-150:] if now() - t >= REUSE_AFTER]
        if kind == "reused" and earlier:
            return kind, run.rng.choice(earlier)
        if kind == "reused":
            kind = "valid"
        name = f"Công nhân {run.rng.randrange(10**6):06d}"
        if kind == "valid":
            text = sitepass.issue(key, "nha-may-soak", name, issued, 3 * 86400)
            shown_valid.append((now(), text))
            return kind, text
        if kind == "expired":
            return kind, sitepass.issue(key, "nha-may-soak", name, issued - 10 * 86400, 86400)
        if kind == "forged":
            return kind, sitepass.issue(forger, "nha-may-soak", name, issued, 3 * 86400,
                                        kid=sitepass.cose.key_id(key.public_key()))
        return kind, f"https://menu.example/{run.rng.randrange(10**9)}"
    return make


def interval(run: Run, t: float) -> float:
    cycle = 300.0 if run.duration >= 1800 else 60.0
    peak = (t % cycle) < PEAK_SHARE * cycle
    base = PEAK_INTERVAL if peak else QUIET_INTERVAL
    return base * run.rng.uniform(0.85, 1.15)


def in_peak(run: Run, t: float) -> bool:
    cycle = 300.0 if run.duration >= 1800 else 60.0
    return (t % cycle) < PEAK_SHARE * cycle


def advert_line(addr: str, rssi: int, raw: bytes) -> str:
    return json.dumps({"t": time.time(), "addr": addr, "addr_type": "random", "rssi": rssi,
                       "raw": raw.hex()}) + "\n"


def ble_write(run: Run, line: str) -> None:
    # A dead or hung scanner hears nothing: what the phones send is lost, as over the air.
    if run.ble_mode != "ok":
        return
    with open(run.ble_path, "a", encoding="utf-8") as f:
        f.write(line)


def traffic(run: Run, key, forger) -> None:
    import segno

    make = payloads(run, key, forger)
    kinds, weights = zip(*KINDS, strict=True)
    seq = 0
    next_at = run.t0 + 5.0
    while now() < run.t0 + run.duration and not run.stop.is_set():
        time.sleep(max(0.0, next_at - now()))
        seq += 1
        kind, text = make(run.rng.choices(kinds, weights)[0])
        app = run.rng.random() < APP_SHARE
        visit = Visit(seq, kind, app, text)
        if app:
            addr = "5d:" + ":".join(f"{run.rng.randrange(256):02x}" for _ in range(5))
            raw = families.bluezone_android(run.rng.randbytes(12))
            for rssi in (-62, -57, -53):
                ble_write(run, advert_line(addr, rssi, raw))
                time.sleep(0.1)
        buf = io.BytesIO()
        segno.make(text, error="m", micro=False).save(buf, kind="png", scale=4, border=6)
        visit.name = f"v{seq:07d}.png"
        with run.lock:
            folder = run.spool_gone if run.camera_away else run.spool
            part = folder / (visit.name + ".part")
            part.write_bytes(buf.getvalue())
            os.replace(part, folder / visit.name)
            visit.dropped = now()
            run.visits.append(visit)
            run.pending[visit.name] = visit
        next_at += interval(run, run.at(next_at))
    run.traffic_done.set()


def handled_watch(run: Run) -> None:
    """A visit is handled when the camera removed its image: after deciding, logging, signalling."""
    while not run.stop.is_set():
        time.sleep(0.01)
        with run.lock:
            folder = run.spool_gone if run.camera_away else run.spool
            for name, visit in list(run.pending.items()):
                if not (folder / name).exists():
                    visit.handled = now()
                    del run.pending[name]


def background_ble(run: Run) -> None:
    """The guard's phone on the desk, far from the door: the scanner always hears something."""
    raw = families.bluezone_android(b"guard-desk-1")
    while not run.stop.wait(2.0):
        ble_write(run, advert_line("6e:11:4a:90:2c:77", -88, raw))


# -- guard screens and operators ----------------------------------------------------------------
def sse_events(response):
    kind, data = None, []
    for raw in response.iter_lines(decode_unicode=True):
        if raw is None:
            continue
        if raw.startswith("event:"):
            kind = raw[6:].strip()
        elif raw.startswith("data:"):
            data.append(raw[5:].strip())
        elif raw == "" and kind:
            yield kind, "\n".join(data)
            kind, data = None, []


def sse_client(run: Run, web: str, index: int) -> None:
    rng = random.Random(index)
    while not run.stop.is_set() and not run.traffic_done.is_set():
        stay = now() + rng.uniform(5, 60)
        try:
            with requests.get(web + "/events", stream=True, timeout=(5, 15)) as r:
                run.sse_stats["connects"] += 1
                for _kind, _data in sse_events(r):
                    run.sse_stats["events"] += 1
                    if now() > stay or run.stop.is_set():
                        break                  # the screen drops the stream
        except requests.RequestException:
            run.sse_stats["failures"] += 1
        run.stop.wait(rng.uniform(0.5, 3))


def guard_screen(run: Run, web: str) -> None:
    """The guard's own screen: stays connected, reconnects after a restart; records what it shows."""
    while not run.stop.is_set():
        try:
            with requests.get(web + "/events", stream=True, timeout=(5, 20)) as r:
                for kind, data in sse_events(r):
                    t = now()
                    if kind == "health":
                        run.guard_health.append((t, [i for i in json.loads(data) if not i["ok"]]))
                    elif kind == "entry":
                        run.guard_entries.append((t, json.loads(data)["id"]))
                    if run.stop.is_set():
                        break
        except (requests.RequestException, ValueError):
            run.guard_health.append((now(), [{"key": "screen", "text": "no connection to the kiosk"}]))
        run.stop.wait(1.0)


def operator(run: Run, web: str, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    while not run.stop.wait(PULL_EVERY * min(1.0, max(run.scale * 4, 0.25))):
        for what, url, headers in (("guard page", web + "/", {}),
                                   ("entries", web + "/api/v1/entries?limit=200", auth),
                                   ("daily report", web + "/api/v1/reports/daily", auth)):
            start = now()
            try:
                status = requests.get(url, headers=headers, timeout=30).status_code
            except requests.RequestException:
                status = None
            run.pulls.append((run.at(start), what, status, now() - start))


def proc_sample(pid: int) -> dict | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    return {"rss_mb": rss, "fds": fds, "threads": threads}


def sampler(run: Run, web: str, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    last_sample = 0.0
    while not run.stop.wait(HEALTH_EVERY):
        t = now()
        try:
            h = requests.get(web + "/api/v1/health", headers=auth, timeout=5).json()
        except (requests.RequestException, ValueError):
            h = None
        run.health.append((t, h))
        if t - last_sample >= SAMPLE_EVERY:
            last_sample = t
            inc = run.kiosk.incarnations[-1]
            s = proc_sample(inc["pid"])
            if s is not None:
                s.update(t=run.at(t), incarnation=inc["n"],
                         backlog=(h or {}).get("sync", {}).get("backlog"))
                run.samples.append(s)


# -- faults ------------------------------------------------------------------------------------
def first_after(run: Run, t: float, test) -> float | None:
    for when, h in run.health:
        if when >= t and h is not None and test(h):
            return when
    return None


def inject(run: Run, fault: Fault, central: CentralProcess, proxy: CentralProxy) -> None:
    name = fault.name
    fault.began = now()
    end_at = fault.began + fault.length
    if name == "camera gone":
        with run.lock:
            os.rename(run.spool, run.spool_gone)       # the replay source vanishes
            run.camera_away = True
        time.sleep(max(0.0, end_at - now()))
        with run.lock:
            os.rename(run.spool_gone, run.spool)
            run.camera_away = False
        fault.ended = now()
        fault.recovery_what = "camera ok on the health API"
        return
    if name == "BLE dead":
        run.ble_mode = "dead"
        run.ble_path.unlink(missing_ok=True)
        time.sleep(max(0.0, end_at - now()))
        run.ble_path.touch()
        run.ble_mode = "ok"
        fault.ended = now()
        fault.recovery_what = "an advertisement heard again (ble_heard grows)"
        return
    if name == "BLE hung":
        run.ble_mode = "hung"
        fifo = run.tmp / "ble.fifo"
        os.mkfifo(fifo)
        os.replace(fifo, run.ble_path)    # the reader's next open() blocks: a stuck helper
        os.link(run.ble_path, fifo)        # kept to release it at the end
        time.sleep(max(0.0, end_at - now()))
        fresh = run.tmp / "ble.new"
        fresh.touch()
        os.replace(fresh, run.ble_path)
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))   # lets the blocked open() return
        fifo.unlink()
        run.ble_mode = "ok"
        fault.ended = now()
        fault.recovery_what = "an advertisement heard again (ble_heard grows)"
        return
    if name == "kill -9":
        # Mid-burst: wait for a peak and a visitor just put before the camera.
        limit = now() + 120 * max(run.scale, 0.1)
        while now() < limit and not (in_peak(run, run.at(now())) and run.pending):
            time.sleep(0.01)
        fault.began = now()
        fault.notes.append(f"{len(run.pending)} visitor(s) before the camera at the kill")
        run.kiosk.kill9()
        fault.ended = now()
        fault.recovery_what = "health API answers and the camera is ok in the new process"
        return
    if name == "central down":
        proxy.mode = "down"
        central.stop()
        time.sleep(max(0.0, end_at - now()))
        central.start()
        proxy.mode = "pass"
        fault.ended = now()
        fault.recovery_what = "the kiosk's backlog back to 0"
        return
    if name.startswith("central 500") or name == "central slow":
        proxy.mode = "flaky" if name.startswith("central 500") else "slow"
        time.sleep(max(0.0, end_at - now()))
        proxy.mode = "pass"
        fault.ended = now()
        fault.recovery_what = "the kiosk's backlog back to 0"
        return
    if name == "data dir full":
        ballast = run.data / "soak-ballast"
        if not run.mounted:
            fault.notes.append("skipped: the tmpfs could not be mounted (not root?)")
            fault.ended = now()
            return
        with open(ballast, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 2**20)
                    f.flush()
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
        with contextlib.suppress(OSError):
            f.close()
        fault.notes.append(f"free after filling: {shutil.disk_usage(run.data).free} bytes")
        time.sleep(max(0.0, end_at - now()))
        ballast.unlink()
        fault.ended = now()
        fault.recovery_what = "log ok and nothing held in memory"
        return
    if name.startswith("clock"):
        offset = -7200 if "back" in name else 6 * 3600
        run.clock_file.write_text(f"{offset}\n")
        time.sleep(max(0.0, end_at - now()))
        run.clock_file.write_text("0\n")
        fault.ended = now()
        fault.recovery_what = "the kiosk's backlog back to 0"
        return
    raise ValueError(name)


RECOVERED = {
    "camera ok on the health API": lambda h: h["camera"] == "ok",
    "the kiosk's backlog back to 0": lambda h: h["sync"]["backlog"] == 0 and not h["sync"]["error"],
    "log ok and nothing held in memory": lambda h: h["log"] == "ok" and h["log_held"] == 0,
    "health API answers and the camera is ok in the new process": lambda h: h["camera"] == "ok",
}


def faults(run: Run, central: CentralProcess, proxy: CentralProxy) -> None:
    for fault in run.faults:
        wait = run.t0 + fault.start - now()
        if run.stop.wait(max(0.0, wait)):
            return
        print(f"[{run.at(now()):7.1f} s] fault: {fault.name} for {fault.length:.0f} s", flush=True)
        inject(run, fault, central, proxy)


def measure_recovery(run: Run) -> None:
    for fault in run.faults:
        if fault.ended is None or not fault.recovery_what:
            continue
        test = RECOVERED.get(fault.recovery_what)
        if test is not None:
            fault.recovered = first_after(run, fault.ended, test)
        else:                                       # BLE: heard count grows after the end
            before = None
            for when, h in run.health:
                if h is None or when < fault.ended:
                    continue
                if before is None:
                    before = h["ble_heard"]
                elif h["ble_heard"] != before:
                    fault.recovered = when
                    break


def guard_saw(run: Run, fault: Fault) -> str:
    """The distinct red items on the guard's screen from the fault's start to its recovery."""
    if fault.began is None:
        return "-"
    end = fault.recovered or fault.ended or fault.began
    end = max(end, fault.began + HEALTH_EVERY)
    seen: dict[str, list[str]] = {}
    for when, items in run.guard_health:
        if fault.began <= when <= end + 5:
            for i in items:
                text = re.sub(r"\d+", "N", str(i.get("text", "")))[:70]
                if text not in seen.setdefault(i["key"], []):
                    seen[i["key"]].append(text)
    shown = sum(1 for when, _ in run.guard_entries if fault.began <= when <= end)
    red = "; ".join(f"{k}: " + " / ".join(v[:3]) for k, v in seen.items() if k != "trust_list")
    return f"{red or 'all green'}; {shown} entries shown"


# -- the run -----------------------------------------------------------------------------------
def mount_tmpfs(run: Run) -> None:
    run.data.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0700", "tmpfs", str(run.data)],
                       check=True, capture_output=True, timeout=30)
        run.mounted = True
    except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired) as e:
        print(f"tmpfs not mounted ({e}); the data folder is on the disk and the full-disk fault is skipped",
              flush=True)


def write_config(run: Run, web_port: int, sync_url: str, pub: Path, kiosk_token: str, operator_hash: str,
                 max_backoff: float) -> Path:
    path = run.tmp / "kiosk.toml"
    path.write_text(f"""
data_dir = "{run.data}"
[site]
id = "nha-may-soak"
[kiosk]
id = "gate-1"
[clock]
offset_file = "{run.clock_file}"
[camera]
backend = "replay"
replay_path = "{run.spool}"
replay_fps = 10.0
replay_spool = true
[ble]
backend = "replay"
replay_path = "{run.ble_path}"
replay_follow = true
[sitepass]
public_keys = ["{pub}"]
[gpio]
pin_factory = "mock"
[web]
host = "127.0.0.1"
port = {web_port}
operator_tokens = ["{operator_hash}"]
[sync]
url = "{sync_url}"
token = "{kiosk_token}"
interval = 2.0
max_backoff = {max_backoff}
""", encoding="utf-8")
    return path


def door_pulses(run: Run) -> dict[str, int]:
    pulses: dict[str, int] = {}
    for inc in run.kiosk.incarnations:
        for m in re.finditer(r"door relay pulse [\d.]+ s for entry (\S+)", inc["log"].read_text(errors="replace")):
            pulses[m.group(1)] = pulses.get(m.group(1), 0) + 1
    return pulses


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def outage_windows(run: Run) -> list[tuple[float, float]]:
    """Monotonic windows outside which the latency bound holds: each fault from its start to
    its recovery (or end), plus a grace of 2 % of the run (at least 10 s)."""
    grace = max(10.0, 0.02 * run.duration)
    windows = []
    for f in run.faults:
        if f.began is None:
            continue
        windows.append((f.began, max(f.recovered or 0, f.ended or f.began) + grace))
    return windows


# A kill -9 right after a visitor was logged, before the camera dropped the code, leaves the
# visitor still "at the door" when systemd restarts the kiosk: the new process reads the code
# again and logs it again, flagged shown_again for the guard (within this many seconds). That
# is the door behaving right for a visitor still holding up a phone; it is counted apart, at
# most once per kill, never hidden.
REREAD_WITHIN = 30


def account(visits: list[dict], entries: list[dict], central_ids: list[str], kills: int = 0) -> dict:
    """Scans presented against entries logged and at the central.

    :param visits: {"kind", "app", "fingerprint", "handled_s"} per code put before the camera.
    :param entries: the kiosk's log at the end (its JSON documents).
    :param central_ids: the entry ids the central holds.
    :param kills: kill -9s of the kiosk in the run (each may re-read one code: REREAD_WITHIN).
    """
    # Presentations: showings of one code, those back in view within SAME_PRESENTATION of the
    # one before counted once (possible when codes queued at a dead camera come back to back).
    shown: dict[str, int] = {}
    last_handled: dict[str, float] = {}
    merged = 0
    for v in sorted(visits, key=lambda v: (v["handled_s"] is None, v["handled_s"] or 0)):
        f, handled = v["fingerprint"], v["handled_s"]
        before = last_handled.get(f)
        if handled is not None and before is not None and handled - before < SAME_PRESENTATION:
            merged += 1
        else:
            shown[f] = shown.get(f, 0) + 1
        if handled is not None:
            last_handled[f] = handled
    logged: dict[str, int] = {}
    for e in entries:
        logged[e["fingerprint"]] = logged.get(e["fingerprint"], 0) + 1
    reread = 0
    for e in sorted(entries, key=lambda e: e["id"]):
        f = e["fingerprint"]
        again = [r for r in e.get("reasons", []) if r.startswith("shown_again:")]
        if (reread < kills and logged[f] > shown.get(f, 0) and again
                and 0 <= int(again[0].split(":")[1].rstrip("s")) <= REREAD_WITHIN):
            logged[f] -= 1
            reread += 1
    ids = [e["id"] for e in entries]
    at_central = set(central_ids)
    return {"presented": len(visits) - merged, "logged": len(entries) - reread,
            "at_central": len(central_ids) - reread, "reread_after_a_kill": reread,
            "shown_again_within_the_cooldown": merged,
            "missing_from_log": sum(max(0, n - logged.get(f, 0)) for f, n in shown.items()),
            "logged_more_than_shown": sum(max(0, n - shown.get(f, 0)) for f, n in logged.items()),
            "duplicate_ids": len(ids) - len(set(ids)),
            "logged_not_at_central": len(set(ids) - at_central),
            "at_central_not_logged": len(at_central - set(ids)),
            "by_kind": {k: sum(1 for v in visits if v["kind"] == k) for k, _ in KINDS},
            "with_app": sum(1 for v in visits if v["app"]),
            "by_decision": {d: sum(1 for e in entries if e["decision"] == d) for d in ("allow", "review", "deny")},
            "not_logged_reason": sum(1 for e in entries if "not_logged" in e.get("reasons", []))}


def accounted(s: dict) -> bool:
    return (s["presented"] == s["logged"] == s["at_central"]
            and s["missing_from_log"] == s["logged_more_than_shown"] == s["duplicate_ids"] == 0
            and s["logged_not_at_central"] == s["at_central_not_logged"] == 0)


def check(run: Run, entries: list[dict], central_ids: list[str], key: bytes) -> dict:
    result: dict = {"checks": {}}
    fp = lambda text: hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]  # noqa: E731
    # What a failed check needs to be read: each visit, and the log's view of each fingerprint.
    result["visits"] = [{"seq": v.seq, "kind": v.kind, "app": v.app, "fingerprint": fp(v.payload),
                         "dropped_s": round(run.at(v.dropped), 2),
                         "handled_s": None if v.handled is None else round(run.at(v.handled), 3),
                         "ms": None if v.handled is None else round((v.handled - v.dropped) * 1000)}
                        for v in run.visits]
    result["log"] = [{"id": e["id"], "time": e["time"], "decision": e["decision"], "reasons": e["reasons"],
                      "fingerprint": e["fingerprint"]} for e in entries]
    kills = sum(1 for f in run.faults if f.name == "kill -9" and f.began is not None)
    result["scans"] = account(result["visits"], entries, central_ids, kills)
    result["checks"]["every scan accounted for"] = accounted(result["scans"])

    pulses = door_pulses(run)
    allows = {e["id"] for e in entries if e["decision"] == "allow" and not e.get("override")}
    result["door"] = {"pulses": sum(pulses.values()), "entries_pulsed": len(pulses), "final_allows": len(allows),
                      "pulses_not_for_an_allow": sorted(set(pulses) - allows),
                      "entries_pulsed_twice": sorted(i for i, n in pulses.items() if n > 1),
                      "allows_without_a_pulse": sorted(allows - set(pulses))}
    d = result["door"]
    result["checks"]["door opened only for final allows"] = (not d["pulses_not_for_an_allow"]
                                                            and not d["entries_pulsed_twice"])

    # Resources: the last process, after its warm-up, against its end.
    last = run.kiosk.incarnations[-1]["n"]
    mine = [x for x in run.samples if x["incarnation"] == last]
    warm = max(30.0, 0.05 * run.duration)
    begin = mine[0]["t"] + warm if mine else 0
    after = [x for x in mine if x["t"] >= begin]
    base_part = after[: max(3, len(after) // 10)]
    end_part = after[-3:]
    res = {}
    ok = bool(after)
    for k, band, rel in (("rss_mb", RSS_BAND, True), ("fds", FD_BAND, False), ("threads", THREAD_BAND, False)):
        if not after:
            break
        base = statistics.median(x[k] for x in base_part)
        end = statistics.median(x[k] for x in end_part)
        low, high = (base * (1 - band), base * (1 + band)) if rel else (base - band, base + band)
        res[k] = {"after_warm_up": round(base, 1), "end": round(end, 1), "band": [round(low, 1), round(high, 1)],
                  "max": max(x[k] for x in after), "within": low <= end <= high}
        ok = ok and low <= end <= high
    res["samples"] = len(after)
    res["process"] = last
    result["resources"] = res
    result["checks"]["RSS, fds and threads end within the band"] = ok

    windows = outage_windows(run)
    outside, inside = [], []
    for v in run.visits:
        if v.handled is None:
            continue
        ms = (v.handled - v.dropped) * 1000
        (inside if any(a <= v.dropped <= b for a, b in windows) else outside).append(ms)
    result["latency_ms"] = {"outside_outages": {"n": len(outside), "p50": percentile(outside, 0.5),
                                                "p95": percentile(outside, 0.95), "max": max(outside, default=None)},
                            "during_outages": {"n": len(inside), "p50": percentile(inside, 0.5),
                                               "p95": percentile(inside, 0.95), "max": max(inside, default=None)}}
    p95 = result["latency_ms"]["outside_outages"]["p95"]
    within = p95 is not None and p95 <= LATENCY_P95_MS
    result["checks"][f"decisions p95 <= {LATENCY_P95_MS:.0f} ms outside outages"] = within
    result["checks"]["every fault injected"] = all(f.began is not None for f in run.faults)
    return result


def recount(out: Path, report: Path | None) -> int:
    """Count a finished run's scans again from its soak.json with this version's `account`
    (a run started before a fix to the count); the report says so."""
    result = json.loads((out / "soak.json").read_text())
    old = result["scans"]
    if old["logged_not_at_central"] or old["at_central_not_logged"]:
        raise SystemExit("the central's ids differ from the log's: they are not in soak.json, cannot recount")
    for v in result["visits"]:
        if "handled_s" not in v:
            v["handled_s"] = None if v["ms"] is None else v["dropped_s"] + v["ms"] / 1000
    central_ids = sorted({e["id"] for e in result["log"]})
    if len(central_ids) != old["at_central"]:
        raise SystemExit("the central's count differs from the log's distinct ids: cannot recount")
    kills = sum(1 for f in result["faults"] if f["fault"] == "kill -9" and f["began_s"] is not None)
    scans = account(result["visits"], result["log"], central_ids, kills)
    result["recounted"] = (f"counted again after the run by `bench/soak.py --recount` (presentations merged "
                           f"within {SAME_PRESENTATION} s); the run's own count: presented {old['presented']}, "
                           f"missing {old['missing_from_log']}, more than shown {old['logged_more_than_shown']}")
    result["scans"] = scans
    result["checks"]["every scan accounted for"] = accounted(scans)
    result["passed"] = all(result["checks"].values())
    (out / "soak.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    from soak_report import write_report

    write_report(result, json.loads((out / "soak-series.json").read_text()), out, report)
    for name, ok in result["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if result["passed"] else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=180.0, help="Seconds of traffic (3600: the documented run).")
    parser.add_argument("--out", type=Path, default=Path("soak-out"), help="Folder for the report, JSON and plots.")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (logs, entry log).")
    parser.add_argument("--report", type=Path, help="Also put the report's tables in this markdown file "
                        "(between its soak-report marks): make soak gives docs/reliability.md.")
    parser.add_argument("--recount", action="store_true", help="Count the scans of the run in --out again "
                        "(its soak.json) and rewrite its report; run nothing.")
    args = parser.parse_args(argv)
    if args.recount:
        return recount(args.out, args.report)
    args.out.mkdir(parents=True, exist_ok=True)
    run = Run(args.duration, args.out, args.seed)
    print(f"soak: {args.duration:.0f} s, folder {run.tmp}", flush=True)
    load_before = os.getloadavg()
    mount_tmpfs(run)
    run.spool.mkdir()
    run.ble_path.touch()
    run.clock_file.write_text("0\n")
    key, forger = sitepass.new_key(), sitepass.new_key()
    key_path = run.tmp / "site-key.pem"
    sitepass.save_key(key, key_path)
    kiosk_token, operator_token = "soak-kiosk-" + os.urandom(8).hex(), "soak-operator-" + os.urandom(8).hex()
    # sync.max_backoff: the production default (300 s) for an hour; scaled down with the run.
    max_backoff = max(10.0, min(300.0, 300.0 * run.scale))
    result: dict = {}
    with private_postgres() as new_database:
        db_url = new_database()
        engine = central_db.connect(db_url)
        central_db.add_credential(engine, "gate-1", "kiosk", "nha-may-soak", kiosk_token)
        central = CentralProcess(db_url, run.tmp)
        central.start()
        proxy = CentralProxy(f"http://127.0.0.1:{central.port}", random.Random(args.seed))
        web_port = free_port()
        web = f"http://127.0.0.1:{web_port}"
        config = write_config(run, web_port, proxy.url + "", sitepass.public_path(key_path), kiosk_token,
                              hashlib.sha256(operator_token.encode()).hexdigest(), max_backoff)
        run.kiosk = kiosk = KioskProcess(run, config, web)
        try:
            kiosk.start()
            wait_http(web + "/", 60, kiosk.proc)
            run.t0 = now()
            run.spawn(kiosk.watch, "supervisor")
            run.spawn(lambda: handled_watch(run), "handled")
            run.spawn(lambda: background_ble(run), "ble-desk")
            run.spawn(lambda: sampler(run, web, operator_token), "sampler")
            run.spawn(lambda: guard_screen(run, web), "guard")
            for i in range(SSE_CLIENTS):
                run.spawn(lambda i=i: sse_client(run, web, i), f"sse-{i}")
            run.spawn(lambda: operator(run, web, operator_token), "operator")
            fault_thread = run.spawn(lambda: faults(run, central, proxy), "faults")
            traffic(run, key, forger)
            fault_thread.join(max(0.0, run.t0 + run.duration - now()) + 300)
            print(f"[{run.at(now()):7.1f} s] traffic over: {len(run.visits)} visitors; draining", flush=True)
            # The end: every code handled, every entry at the central.
            drain_until = now() + max_backoff + 180
            while now() < drain_until:
                h = run.health[-1][1] if run.health else None
                if not run.pending and h and h["sync"]["backlog"] == 0 and h["log_held"] == 0:
                    break
                time.sleep(1)
            time.sleep(HEALTH_EVERY * 2)
            run.drained_at = run.at(now())
        finally:
            run.stop.set()
            kiosk.terminate()
            load_after = os.getloadavg()
            from sqlalchemy import select

            with engine.connect() as conn:
                central_ids = [r[0] for r in conn.execute(select(central_db.entries.c.id))]
            engine.dispose()
            central.stop()
        from kiosk.store import read_entries

        entries = read_entries(run.data / "log")
        key_bytes = (run.data / "fingerprint.key").read_bytes()
        measure_recovery(run)
        result = check(run, entries, central_ids, key_bytes)
    result["run"] = {"duration_s": args.duration, "drained_at_s": round(getattr(run, "drained_at", 0), 1),
                     "load_before": [round(x, 2) for x in load_before],
                     "load_after": [round(x, 2) for x in load_after], "cpus": os.cpu_count(),
                     "tmpfs_mb": TMPFS_MB if run.mounted else None, "max_backoff_s": max_backoff,
                     "kiosk_processes": [{"n": i["n"], "how_it_ended": i["how"]} for i in kiosk.incarnations],
                     "central_starts": central.runs, "sse": run.sse_stats,
                     "operator_pulls": len(run.pulls),
                     "operator_pulls_failed": sum(1 for p in run.pulls if p[2] != 200),
                     "operator_pull_slowest_s": round(max((p[3] for p in run.pulls), default=0), 2),
                     "guard_entries_seen": len(set(i for _, i in run.guard_entries))}
    result["faults"] = [{"fault": f.name, "planned_start_s": round(f.start, 1), "length_s": round(f.length, 1),
                         "began_s": round(run.at(f.began), 1) if f.began else None,
                         "recovered_after_s": (round(f.recovered - f.ended, 1) if f.recovered and f.ended else None),
                         "recovery": f.recovery_what, "guard_saw": guard_saw(run, f), "notes": f.notes}
                        for f in run.faults]
    result["passed"] = all(result["checks"].values())
    (args.out / "soak.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    series = {"samples": run.samples,
              "latency": [(run.at(v.dropped), (v.handled - v.dropped) * 1000) for v in run.visits if v.handled],
              "faults": [(run.at(f.began), run.at(max(f.ended or f.began, f.began + 1)), f.name)
                         for f in run.faults if f.began]}
    (args.out / "soak-series.json").write_text(json.dumps(series))
    from soak_report import write_report  # bench/soak_report.py (beside this script)

    write_report(result, series, args.out, args.report)
    if run.mounted:
        if args.keep:
            shutil.copytree(run.data, run.tmp / "data-copy", ignore=shutil.ignore_patterns("soak-ballast"))
        subprocess.run(["umount", str(run.data)], capture_output=True)
    if args.keep:
        print(f"kept {run.tmp}")
    else:
        shutil.rmtree(run.tmp, ignore_errors=True)
    for name, ok in result["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print(json.dumps({k: result[k] for k in ("scans", "door", "latency_ms")}, indent=1, ensure_ascii=False))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
