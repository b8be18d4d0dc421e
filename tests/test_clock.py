"""A Pi's clock: no battery-backed RTC, fake-hwclock at boot, a step when NTP arrives.

Stories of a kiosk whose clock is not to be trusted: the door sends time verdicts to a guard,
entries carry the clock_unsynced mark to the central, and a step back never puts ids out of
order or an entry in a day folder where its id does not lead.
"""
from __future__ import annotations

import os
import stat
from datetime import UTC, datetime

import pytest
import requests

from kiosk import policy
from kiosk.central import db as central_db
from kiosk.clock import (
    BEHIND,
    BUILD_FLOOR,
    SYNCED,
    UNKNOWN,
    UNSYNCED,
    ClockWatch,
    EntryStamps,
    ManualClock,
    judge,
    ntp_synchronised,
)
from kiosk.declarations import sitepass
from kiosk.model import (
    ALLOW,
    DENY,
    EXPIRED,
    INVALID,
    REVIEW,
    VALID,
    Declaration,
    Presence,
    Scan,
    entry_problem,
    id_time,
    iso,
)
from kiosk.store.days import day_of_id, misplaced

from .conftest import OPERATOR_TOKEN, SITE, wait_for

T0 = datetime(2026, 11, 22, 0, 0, 30, tzinfo=UTC).timestamp()    # 07:00:30 in Hà Nội
HERE = Presence("confirmed", "bluezone", -60, 1)


# -- the judgement (pure) ---------------------------------------------------------------------
@pytest.mark.parametrize("synchronised, floor, require_sync, status, trusted", [
    (True, 0.0, False, SYNCED, True),
    (False, 0.0, False, UNSYNCED, False),
    (None, 0.0, False, UNKNOWN, True),                 # CI, a container, the demo
    (None, 0.0, True, UNKNOWN, False),                 # clock.require_sync = true
    (None, T0 + 600, False, BEHIND, False),            # reads earlier than the newest entry
    (True, T0 + 600, False, SYNCED, True),             # NTP corrected a clock that ran ahead
    (False, T0 + 600, False, UNSYNCED, False),
    (None, T0 + 0.5, False, UNKNOWN, True),            # NTP's ordinary small step
])
def test_the_clock_is_judged_by_ntp_and_the_newest_entry(synchronised, floor, require_sync, status, trusted):
    state = judge(T0, synchronised, floor, require_sync)
    assert (state.status, state.trusted) == (status, trusted)
    assert state.to_json()["floor"] == iso(max(floor, BUILD_FLOOR))


def test_a_clock_before_the_build_date_is_behind_whatever_ntp_says():
    state = judge(BUILD_FLOOR - 86400, True, 0.0, False)
    assert (state.status, state.trusted) == (BEHIND, False)


# -- the policy's clock rule (pure) ----------------------------------------------------------
RULES = policy.Rules()


@pytest.mark.parametrize("declaration, trusted_outcome, reasons", [
    (Declaration("sitepass", VALID), ALLOW, ["clock_unsynced"]),
    (Declaration("sitepass", EXPIRED, ("expired",)), DENY, ["clock_unsynced", "expired"]),
    (Declaration("sitepass", INVALID, ("not_yet_valid",)), DENY, ["clock_unsynced", "not_yet_valid"]),
    (Declaration("eu-dcc", EXPIRED, ("expired",)), DENY, ["clock_unsynced", "expired"]),
    (Declaration("eu-dcc", INVALID, ("test_too_old",)), DENY, ["clock_unsynced", "test_too_old"]),
    (Declaration("eu-dcc", VALID, flags=("fever",)), REVIEW, ["clock_unsynced", "declared:fever"]),
])
def test_an_untrusted_clock_sends_time_verdicts_to_review_with_a_reason(declaration, trusted_outcome, reasons):
    assert policy.decide(declaration, HERE, None, RULES).outcome == trusted_outcome
    decision = policy.decide(declaration, HERE, None, RULES, clock_trusted=False)
    assert (decision.outcome, list(decision.reasons)) == (REVIEW, reasons)


@pytest.mark.parametrize("declaration", [
    Declaration("sitepass", INVALID, ("bad_signature",)),
    Declaration("eu-dcc", INVALID, ("wrong_key_usage", "expired")),     # forged whatever the time
    Declaration("eu-dcc", INVALID, ("vaccination_incomplete", "test_too_old")),
    Declaration("unknown", "unknown", ("unknown_code",)),
])
def test_a_verdict_that_does_not_rest_on_the_time_stands(declaration):
    assert policy.decide(declaration, HERE, None, RULES, clock_trusted=False) == \
        policy.decide(declaration, HERE, None, RULES)


# -- ids and stamps across a step back (pure) ------------------------------------------------
def test_a_step_back_within_the_day_keeps_the_clocks_reading_and_ids_in_order():
    stamps = EntryStamps()
    t1, id1, moved1 = stamps.issue(T0 + 3600)
    t2, id2, moved2 = stamps.issue(T0 + 600)              # the clock stepped back 50 minutes
    t3, id3, moved3 = stamps.issue(T0 + 600)              # same millisecond again
    assert (t2, t3) == (T0 + 600, T0 + 600) and not (moved1 or moved2 or moved3)
    assert id1 < id2 < id3
    assert day_of_id(id2) == iso(t2)[:10] == iso(t1)[:10]


def test_a_step_back_over_midnight_keeps_the_entry_in_the_day_its_id_names():
    stamps = EntryStamps()
    t1, id1, _ = stamps.issue(T0)                            # 00:00:30 UTC
    t2, id2, moved = stamps.issue(T0 - 3600)                 # 23:00:30 the day before
    assert moved and id1 < id2
    assert iso(t2) == iso(T0)[:10] + "T00:00:00.000Z"      # the start of the floor's day
    assert day_of_id(id2) == iso(t2)[:10]


def test_ids_continue_from_the_newest_entry_after_a_restart():
    first = EntryStamps()
    _, newest, _ = first.issue(T0 + 7200)
    again = EntryStamps()
    again.seed(newest)
    again.seed(first.issue(T0)[1][:10] + "0" * 16)          # an older id does not lower the floor
    _, next_id, _ = again.issue(T0)                          # fake-hwclock: an hour and more behind
    assert next_id > newest and id_time(next_id) == id_time(newest)


# -- a kiosk whose clock is not synchronised ---------------------------------------------------
def scan(kiosk, code: str):
    """A visitor shows `code`; the door decides (the camera's path from the decoded payload on)."""
    return kiosk.handle_scan(Scan(code.encode(), kiosk.clock.now())).to_json()


def test_before_ntp_a_valid_pass_goes_to_the_guard_and_the_entry_is_marked(make_kiosk, site_key, clock):
    clock.set_synchronised(False)                  # a Pi at boot, before the network
    kiosk = make_kiosk(policy__no_app="warn")
    key = sitepass.load_private_key(site_key)
    assert kiosk.health()["clock"]["status"] == UNSYNCED and not kiosk.health()["clock"]["trusted"]

    entry = scan(kiosk, sitepass.issue(key, SITE, "Nguyễn Văn An", clock.now(), 3600))
    assert entry["decision"] == REVIEW and "clock_unsynced" in entry["reasons"]
    assert entry["clock_unsynced"] is True
    expired = scan(kiosk, sitepass.issue(key, SITE, "Trần Thị Bình", clock.now() - 7200, 3600))
    assert expired["decision"] == REVIEW, "an expiry judged by an unsynchronised clock is not a silent deny"
    assert {"clock_unsynced", "expired"} <= set(expired["reasons"])
    assert kiosk.log.get(entry["id"])["clock_unsynced"] is True

    clock.set_synchronised(True)                   # timesyncd reached its server
    assert kiosk.clock_watch.check().status == SYNCED
    later = scan(kiosk, sitepass.issue(key, SITE, "Lê Văn Cường", clock.now(), 3600))
    assert later["decision"] == ALLOW and "clock_unsynced" not in later
    assert kiosk.health()["clock"]["status"] == SYNCED


def test_without_timedatectl_the_setting_decides(make_kiosk, site_key, clock):
    code = sitepass.issue(sitepass.load_private_key(site_key), SITE, "Nguyễn Văn An", clock.now(), 3600)
    relaxed = make_kiosk(policy__no_app="warn")
    assert relaxed.health()["clock"]["status"] == UNKNOWN
    assert scan(relaxed, code)["decision"] == ALLOW
    strict = make_kiosk(policy__no_app="warn", clock__require_sync=True, data_dir=str(relaxed.data_dir) + "-2")
    entry = scan(strict, code)
    assert entry["decision"] == REVIEW and entry["clock_unsynced"] is True


def test_fake_hwclock_behind_the_newest_entry_keeps_ids_in_order_across_restarts(
        kiosk_settings, site_key, tmp_path):
    from kiosk.checkpoint import Kiosk

    settings = kiosk_settings(policy__no_app="warn")
    key = sitepass.load_private_key(site_key)
    clock = ManualClock(T0 + 1800)                       # 07:30 in Hà Nội, on a Pi with NTP
    clock.set_synchronised(True)
    kiosk = Kiosk(settings, clock=clock)
    kiosk.start()
    try:
        before = scan(kiosk, sitepass.issue(key, SITE, "Nguyễn Văn An", T0, 7200))
    finally:
        kiosk.stop()

    # A power cut; fake-hwclock restores its hourly save: 23:10 UTC the day before, no network.
    clock.set(T0 - 3000)
    clock.set_synchronised(False)
    kiosk = Kiosk(settings, clock=clock)
    kiosk.start()
    try:
        assert kiosk.health()["clock"]["status"] == UNSYNCED
        after = scan(kiosk, sitepass.issue(key, SITE, "Trần Thị Bình", T0 - 3600, 7200))
        clock.advance(1)
        third = scan(kiosk, sitepass.issue(key, SITE, "Lê Văn Cường", T0 - 3600, 7200))
        assert before["id"] < after["id"] < third["id"]
        for entry in (after, third):
            assert entry["clock_unsynced"] is True and entry["decision"] == REVIEW
            # Stamped in the day its id names, so the log finds it by id.
            assert entry["time"][:10] == day_of_id(entry["id"]) == before["time"][:10]
            assert kiosk.log.get(entry["id"])["id"] == entry["id"]
        assert kiosk.override(third["id"], "allow", "why_document")["override"]["action"] == "allow"
        assert [d["id"] for d in kiosk.log.query()] == [before["id"], after["id"], third["id"]]
        folders = sorted(p.name for p in (kiosk.data_dir / "log").iterdir() if p.name[:2] == "20")
        assert folders == [before["time"][:10]], "no folder for a day the clock wrongly reads"
        assert misplaced(kiosk.data_dir / "log") == []
    finally:
        kiosk.stop()


@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
def test_the_central_keeps_the_mark(make_kiosk, central, site_key, clock):
    clock.set_synchronised(False)
    kiosk = make_kiosk(sync__url=central.url, policy__no_app="warn")
    key = sitepass.load_private_key(site_key)
    marked = scan(kiosk, sitepass.issue(key, SITE, "Nguyễn Văn An", clock.now(), 3600))
    clock.set_synchronised(True)
    kiosk.clock_watch.check()
    clock.advance(5)
    plain = scan(kiosk, sitepass.issue(key, SITE, "Trần Thị Bình", clock.now(), 3600))
    wait_for(lambda: kiosk.log.backlog() == 0)

    r = requests.get(central.url + "/api/v1/entries", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
                     timeout=10)
    bodies = {e["id"]: e for e in r.json()["entries"]}
    assert bodies[marked["id"]]["clock_unsynced"] is True and "clock_unsynced" not in bodies[plain["id"]]
    assert [e["id"] for e in central_db.list_entries(central.engine, clock_unsynced=True)] == [marked["id"]]
    assert [e["id"] for e in central_db.list_entries(central.engine, clock_unsynced=False)] == [plain["id"]]


@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
def test_the_central_adds_the_column_to_an_older_database(central_url):
    from sqlalchemy import create_engine, text

    old = create_engine(central_url)
    with old.begin() as conn:                         # the entries table as it was before the mark
        conn.execute(text('CREATE TABLE entries (id VARCHAR(26) PRIMARY KEY, site VARCHAR(100) NOT NULL, '
                          'kiosk VARCHAR(100) NOT NULL, "time" VARCHAR(30) NOT NULL, '
                          'decision VARCHAR(10) NOT NULL, received_at VARCHAR(30) NOT NULL, body TEXT NOT NULL)'))
        conn.execute(text("INSERT INTO entries VALUES ('01KAQ0000000000000000000AA', 's', 'k', "
                          "'2026-11-22T00:00:30.000Z', 'allow', '2026-11-22T00:00:31.000Z', '{}')"))
    old.dispose()
    engine = central_db.connect(central_url)
    try:
        assert [e for e in central_db.list_entries(engine, clock_unsynced=False)] == [{}]
        assert central_db.list_entries(engine, clock_unsynced=True) == []
    finally:
        engine.dispose()


def test_the_entry_schema_takes_the_mark_as_true_only(make_kiosk, site_key, clock):
    clock.set_synchronised(False)
    kiosk = make_kiosk(policy__no_app="warn")
    entry = scan(kiosk, sitepass.issue(sitepass.load_private_key(site_key), SITE, "An", clock.now(), 60))
    assert entry_problem(entry) is None
    for wrong in (False, "yes", 1):
        assert entry_problem({**entry, "clock_unsynced": wrong})[0] == "clock_unsynced"


# -- timedatectl, the real program or a stand-in on PATH --------------------------------------
def fake_timedatectl(folder, script: str) -> None:
    path = folder / "timedatectl"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize("script, answer", [
    ('echo yes', True), ('echo no', False),
    ('echo "System has not been booted with systemd" >&2; exit 1', None),
    ("exec sleep 30", None),                            # D-Bus hangs: the answer is "cannot tell"
])
def test_what_timedatectl_says(tmp_path, monkeypatch, script, answer):
    fake_timedatectl(tmp_path, script)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert ntp_synchronised(timeout=0.5) is answer


def test_timedatectl_does_not_speak_on_the_kiosks_channel_to_systemd(tmp_path, monkeypatch):
    # systemd 254+ tools send "ERRNO=..." to $NOTIFY_SOCKET when they fail; systemd would
    # take it for the kiosk's own status (seen in test_operations' notify test).
    fake_timedatectl(tmp_path, f'echo "[$NOTIFY_SOCKET$WATCHDOG_USEC]" > {tmp_path}/seen; exit 1')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    assert ntp_synchronised() is None
    assert (tmp_path / "seen").read_text() == "[]\n"


def test_the_watch_reports_a_change_once(clock):
    seen = []
    watch = ClockWatch(clock, on_change=seen.append)
    watch.check()
    watch.check()
    clock.set_synchronised(False)
    watch.check()
    assert [s.status for s in seen] == [UNKNOWN, UNSYNCED]


@pytest.mark.parametrize("script, status, word", [
    ("echo yes", "OK", "synced"), ("echo no", "FAIL", "unsynced"), ("exit 1", "WARN", "unknown"),
])
def test_doctor_shows_the_clock(kiosk_settings, tmp_path, monkeypatch, script, status, word, clock):
    from kiosk.doctor import check_clock

    fake_timedatectl(tmp_path, script)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    finding = check_clock(kiosk_settings(), clock)
    assert (finding.status, finding.found.split(":")[0]) == (status, word)


def test_doctor_fails_a_clock_behind_the_newest_entry(make_kiosk, kiosk_settings, site_key, tmp_path,
                                                    monkeypatch, clock):
    from kiosk.doctor import check_clock

    kiosk = make_kiosk(policy__no_app="warn")
    scan(kiosk, sitepass.issue(sitepass.load_private_key(site_key), SITE, "An", clock.now(), 3600))
    fake_timedatectl(tmp_path, "exit 1")             # nothing says, as in a container
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    clock.advance(-3600)
    finding = check_clock(kiosk_settings(), clock)    # beside the running kiosk, read-only
    assert (finding.status, finding.found.split(":")[0]) == ("FAIL", "behind")


def test_the_health_strip_words_the_clock_in_both_languages(make_kiosk, clock):
    from kiosk.clock import clock_view
    from kiosk.web.i18n import LANGUAGES, catalogue

    clock.set_synchronised(False)
    kiosk = make_kiosk()
    for lang in LANGUAGES:
        ok, text = clock_view(kiosk.clock_health(), catalogue(lang))
        assert not ok and text.startswith(catalogue(lang)["clock_unsynced"] + " · ")
    clock.set_synchronised(True)
    kiosk.clock_watch.check()
    assert clock_view(kiosk.clock_health(), catalogue("vi")) == (True, "đồng bộ")


def test_misplaced_names_an_entry_whose_id_and_time_disagree(tmp_path):
    from kiosk.model import Entry, new_id
    from kiosk.store import EntryLog

    log = EntryLog(tmp_path / "log")
    log.start()
    try:
        # What ids from the floor with the clock's reading kept would do after a step back
        # over midnight: the id names today, the time (and so the folder) yesterday.
        stray = Entry(id=new_id(T0), site="s", kiosk="k", t=T0 - 3600, direction="in",
                      declaration={"format": "sitepass", "status": "valid"}, fingerprint="f",
                      ble={"outcome": "confirmed"}, decision="allow", reasons=())
        log.append(stray)
        assert log.get(stray.id) is None, "the log looks for it in the day its id names"
    finally:
        log.stop()
    assert misplaced(tmp_path / "log") == [stray.id]


def test_a_step_of_the_wall_clock_mid_presentation_neither_splits_nor_joins_presentations(make_kiosk, site_key,
                                                                                         clock):
    """NTP corrects a clock 6 h ahead while a visitor holds the phone up: still one scan (the
    soak logged one code twice when its clock stepped back between two frames); a visitor who
    comes back 5 s later is a new scan whatever the wall clock did."""
    from kiosk.demo.scene import visitor_frame
    from kiosk.model import Frame

    kiosk = make_kiosk(policy__no_app="warn")
    code = sitepass.issue(sitepass.load_private_key(site_key), SITE, "Nguyễn Văn An", clock.now(), 7200)
    image = visitor_frame(code)

    def frame():
        return Frame(image, clock.now(), clock.monotonic())

    clock.set(clock.now() + 6 * 3600)                 # ahead: fake-hwclock's guess, no NTP yet
    assert len(kiosk.handle_frame(frame())) == 1
    clock.advance(0.1)
    clock.set(clock.now() - 6 * 3600)                 # NTP arrives between two frames
    assert kiosk.handle_frame(frame()) == []          # the same phone, still held up
    clock.advance(0.1)
    assert kiosk.handle_frame(frame()) == []
    kiosk.handle_frame(Frame(visitor_frame(None), clock.now(), clock.monotonic()))
    clock.advance(5)                                  # gone for 5 s, and back
    clock.set(clock.now() + 3600)                     # while the clock stepped forward
    assert len(kiosk.handle_frame(frame())) == 1
    assert len(kiosk.log.query()) == 2
