"""The operator API through a real server on 127.0.0.1: auth, filters, pagination over
10,000 entries, CSV for Excel, the daily report, the rate limit, and the OpenAPI document."""
from __future__ import annotations

import csv
import hashlib
import io
import random
from datetime import UTC, datetime

import jsonschema
import pytest
import requests

from kiosk.model import Entry, new_id
from kiosk.store import EntryLog
from kiosk.web.openapi import SPEC

from .conftest import OPERATOR_TOKEN

T0 = datetime(2026, 11, 22, 0, 30, tzinfo=UTC).timestamp()     # 07:30 in Hà Nội
NAMES = ["Nguyễn Văn An", "Trần Thị Bình", "Lê Văn Cường", 'Phạm "Bé" Dũng, Jr.', None]
AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def seed(data_dir, n: int) -> list[dict]:
    """n entries over two days, written in one go before the kiosk starts."""
    rng = random.Random(5)
    docs = []
    for i in range(n):
        t = T0 + i * (2 * 86400 / n)
        docs.append(Entry(
            id=new_id(t, rng.randbytes(10)), site="test-site", kiosk="gate-1", t=t, direction="in",
            declaration={"format": "sitepass", "status": rng.choice(["valid", "valid", "invalid"]),
                         "holder": NAMES[i % len(NAMES)], "kind": None, "expires": None, "flags": []},
            fingerprint="f" * 32, ble={"outcome": rng.choice(["confirmed", "not_detected"]), "family": None,
                                       "rssi": None, "count_near": 0},
            decision=rng.choice(["allow", "deny", "review"]), reasons=("app_not_detected",)).to_json())
    entry_log = EntryLog(data_dir / "log")
    entry_log.start()
    entry_log.import_entries(docs)
    entry_log.stop()
    return sorted(docs, key=lambda d: d["id"])


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A kiosk whose log holds 10,000 entries."""
    from kiosk import config
    from kiosk.checkpoint import Kiosk
    from kiosk.clock import ManualClock

    root = tmp_path_factory.mktemp("api")
    docs = seed(root / "kiosk", 10_000)
    base = config.defaults()
    settings = config.load(env={}, base=base, overrides={
        "site.id": "test-site", "kiosk.id": "gate-1", "data_dir": str(root / "kiosk"),
        "camera.backend": "replay", "ble.backend": "replay", "gpio.pin_factory": "mock", "web.port": 0,
        "web.operator_tokens": ["ops:" + hashlib.sha256(OPERATOR_TOKEN.encode()).hexdigest()],
        "web.rate_limit": 100_000})
    kiosk = Kiosk(settings, clock=ManualClock(T0 + 2 * 86400))
    kiosk.start()
    kiosk.docs = docs
    yield kiosk
    kiosk.stop()


def get(kiosk, path, **params):
    return requests.get(kiosk.web_url + path, params=params, headers=AUTH, timeout=30)


def validate(body, schema_name):
    jsonschema.validate(body, {**SPEC, "$ref": f"#/components/schemas/{schema_name}"})


def test_no_token_no_data(big):
    for path in ("/api/v1/entries", "/api/v1/entries.csv", "/api/v1/reports/daily", "/api/v1/health"):
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": OPERATOR_TOKEN}):
            r = requests.get(big.web_url + path, headers=headers, timeout=10)
            assert r.status_code == 401, (path, headers)
            assert r.json() == {"error": "a valid operator token is required"}
            validate(r.json(), "Error")


def test_pagination_over_ten_thousand_entries_has_no_gaps_or_repeats(big, caplog):
    caplog.set_level("INFO", logger="kiosk.export")
    seen, cursor, pages = [], None, 0
    while True:
        r = get(big, "/api/v1/entries", limit=1000, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200
        body = r.json()
        if pages == 0:
            validate(body, "EntryPage")
        seen += [e["id"] for e in body["entries"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 10
    assert seen == [d["id"] for d in big.docs]
    assert "export by ops: entries json" in caplog.text


def test_filters(big):
    docs = big.docs
    r = get(big, "/api/v1/entries", decision="deny", app="confirmed", limit=1000).json()
    expected = [d["id"] for d in docs if d["decision"] == "deny" and d["ble"]["outcome"] == "confirmed"][:1000]
    assert [e["id"] for e in r["entries"]] == expected
    r = get(big, "/api/v1/entries", q="trần thị", status="valid", limit=1000).json()
    assert r["entries"] and all(e["declaration"]["holder"] == "Trần Thị Bình" and
                                e["declaration"]["status"] == "valid" for e in r["entries"])
    # 'from' and 'to' dates are local days (Asia/Ho_Chi_Minh): 2026-11-22 is 17:00Z on the 21st to 17:00Z on the 22nd
    day = get(big, "/api/v1/entries", **{"from": "2026-11-22", "to": "2026-11-22", "limit": 1000}).json()["entries"]
    assert day and all("2026-11-21T17:00:00.000Z" <= e["time"] < "2026-11-22T17:00:00.000Z" for e in day)
    assert get(big, "/api/v1/entries", decision="maybe").status_code == 400
    assert get(big, "/api/v1/entries", **{"from": "yesterday"}).status_code == 400


def test_csv_opens_in_excel_with_vietnamese_names(big):
    r = get(big, "/api/v1/entries.csv", **{"from": "2026-11-22", "to": "2026-11-22"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    raw = r.content
    assert raw.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    assert b"\r\n" in raw
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0][:5] == ["id", "time", "decision", "reasons", "holder"]
    holders = {row[4] for row in rows[1:]}
    assert {"Nguyễn Văn An", "Trần Thị Bình", 'Phạm "Bé" Dũng, Jr.', ""} <= holders
    json_day = get(big, "/api/v1/entries", **{"from": "2026-11-22", "to": "2026-11-22", "limit": 1000}).json()
    assert len(rows) - 1 >= len(json_day["entries"])
    assert '"Phạm ""Bé"" Dũng, Jr."' in raw.decode("utf-8-sig"), "quotes doubled, field quoted"


def test_daily_report(big):
    r = get(big, "/api/v1/reports/daily", date="2026-11-22")
    body = r.json()
    validate(body, "DailyReport")
    day = [d for d in big.docs if "2026-11-21T17:00:00.000Z" <= d["time"] < "2026-11-22T17:00:00.000Z"]
    assert body["entries"] == len(day)
    assert body["allow"] + body["deny"] + body["review"] == len(day)
    assert body["app_confirmed_share"] == round(sum(d["ble"]["outcome"] == "confirmed" for d in day) / len(day), 4)
    assert sum(h["entries"] for h in body["by_hour"]) == len(day)
    assert [h["hour"] for h in body["by_hour"]] == list(range(7, 24))     # the log starts at 07:30 local
    rows = list(csv.reader(io.StringIO(get(big, "/api/v1/reports/daily", date="2026-11-22", format="csv")
                                       .content.decode("utf-8-sig"))))
    assert rows[0][:2] == ["Giờ", "Lượt quét"] and rows[-1][:2] == ["Tổng", str(len(day))]     # report.language vi
    english = list(csv.reader(io.StringIO(get(big, "/api/v1/reports/daily", date="2026-11-22", format="csv",
                                              language="en").content.decode("utf-8-sig"))))
    assert english[0][:2] == ["Hour", "Scans"] and english[-1][:2] == ["Total", str(len(day))]
    assert get(big, "/api/v1/reports/daily", date="22/11/2026").status_code == 400


def test_health_and_openapi_cover_every_route(big):
    validate(get(big, "/api/v1/health").json(), "Health")
    spec = requests.get(big.web_url + "/api/v1/openapi.json", timeout=10).json()
    assert spec == SPEC
    app = big.web_app
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1")}
    assert routes == set(SPEC["paths"]), routes ^ set(SPEC["paths"])
    jsonschema.Draft202012Validator.check_schema({**SPEC["components"]["schemas"]["Entry"]})


def test_rate_limit(make_kiosk):
    kiosk = make_kiosk(web__rate_limit=5)
    codes = [requests.get(kiosk.web_url + "/api/v1/health", headers=AUTH, timeout=5).status_code for _ in range(7)]
    assert codes == [200] * 5 + [429, 429]


def test_guard_pages_answer_the_kiosks_own_screen_only(make_kiosk):
    kiosk = make_kiosk()
    client = kiosk.web_app.test_client()        # the kiosk's own app, asked as another machine would
    assert client.get("/", environ_base={"REMOTE_ADDR": "192.168.1.50"}).status_code == 403
    assert client.post("/guard/override", json={}, environ_base={"REMOTE_ADDR": "192.168.1.50"}).status_code == 403
    assert client.get("/", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200


def test_kiosk_export_reads_the_log_beside_the_running_kiosk(big, tmp_path):
    from click.testing import CliRunner

    from kiosk.cli import main

    env = {"KIOSK_DATA_DIR": str(big.data_dir), "KIOSK_TIMEZONE": "Asia/Ho_Chi_Minh"}
    out = tmp_path / "day.csv"
    result = CliRunner().invoke(main, ["export", "--from", "2026-11-22", "--to", "2026-11-22", "--out", str(out)],
                                env=env)
    assert result.exit_code == 0, result.output
    api = get(big, "/api/v1/entries.csv", **{"from": "2026-11-22", "to": "2026-11-22"}).content.decode("utf-8")
    assert out.read_bytes().decode("utf-8") == api, "the command and the API give the same file"
    result = CliRunner().invoke(main, ["export", "--format", "json", "--out", str(tmp_path / "all.json")], env=env)
    import json
    everything = json.loads((tmp_path / "all.json").read_text(encoding="utf-8"))
    assert [e["id"] for e in everything] == [d["id"] for d in big.docs]
    assert "fingerprint" not in everything[0]
