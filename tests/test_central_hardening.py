"""The central server against hostile kiosks and operators (issue 12): whose entries a token
may touch, the shape of an entry, the size of a batch, bad query parameters, idle connections.
Through real HTTP on 127.0.0.1; `kiosk-central serve` in a child process where the server's
own limits are what is tested."""
import json
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from kiosk import syncproto
from kiosk.central import db
from kiosk.central.app import MAX_BATCH_ENTRIES, MAX_BODY_BYTES, MAX_LIST_LIMIT
from kiosk.model import MAX_TEXT
from kiosk.testing import free_port

from .conftest import KIOSK_TOKEN, OPERATOR_TOKEN, SITE
from .test_central import _entry, _post

both_databases = pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
SITE_B, SITE_B_TOKEN = "site-b", "site-b-kiosk-token"


def _post_raw(central, raw: bytes, token=KIOSK_TOKEN):
    """POST bytes signed as the kiosk signs a batch."""
    _, headers = syncproto.signed_request(token, {})
    headers["X-Kiosk-Signature"] = syncproto.signature(syncproto.key_for(token), headers["X-Kiosk-Timestamp"], raw)
    return requests.post(central.url + "/api/v1/ingest", data=raw, headers=headers, timeout=30)


def _bodies(central):
    return {e["id"]: e for e in db.list_entries(central.engine, limit=100_000)}


@both_databases
def test_a_kiosk_of_site_a_cannot_rewrite_an_entry_of_site_b(central):
    db.add_credential(central.engine, "b-gate", "kiosk", SITE_B, SITE_B_TOKEN)
    theirs = dict(_entry(1, kiosk="b-gate", site=SITE_B), decision="deny", reasons=["expired"],
                  declaration={"format": "eu-dcc", "status": "expired", "holder": "Trần Thị Bình", "flags": []})
    assert _post(central, {"kiosk": "b-gate", "entries": [theirs]}, token=SITE_B_TOKEN).status_code == 200
    # Site A's kiosk sends its own entry under site B's id: renamed, allowed, overridden.
    forged = dict(_entry(1), declaration=dict(theirs["declaration"], holder="Someone Else", status="valid"),
                  override={"action": "allow", "reason": "ok", "by": "guard", "at": "2026-11-23T01:02:00.000Z"})
    mine = _entry(2)
    r = _post(central, {"kiosk": "gate-1", "entries": [mine, forged]})
    assert r.status_code == 403 and "another kiosk or site" in r.json()["error"]
    r = _post(central, {"kiosk": "gate-1", "entries": [dict(forged, override=None)]})
    assert r.status_code == 403, "an id of another site is not even reported as a duplicate"
    stored = _bodies(central)
    assert stored[theirs["id"]] == theirs                   # site B's entry is as site B sent it
    assert mine["id"] not in stored                          # the refused batch stored nothing
    # The same kiosk sending its own entries again is unaffected (no replay: nothing was kept).
    assert _post(central, {"kiosk": "gate-1", "entries": [mine]}).json()["stored"] == [mine["id"]]


def test_a_kiosk_without_a_site_sends_its_entries_of_two_sites_again_as_duplicates(central):
    """Ownership is checked entry by entry: a credential with no site may carry several."""
    db.add_credential(central.engine, "roamer", "kiosk", None, "roamer-token")
    batch = [_entry(1, kiosk="roamer", site="site-x"), _entry(2, kiosk="roamer", site="site-y")]
    assert _post(central, {"kiosk": "roamer", "entries": batch}, token="roamer-token").status_code == 200
    again = _post(central, {"kiosk": "roamer", "entries": batch[::-1]}, token="roamer-token")
    assert again.status_code == 200 and sorted(again.json()["duplicate"]) == [batch[0]["id"], batch[1]["id"]]
    moved = _post(central, {"kiosk": "roamer", "entries": [dict(batch[0], site="site-y")]}, token="roamer-token")
    assert moved.status_code == 403


@both_databases
@pytest.mark.parametrize("field, value, named", [
    ("declaration", "<script>", "declaration"),
    ("declaration", {"format": "sitepass", "status": "valid", "holder": "An\x00"}, "declaration.holder"),
    ("declaration", {"format": "sitepass", "status": "valid", "holder": "x" * (MAX_TEXT + 1)}, "declaration.holder"),
    ("ble", {"outcome": "confirmed", "rssi": "-58"}, "ble.rssi"),
    ("time", "2026-11-23 01:00:00", "time"),
    ("time", "2026-02-30T01:00:00.000Z", "time"),
    ("reasons", ["expired"] * 1000, "reasons"),
    ("override", {"action": "allow", "note": "x"}, "override.note"),
    ("direction", "sideways", "direction"),
    ("holder", "a field the kiosk never writes", "holder"),
])
def test_an_entry_not_in_the_kiosks_shape_is_refused_by_id_and_field(central, field, value, named):
    bad = dict(_entry(5), **{field: value})
    r = _post(central, {"kiosk": "gate-1", "entries": [_entry(4), bad]})
    assert r.status_code == 400
    answer = r.json()
    assert (answer["entry"], answer["field"]) == (bad["id"], named)
    assert bad["id"] in answer["error"] and named in answer["error"]
    assert db.list_entries(central.engine) == []
    report = requests.get(central.url + "/api/v1/reports/daily", params={"site": SITE, "date": "2026-11-23"},
                          headers=OPERATOR, timeout=5)
    assert report.status_code == 200 and report.json()["entries"] == 0


@both_databases
def test_a_lone_surrogate_in_an_entry_is_refused(central):
    """JSON may escape half a UTF-16 pair; neither database can store it."""
    batch = {"kiosk": "gate-1", "entries": [dict(_entry(1), reasons=["\ud800"])]}
    r = _post_raw(central, json.dumps(batch).encode())       # ensure_ascii: sent as \\ud800
    assert r.status_code == 400 and r.json()["field"] == "reasons"
    assert db.list_entries(central.engine) == []


def test_the_largest_batch_a_kiosk_writes_is_taken_and_one_entry_more_is_not(central):
    """sync.batch_size at its top, each entry with a 200-character Vietnamese name, fits."""
    name = ("Nguyễn Thị Ánh Tuyết " * 10)[:MAX_TEXT]
    batch = [dict(_entry(0), id=f"01J0000000000000000000{i:04d}", reasons=["declared:cough", "app_not_detected"],
                  declaration=dict(_entry(0)["declaration"], holder=name, flags=["cough", "fever"]))
             for i in range(MAX_BATCH_ENTRIES)]
    raw, _ = syncproto.signed_request(KIOSK_TOKEN, {"kiosk": "gate-1", "entries": batch})
    assert len(raw) < MAX_BODY_BYTES / 2                     # the bound leaves room to spare
    r = _post(central, {"kiosk": "gate-1", "entries": batch})
    assert r.status_code == 200 and len(r.json()["stored"]) == MAX_BATCH_ENTRIES
    extra = dict(batch[0], id="01J00000000000000000009999")
    r = _post(central, {"kiosk": "gate-1", "entries": batch + [extra]})
    assert r.status_code == 413 and f"at most {MAX_BATCH_ENTRIES}" in r.json()["error"]


def test_a_body_over_the_bound_gets_a_json_413_and_stores_nothing(central):
    """Behind any server: the app itself refuses from Content-Length (Flask's MAX_CONTENT_LENGTH)."""
    r = _post_raw(central, b" " * (MAX_BODY_BYTES + 1))
    assert r.status_code == 413 and "error" in r.json()
    assert db.list_entries(central.engine) == []


@both_databases
def test_limit_is_a_whole_number_from_one_and_capped(central):
    for k in range(11):                                      # 11,000 entries, past the cap
        batch = [dict(_entry(0), id=f"01J00000000000000000{k:02d}{i:04d}") for i in range(1000)]
        db.ingest(central.engine, batch, f"sig-{k}", time.time(), 300)

    def get(limit):
        return requests.get(central.url + "/api/v1/entries", params={"limit": limit}, headers=OPERATOR, timeout=60)

    for bad in ("abc", "-1", "0", "", "1.5", "1e3", " 5"):
        r = get(bad)
        assert r.status_code == 400 and "limit" in r.json()["error"], bad
    assert len(get("20000").json()["entries"]) == MAX_LIST_LIMIT
    assert len(get("7").json()["entries"]) == 7


# Values an attacker or a broken script sends, raw in the query string (percent-escapes kept).
HOSTILE = ["abc", "-1", "0", "", "%20", "1e309", "9" * 5000, "%00", "a%00b", "%ED%A0%80", "%FF%FE", "%", "%%41",
           "%3Cscript%3Ealert(1)%3C/script%3E", "../../../../etc/passwd", "%2Fetc%2Fpasswd", "9999-12-31",
           "0001-01-01", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00%2B23:59", "2026-11-23T25:00",
           "Asia%2FHo_Chi_Minh%2F..%2F..%2F..%2Fetc%2Fpasswd", "a" * 5000, "%5B%5D", "%7B%7D", "null", "NaN",
           "%EF%BC%91%EF%BC%92", "1" * 13, "2026-11-23%0D%0AX-Injected:%201"]
ENDPOINTS = {
    "/api/v1/entries": {"site": SITE, "kiosk": "gate-1", "from": "2026-11-23", "to": "2026-11-24", "limit": "5"},
    "/api/v1/reports/daily": {"site": SITE, "date": "2026-11-23", "tz": "Asia/Ho_Chi_Minh"},
    "/api/v1/health": {"verbose": "1"},
}


@both_databases
def test_hostile_query_parameters_never_give_a_server_error(central):
    assert _post(central, {"kiosk": "gate-1", "entries": [_entry(1)]}).status_code == 200
    answers = []
    for path, good in ENDPOINTS.items():
        for name in good:
            for value in HOSTILE:
                query = "&".join(f"{k}={value if k == name else v}" for k, v in good.items())
                r = requests.get(f"{central.url}{path}?{query}", headers=OPERATOR, timeout=30)
                answers.append((path, name, value[:20], r.status_code))
                assert r.status_code < 500, answers[-1]
                assert r.headers["Content-Type"].startswith("application/json"), answers[-1]
                assert "X-Injected" not in r.headers
        # the same parameter twice, and every parameter at once
        for query in ("&".join(f"{k}={v}&{k}=%00" for k, v in good.items()),
                      "&".join(f"{k}={HOSTILE[7]}" for k in good)):
            assert requests.get(f"{central.url}{path}?{query}", headers=OPERATOR, timeout=30).status_code < 500
    assert {a[3] for a in answers} <= {200, 400}
    for method, path in (("GET", "/api/v1/nowhere"), ("DELETE", "/api/v1/entries"), ("GET", "/api/v1/ingest")):
        r = requests.request(method, central.url + path, headers=OPERATOR, timeout=5)
        assert r.status_code in (404, 405) and "error" in r.json()


@both_databases
def test_hostile_ingest_headers_and_bodies_never_give_a_server_error(central):
    raw, good = syncproto.signed_request(KIOSK_TOKEN, {"kiosk": "gate-1", "entries": [_entry(1)]})
    cases = [
        {"X-Kiosk-Timestamp": "9" * 5000}, {"X-Kiosk-Timestamp": "9" * 400}, {"X-Kiosk-Timestamp": "-1"},
        {"X-Kiosk-Timestamp": "1e9"}, {"X-Kiosk-Timestamp": "\xb9\xb2"},
        {"X-Kiosk-Signature": "\xff" * 64}, {"X-Kiosk-Signature": "z" * 5000}, {"X-Kiosk-Signature": ""},
        {"Authorization": "Bearer " + "\xff" * 40}, {"Authorization": "Bearer"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Content-Type": "text/plain"},
    ]
    for change in cases:
        r = requests.post(central.url + "/api/v1/ingest", data=raw, headers={**good, **change}, timeout=5)
        assert r.status_code in (400, 401), change
        assert "error" in r.json()
    for body in (b"[" * 100_000, b'{"entries": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", b"\xff\xfe\x00",
                 b'{"entries": [null, 1, "x", []]}', b'{"entries": {}}', b"1" * 5000, b'"\\ud800"'):
        r = _post_raw(central, body)
        assert r.status_code == 400 and "error" in r.json(), body[:40]
    assert db.list_entries(central.engine) == []


# -- `kiosk-central serve` in its own process: waitress's own limits ------------------------

@contextmanager
def central_process(tmp_path, *options):
    """`kiosk-central serve` on a fresh SQLite database with the test kiosk; yields (process, port)."""
    url = f"sqlite:///{tmp_path / 'central.db'}"
    engine = db.connect(url)
    db.add_credential(engine, "gate-1", "kiosk", SITE, KIOSK_TOKEN)
    engine.dispose()
    port = free_port()
    log = tmp_path / "central.log"
    exe = Path(sys.executable).with_name("kiosk-central")
    command = [str(exe)] if exe.exists() else [sys.executable, "-c", "from kiosk.central.cli import main; main()"]
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(command + ["--db", url, "serve", "--port", str(port), *options],
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.1)
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


_INGEST_HEAD = ("POST /api/v1/ingest HTTP/1.1\r\nHost: central\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {KIOSK_TOKEN}\r\nX-Kiosk-Timestamp: 1\r\nX-Kiosk-Signature: 00\r\n")
FIFTY_MB = 50 * 2 ** 20


def _announced(port: int) -> bytes:
    """Announce 50 MB with Content-Length and send none of it; the answer must come anyway."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall((_INGEST_HEAD + f"Content-Length: {FIFTY_MB}\r\n\r\n").encode())
        return s.recv(65536)


def _streamed(port: int) -> tuple[bytes, int]:
    """Stream 50 MB chunked (no length up front) until the server answers or hangs up;
    return (the answer, bytes sent)."""
    answer = []
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall((_INGEST_HEAD + "Transfer-Encoding: chunked\r\n\r\n").encode())

        def read():
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except OSError:
                pass
            answer.append(data)
        reader = threading.Thread(target=read)
        reader.start()
        piece, sent = b" " * 65536, 0
        try:
            while sent < FIFTY_MB:
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            s.sendall(b"0\r\n\r\n")
        except OSError:                  # the server hung up: what we wanted
            pass
        reader.join(30)
    return (answer[0] if answer else b""), sent


def test_serve_answers_413_to_50_mb_without_reading_it_and_memory_stays_flat(tmp_path):
    with central_process(tmp_path) as (proc, port):
        before = _rss_kib(proc.pid)
        results = {}
        threads = [threading.Thread(target=lambda: results.update(announced=_announced(port))),
                   threading.Thread(target=lambda: results.update(streamed=_streamed(port)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        after = _rss_kib(proc.pid)
        assert results["announced"].startswith(b"HTTP/1.1 413 "), results["announced"][:100]
        answer, sent = results["streamed"]
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
        assert sent < FIFTY_MB, "the server stopped reading at its bound"
        assert after - before < 16 * 1024, f"RSS grew {before} -> {after} KiB"
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).status_code == 200


def test_serve_stays_reachable_past_100_idle_connections_and_closes_them(tmp_path):
    with central_process(tmp_path, "--channel-timeout", "2") as (_, port):
        idle = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(150)]
        try:
            # waitress's default of 100 connections would leave this waiting for the idle ones
            assert requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).status_code == 200
            assert all(s.recv(1) == b"" for s in idle), "the idle connections are closed by the server"
        finally:
            for s in idle:
                s.close()


def test_what_a_kiosk_logs_from_a_hostile_code_is_within_the_entrys_bounds():
    """A PC-Covid QR is unsigned: its name may hold control characters and run long. The
    kiosk's summary keeps it within the bounds the central checks, so it cannot block sync."""
    from kiosk.declarations import pccovid
    from kiosk.model import Entry, Presence, entry_problem, new_id

    declaration = pccovid.parse("001099012345|Nguyễn\x00Văn\u2028An\x1b[31m" + "Ư" * 500 + "|01011990")
    flags = tuple(f"flag{i}\r\n" for i in range(100))
    summary = type(declaration)(**{**declaration.__dict__, "flags": flags}).summary()
    entry = Entry(id=new_id(1795420812.0), site=SITE, kiosk="gate-1", t=1795420812.0, direction="in",
                  declaration=summary, fingerprint="0" * 32, ble=Presence("not_detected").summary(),
                  decision="review", reasons=("identity_only", "app_not_detected"))
    assert entry_problem(entry.to_json()) is None
    assert summary["holder"].startswith("NguyễnVăn\u2028An[31mƯ") and len(summary["flags"]) <= 64
