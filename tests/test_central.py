"""The central server through real HTTP on 127.0.0.1, on SQLite and on PostgreSQL."""
import pytest
import requests

from kiosk import syncproto
from kiosk.central import db

from .conftest import KIOSK_TOKEN, OPERATOR_TOKEN, SITE

pytestmark = pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)


def _entry(i, kiosk="gate-1", site=SITE):
    """An entry as a kiosk writes it (Entry.to_json)."""
    return {"id": f"01J000000000000000000000{i:02d}", "site": site, "kiosk": kiosk,
            "time": f"2026-11-23T01:00:{i:02d}.000Z", "direction": "in",
            "declaration": {"format": "sitepass", "status": "valid", "holder": "Nguyễn Văn An",
                            "kind": None, "expires": "2026-11-24T01:00:00.000Z", "flags": []},
            "fingerprint": f"{i:032x}", "ble": {"outcome": "confirmed", "family": "bluezone", "rssi": -58,
                                                "count_near": 1},
            "decision": "allow", "reasons": [], "override": None, "synced_at": None}


def _post(central, body, token=KIOSK_TOKEN, now=None, tamper=None):
    raw, headers = syncproto.signed_request(token, body, now)
    if tamper:
        raw = tamper(raw)
    return requests.post(central.url + "/api/v1/ingest", data=raw, headers=headers, timeout=5)


def test_a_batch_is_stored_once(central):
    batch = [_entry(1), _entry(2)]
    r = _post(central, {"kiosk": "gate-1", "entries": batch})
    assert r.json() == {"stored": [batch[0]["id"], batch[1]["id"]], "duplicate": []}
    r = _post(central, {"kiosk": "gate-1", "entries": batch + [_entry(3)]})
    assert r.json() == {"stored": [_entry(3)["id"]], "duplicate": [batch[0]["id"], batch[1]["id"]]}
    listed = requests.get(central.url + "/api/v1/entries", timeout=5,
                          headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}).json()["entries"]
    assert [e["id"] for e in listed] == [_entry(i)["id"] for i in (1, 2, 3)]
    assert listed[0]["declaration"]["holder"] == "Nguyễn Văn An"


def test_refusals_store_nothing(central):
    cases = [
        (KIOSK_TOKEN, {"kiosk": "gate-1", "entries": "nope"}, 400),
        (KIOSK_TOKEN, {"kiosk": "gate-1", "entries": [{"id": 1}]}, 400),
        (KIOSK_TOKEN, {"kiosk": "gate-1", "entries": [_entry(1, kiosk="gate-9")]}, 403),
        (KIOSK_TOKEN, {"kiosk": "gate-1", "entries": [_entry(1, site="other")]}, 403),
        (KIOSK_TOKEN, {"kiosk": "gate-1", "entries": [_entry(2), dict(_entry(1), id="x" * 27)]}, 400),
        (KIOSK_TOKEN, {"kiosk": "gate-1", "entries": [dict(_entry(1), decision="allow" * 3)]}, 400),
        ("wrong", {"kiosk": "gate-1", "entries": [_entry(1)]}, 401),
        (OPERATOR_TOKEN, {"kiosk": "gate-1", "entries": [_entry(1)]}, 401),
    ]
    for token, body, status in cases:
        r = _post(central, body, token)
        assert r.status_code == status, body
        assert "error" in r.json()
    assert db.list_entries(central.engine) == []
    _, headers = syncproto.signed_request(KIOSK_TOKEN, {})
    headers["X-Kiosk-Signature"] = syncproto.signature(syncproto.key_for(KIOSK_TOKEN), headers["X-Kiosk-Timestamp"],
                                                       b"\xff not json")
    r = requests.post(central.url + "/api/v1/ingest", data=b"\xff not json", timeout=5, headers=headers)
    assert r.status_code == 400


def test_altered_stale_unsigned_or_replayed_batches_are_refused(central):
    import time

    batch = {"kiosk": "gate-1", "entries": [_entry(7)]}
    altered = _post(central, batch, tamper=lambda raw: raw.replace(b"allow", b"deny!"))
    assert altered.status_code == 401 and "signature does not match" in altered.json()["error"]
    stale = _post(central, batch, now=time.time() - 3600)
    assert stale.status_code == 401 and "old or ahead" in stale.json()["error"]
    unsigned = requests.post(central.url + "/api/v1/ingest", json=batch, timeout=5,
                             headers={"Authorization": f"Bearer {KIOSK_TOKEN}"})
    assert unsigned.status_code == 401 and "must be signed" in unsigned.json()["error"]
    assert db.list_entries(central.engine) == []
    raw, headers = syncproto.signed_request(KIOSK_TOKEN, batch)
    first = requests.post(central.url + "/api/v1/ingest", data=raw, headers=headers, timeout=5)
    replay = requests.post(central.url + "/api/v1/ingest", data=raw, headers=headers, timeout=5)
    assert first.status_code == 200 and replay.status_code == 409
    assert [e["id"] for e in db.list_entries(central.engine)] == [_entry(7)["id"]]


def test_operators_need_a_token(central):
    assert requests.get(central.url + "/api/v1/entries", timeout=5).status_code == 401
    r = requests.get(central.url + "/api/v1/entries", timeout=5,
                     headers={"Authorization": f"Bearer {KIOSK_TOKEN}"})
    assert r.status_code == 401


def test_kiosk_central_cli_registers_credentials(tmp_path, central_url):
    from click.testing import CliRunner

    from kiosk.central.cli import main

    url = central_url
    result = CliRunner().invoke(main, ["--db", url, "add-kiosk", "gate-7", "--site", "s"])
    assert result.exit_code == 0
    token = result.output.strip()
    cred = db.find_credential(db.connect(url), token)
    assert (cred["name"], cred["role"], cred["site"]) == ("gate-7", "kiosk", "s")


def test_the_per_site_daily_report_spans_the_sites_kiosks(central):
    db.add_credential(central.engine, "gate-2", "kiosk", SITE, "second-kiosk-token")
    first = [_entry(i) for i in range(1, 4)]
    second = [dict(_entry(i, kiosk="gate-2"), id=f"01J000000000000000000001{i:02d}", decision="deny")
              for i in range(1, 3)]
    assert _post(central, {"kiosk": "gate-1", "entries": first}).status_code == 200
    assert _post(central, {"kiosk": "gate-2", "entries": second}, token="second-kiosk-token").status_code == 200
    r = requests.get(central.url + "/api/v1/reports/daily", params={"site": SITE, "date": "2026-11-23"},
                     headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=5).json()
    assert (r["entries"], r["allow"], r["deny"], r["kiosks"]) == (5, 3, 2, ["gate-1", "gate-2"])
    assert r["app_confirmed_share"] == 1.0 and r["by_hour"][0]["hour"] == 8      # 01:00Z is 08:00 in Hà Nội
    assert requests.get(central.url + "/api/v1/reports/daily", params={"site": SITE, "date": "2026-11-23"},
                        timeout=5).status_code == 401


def test_kiosks_racing_with_the_same_entries_store_each_once(central):
    """Eight requests at once, each the same 40 entries in another order (so each is signed
    differently): the database decides, every entry is stored by exactly one of them."""
    from concurrent.futures import ThreadPoolExecutor

    entries = [_entry(i) for i in range(40)]
    bodies = [{"kiosk": "gate-1", "entries": entries[k * 5:] + entries[:k * 5]} for k in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = [r.json() for r in pool.map(lambda body: _post(central, body), bodies)]
    stored = [i for a in answers for i in a["stored"]]
    assert sorted(stored) == sorted(e["id"] for e in entries)          # each once, none twice
    for a in answers:
        assert sorted(a["stored"] + a["duplicate"]) == sorted(e["id"] for e in entries)
    assert len(db.list_entries(central.engine)) == 40


def test_an_override_sent_again_replaces_the_stored_body(central):
    first = _entry(9)
    assert _post(central, {"kiosk": "gate-1", "entries": [first]}).json()["stored"] == [first["id"]]
    overridden = dict(first, override={"action": "deny", "reason": "wrong person", "by": "guard",
                                       "at": "2026-11-23T01:01:00.000Z"})
    assert _post(central, {"kiosk": "gate-1", "entries": [overridden]}).json()["duplicate"] == [first["id"]]
    assert db.list_entries(central.engine)[0]["override"]["action"] == "deny"
