"""The kiosk's listeners under abuse, measured from outside a kiosk running in its own process:
a 50 MB POST to each listener (answer, bytes let through, the kiosk's RSS), page and API
answer times with 200 guard screens (SSE) open, and the form behind 100 idle connections.

Run: .venv/bin/python bench/web_limits.py [--streams 200] [--quick]
Targets (issue 12): 413 before the body is read with RSS flat; page and API answer in < 1 s
with 200 streams open.
"""
from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

BIG = 50 * 2**20
PIECE = b"a" * 2**16
TIMEOUT = 30.0
TOKEN = "bench-operator-token"


def serve(folder: str) -> None:
    """The child: a kiosk with its form, printing its two URLs, until stdin closes."""
    import hashlib

    from kiosk import config
    from kiosk.checkpoint import Kiosk
    from kiosk.clock import ManualClock
    from kiosk.declarations import sitepass

    key_path = Path(folder) / "site-key.pem"
    sitepass.save_key(sitepass.new_key(), key_path)
    base = config.defaults()
    settings = config.load(env={}, base=base, overrides={
        "site.id": "bench", "data_dir": str(Path(folder) / "kiosk"), "camera.backend": "replay",
        "ble.backend": "replay", "gpio.pin_factory": "mock", "web.port": 0, "form.host": "127.0.0.1",
        "form.port": 0, "sitepass.signing_key": str(key_path), "web.rate_limit": 100_000,
        "web.operator_tokens": [hashlib.sha256(TOKEN.encode()).hexdigest()]})
    kiosk = Kiosk(settings, ManualClock())
    kiosk.start()
    print(kiosk.web_url, kiosk.form_url, flush=True)
    sys.stdin.read()
    kiosk.stop()


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT)


def post_big(url: str, path: str, headers: list[str], chunked: bool) -> tuple[str, float, int]:
    """A 50 MB POST: (status line or what went wrong, seconds to the answer, MB the client got
    out before the answer: the server read at most that, the rest sat in socket buffers)."""
    started = time.perf_counter()
    with connect(url) as sock:
        head = [f"POST {path} HTTP/1.1", f"Host: {urlsplit(url).netloc}", *headers,
                "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BIG}"]
        piece = b"%x\r\n%s\r\n" % (len(PIECE), PIECE) if chunked else PIECE
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.setblocking(False)
        sent, answer, pending = 0, b"", b""
        # Send until the server answers or stops reading; read whatever it says meanwhile.
        while b"\r\n" not in answer and time.perf_counter() - started < TIMEOUT:
            try:
                data = sock.recv(4096)
                if not data:
                    break
                answer += data
                continue
            except BlockingIOError:
                pass
            except OSError as e:
                answer = answer or f"({e.__class__.__name__})".encode()
                break
            if sent < BIG or pending:
                try:
                    pending = pending or piece          # a chunk must go out whole
                    n = sock.send(pending)
                    pending, sent = pending[n:], sent + n
                except BlockingIOError:
                    time.sleep(0.001)
                except OSError as e:
                    answer = answer or f"({e.__class__.__name__})".encode()
                    break
            else:
                time.sleep(0.001)
        elapsed = time.perf_counter() - started
    line = answer.split(b"\r\n", 1)[0].decode("latin-1") or "no answer"
    return line, elapsed, sent / 2**20


def timed_get(url: str, headers: dict | None = None) -> float | None:
    import requests

    started = time.perf_counter()
    try:
        requests.get(url, headers=headers, timeout=TIMEOUT).raise_for_status()
    except Exception:
        return None
    return time.perf_counter() - started


def show_ms(values: list) -> str:
    got = [v for v in values if v is not None]
    if len(got) < len(values):
        return f"{len(values) - len(got)}/{len(values)} no answer in {TIMEOUT:.0f} s"
    return f"median {statistics.median(got) * 1000:.0f} ms, max {max(got) * 1000:.0f} ms"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="50 streams, Content-Length bodies only")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    streams_n = 50 if args.quick else args.streams
    folder = tempfile.mkdtemp()
    child = subprocess.Popen([sys.executable, __file__, "--serve", folder], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    web, form = child.stdout.readline().split()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    print(f"# {platform.machine()}, Python {platform.python_version()}, kiosk in its own process (pid {child.pid})")
    try:
        print("\n## 50 MB POST to each listener")
        print(f"{'listener':<18} {'body':<15} {'answer':<40} {'after s':>8} {'MB out':>8} "
              f"{'RSS before':>10} {'RSS after':>9} {'peak':>6}")
        listeners = [("guard override", web, "/guard/override", ["Content-Type: application/json"]),
                     ("operator API", web, "/api/v1/entries", [f"Authorization: Bearer {TOKEN}"]),
                     ("declaration form", form, "/", ["Content-Type: application/x-www-form-urlencoded"])]
        for name, url, path, headers in listeners:
            for chunked in ((False,) if args.quick else (False, True)):
                before, _ = memory(child.pid)
                line, elapsed, sent = post_big(url, path, headers, chunked)
                time.sleep(0.2)
                after, peak = memory(child.pid)
                print(f"{name:<18} {'chunked' if chunked else 'Content-Length':<15} {line[:40]:<40} {elapsed:>8.2f} "
                      f"{sent:>8.1f} {before:>10.1f} {after:>9.1f} {peak:>6.1f}")

        print(f"\n## page and API with {streams_n} guard screens (SSE) open")
        print("before:", "page", show_ms([timed_get(web + "/") for _ in range(5)]),
              "| API", show_ms([timed_get(web + "/api/v1/health", auth) for _ in range(5)]))
        streams = []
        for _ in range(streams_n):
            sock = connect(web)
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            streams.append(sock)
        print("open:  ", "page", show_ms([timed_get(web + "/") for _ in range(5)]),
              "| API", show_ms([timed_get(web + "/api/v1/health", auth) for _ in range(5)]))
        for sock in streams:
            sock.close()
        print("closed:", "page", show_ms([timed_get(web + "/") for _ in range(5)]),
              "| API", show_ms([timed_get(web + "/api/v1/health", auth) for _ in range(5)]))

        print("\n## the form behind 100 idle connections (waitress's connection_limit)")
        idle = [connect(form) for _ in range(100)]
        print("form:", show_ms([timed_get(form + "/")]))
        for sock in idle:
            sock.close()
        rss, peak = memory(child.pid)
        print(f"\nkiosk RSS at the end {rss:.1f} MiB, peak {peak:.1f} MiB")
    finally:
        child.stdin.close()
        child.wait(timeout=30)


if __name__ == "__main__":
    main()
