"""Fixtures that build a kiosk from settings, with the replay camera and BLE, gpiozero's
mock pins, a real central server on 127.0.0.1 and a manual clock."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from kiosk import config
from kiosk.central import db as central_db
from kiosk.central.app import MAX_BODY_BYTES
from kiosk.central.app import create_app as create_central
from kiosk.clock import ManualClock
from kiosk.declarations import sitepass
from kiosk.serving import BackgroundServer

SHARED = Path(__file__).resolve().parents[2] / "shared"
SITE = "test-site"
OPERATOR_TOKEN = "operator-secret-token"
KIOSK_TOKEN = "kiosk-secret-token"


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll `predicate` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def site_key(tmp_path):
    path = tmp_path / "site-key.pem"
    sitepass.save_key(sitepass.new_key(), path)
    return path


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL server on 127.0.0.1 for the session (Debian's binaries); yields a
    function that creates a fresh database and returns its SQLAlchemy URL."""
    from kiosk.testing.pgcluster import PostgresMissing, private_postgres

    try:
        with private_postgres() as new_database:
            yield new_database
    except PostgresMissing as e:
        pytest.skip(str(e))


@pytest.fixture
def central_url(request, tmp_path):
    """The central's database: SQLite, or PostgreSQL when a test is parametrised with it."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return request.getfixturevalue("postgres")()
    return f"sqlite:///{tmp_path / 'central.db'}"


@pytest.fixture
def central(central_url):
    """A real central server (waitress; SQLite or PostgreSQL) on an ephemeral loopback port."""
    engine = central_db.connect(central_url)
    central_db.add_credential(engine, "gate-1", "kiosk", SITE, KIOSK_TOKEN)
    central_db.add_credential(engine, "ops", "operator", None, OPERATOR_TOKEN)
    server = BackgroundServer(create_central(engine=engine), "127.0.0.1", 0, threads=4, name="central",
                              max_body=MAX_BODY_BYTES + 1)   # one byte past the app's own bound: the app answers
    server.engine = engine
    yield server.start()
    server.stop()
    engine.dispose()


@pytest.fixture
def kiosk_settings(tmp_path, site_key):
    """Settings of a kiosk with no hardware: replay sources driven by the test, mock pins."""
    def make(**overrides):
        values = {
            "site.id": SITE, "kiosk.id": "gate-1", "data_dir": str(tmp_path / "kiosk"),
            "camera.backend": "replay", "ble.backend": "replay", "gpio.pin_factory": "mock",
            "sitepass.public_keys": [str(sitepass.public_path(site_key))],
            "door.open_seconds": 0.3, "web.port": 0,
            "web.operator_tokens": [hashlib.sha256(OPERATOR_TOKEN.encode()).hexdigest()],
            "sync.interval": 0.2, "sync.token": KIOSK_TOKEN,
        }
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        return config.load(env={}, base=config.defaults(), overrides=values)
    return make


@pytest.fixture
def make_kiosk(kiosk_settings, clock):
    from kiosk.checkpoint import Kiosk

    started = []

    def make(**overrides):
        kiosk = Kiosk(kiosk_settings(**overrides), clock=clock)
        kiosk.start()
        started.append(kiosk)
        return kiosk
    yield make
    for kiosk in started:
        kiosk.stop()
