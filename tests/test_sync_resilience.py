"""Sync when the central is away for hours, fails half the time, or is slow: every entry
arrives exactly once, and the door never waits."""
from __future__ import annotations

import random
import threading
import time

import pytest
import requests

from kiosk import syncproto
from kiosk.central import db as central_db
from kiosk.central.app import MAX_BODY_BYTES
from kiosk.central.app import create_app as create_central
from kiosk.model import Entry, new_id
from kiosk.serving import BackgroundServer
from kiosk.testing import free_port

from .conftest import KIOSK_TOKEN, OPERATOR_TOKEN, SITE, wait_for


def entry(i: int, t0: float) -> Entry:
    t = t0 + i * 7.0                                     # a visitor every 7 s: hours of a gate
    return Entry(id=new_id(t), site=SITE, kiosk="gate-1", t=t, direction="in",
                 declaration={"format": "sitepass", "status": "valid", "holder": f"Khách {i}"},
                 fingerprint=f"{i:032x}", ble={"outcome": "confirmed"}, decision="allow", reasons=())


class Flaky:
    """WSGI middleware: fails before handling, or handles and then loses the answer, or is slow."""

    def __init__(self, app, fail_before=0.0, fail_after=0.0, delay=0.0, seed=3):
        self.app, self.fail_before, self.fail_after, self.delay = app, fail_before, fail_after, delay
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.calls = 0

    def __call__(self, environ, start_response):
        with self.lock:
            self.calls += 1
            roll = self.rng.random()
        time.sleep(self.delay)
        if roll < self.fail_before:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"down"]
        if roll < self.fail_before + self.fail_after:
            body = b"".join(self.app(environ, lambda *a, **k: None))      # stored, but the answer is lost
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"lost " + body[:0]]
        return self.app(environ, start_response)


def central_server(url, port, **flaky):
    engine = central_db.connect(url)
    if central_db.find_credential(engine, KIOSK_TOKEN) is None:
        central_db.add_credential(engine, "gate-1", "kiosk", SITE, KIOSK_TOKEN)
        central_db.add_credential(engine, "ops", "operator", None, OPERATOR_TOKEN)
    wrapped = Flaky(create_central(engine=engine), **flaky)
    server = BackgroundServer(wrapped, "127.0.0.1", port, threads=4, name="central",
                              max_body=MAX_BODY_BYTES).start()
    server.engine, server.flaky = engine, wrapped
    return server


def ids_at(server):
    return [e["id"] for e in central_db.list_entries(server.engine, limit=100_000)]


@pytest.mark.slow
@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("outage", [
    pytest.param({}, id="down-for-hours-then-back"),
    pytest.param({"fail_before": 0.25, "fail_after": 0.25}, id="500-half-the-time"),
    pytest.param({"delay": 0.15}, id="slow"),
])
def test_every_entry_arrives_exactly_once(make_kiosk, central_url, outage):
    port = free_port()
    kiosk = make_kiosk(sync__url=f"http://127.0.0.1:{port}", sync__interval=0.05, sync__max_backoff=0.3,
                       sync__batch_size=200)
    t0 = kiosk.clock.now()
    n = 2000 if not outage else 600                      # ~4 hours of a gate while the central is down
    entries = [entry(i, t0) for i in range(n)]
    for e in entries:
        assert kiosk.log.append(e)
    time.sleep(0.3)                                       # the sync thread tries and fails meanwhile
    assert kiosk.sync.last_error and kiosk.log.backlog() == n
    # the door kept working while the central was away
    late = entry(n, t0)
    start = time.monotonic()
    assert kiosk.log.append(late) and time.monotonic() - start < 1.0
    entries.append(late)
    central = central_server(central_url, port, **outage)
    try:
        wait_for(lambda: kiosk.log.backlog() == 0, timeout=120, interval=0.1)
        got = ids_at(central)
        assert len(got) == len(set(got)) == len(entries)
        assert set(got) == {e.id for e in entries}
        if outage.get("fail_after"):
            assert central.flaky.calls > len(entries) / 200, "answers were lost and batches re-sent"
    finally:
        central.stop()
        central.engine.dispose()


def test_batches_that_must_be_refused(central):
    e = entry(1, 1_795_000_000.0).to_json()
    for token, body, status in (("wrong", {"kiosk": "gate-1", "entries": [e]}, 401),
                                (KIOSK_TOKEN, {"kiosk": "gate-1", "entries": [dict(e, kiosk="gate-2")]}, 403),
                                (KIOSK_TOKEN, {"entries": [{"id": "x"}]}, 400)):
        raw, headers = syncproto.signed_request(token, body)
        r = requests.post(central.url + "/api/v1/ingest", data=raw, headers=headers, timeout=5)
        assert r.status_code == status and "error" in r.json()
    assert central_db.list_entries(central.engine) == []


def test_sync_verifies_the_centrals_tls_certificate(make_kiosk, tmp_path):
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from .fixtures.tls import make_tls

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    ca_bundle, context = make_tls(tmp_path)
    engine = central_db.connect(f"sqlite:///{tmp_path / 'central.db'}")
    central_db.add_credential(engine, "gate-1", "kiosk", SITE, KIOSK_TOKEN)
    server = make_server("127.0.0.1", 0, create_central(engine=engine), handler_class=Quiet)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        untrusting = make_kiosk(sync__url=url, sync__interval=0.05, sync__max_backoff=0.2,
                                data_dir=str(tmp_path / "a"))
        untrusting.log.append(entry(1, untrusting.clock.now()))
        wait_for(lambda: untrusting.sync.last_error and "certificate" in untrusting.sync.last_error.lower())
        assert central_db.list_entries(engine) == []
        trusting = make_kiosk(sync__url=url, sync__interval=0.05, sync__ca_bundle=str(ca_bundle),
                              data_dir=str(tmp_path / "b"))
        e = entry(2, trusting.clock.now())
        trusting.log.append(e)
        wait_for(lambda: trusting.log.backlog() == 0)
        assert [x["id"] for x in central_db.list_entries(engine)] == [e.id]
    finally:
        server.shutdown()


def test_an_entry_the_central_refuses_for_good_does_not_hold_up_the_rest(make_kiosk, tmp_path):
    """An entry the central refuses by name (its shape: never a passing fault) is set aside
    with the reason kept on the kiosk; every entry behind it still arrives."""
    port = free_port()
    central = central_server(f"sqlite:///{tmp_path / 'central.db'}", port)
    try:
        kiosk = make_kiosk(sync__url=f"http://127.0.0.1:{port}", sync__interval=0.05,
                           sync__max_backoff=0.2, sync__batch_size=10)
        t0 = kiosk.clock.now()
        good = [entry(i, t0) for i in range(25)]
        bad = entry(5, t0).to_json() | {"id": new_id(t0 + 5 * 7.0 + 1), "declaration": "<script>"}
        kiosk.log.import_entries([e.to_json() for e in good[:5]] + [bad] + [e.to_json() for e in good[5:]])
        wait_for(lambda: kiosk.log.backlog() == 0, timeout=30, interval=0.05)
        assert sorted(ids_at(central)) == sorted(e.id for e in good)
        assert kiosk.sync.refused == 1 and kiosk.health()["sync"]["refused"] == 1
        kept = kiosk.log.get(bad["id"])
        assert kept is not None and "declaration" in kept["sync_refused"]
    finally:
        central.stop()
        central.engine.dispose()
