"""The kiosk side of sync: deliver the outbox to the central server in batches.

Protocol (docs/sync.md): POST {url}/api/v1/ingest with `Authorization: Bearer <kiosk token>`,
the body signed as kiosk.syncproto says, and a JSON body {"kiosk": ID, "entries": [...]};
the central answers {"stored": [ids], "duplicate": [ids]}. Both lists count as delivered, so
sending the same entries twice stores nothing twice. TLS certificates are verified, against
`sync.ca_bundle` when it is set.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import requests

from .. import syncproto
from ..exc import StoreUnavailable, SyncRefused

logger = logging.getLogger(__name__)


class SyncWorker:
    """A thread that drains the entry log's outbox; never blocks the door."""

    def __init__(self, entry_log, url: str, token: str, kiosk_id: str, clock,
                 interval: float = 5.0, batch_size: int = 100, max_backoff: float = 300.0,
                 timeout: float = 10.0, ca_bundle: str = ""):
        self.log = entry_log
        self.url = url.rstrip("/") + "/api/v1/ingest"
        self.kiosk_id = kiosk_id
        self.clock = clock
        self.interval = interval
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.timeout = timeout
        self._token = token
        self._session = requests.Session()
        # Passed on every request: requests lets REQUESTS_CA_BUNDLE in the environment
        # override a session-wide `verify`, and the kiosk's setting must win.
        self._verify = ca_bundle or True
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_success: float | None = None
        self.last_error: str | None = None
        self.delivered = 0
        self.refused = 0          # entries the central refused for good (set aside, logged)
        # What the kiosk says of itself in each batch ({"version", "backlog", "health"}), for
        # the central's kiosk page; None sends nothing (a central ignores fields it does not know).
        self.status: Callable[[], dict] | None = None

    @classmethod
    def from_settings(cls, settings, entry_log, clock) -> SyncWorker | None:
        if not settings["sync.url"]:
            return None
        return cls(entry_log, settings["sync.url"], settings["sync.token"], settings["kiosk.id"],
                   clock, settings["sync.interval"], settings["sync.batch_size"],
                   settings["sync.max_backoff"], ca_bundle=settings["sync.ca_bundle"])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._session.close()

    def nudge(self) -> None:
        """A new entry is waiting: try now rather than at the next interval."""
        self._wake.set()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                sent = self.push_once()
                failures = 0
                self.last_error = None
                if sent == self.batch_size:
                    continue                     # a backlog: drain at full speed
                wait = self.interval
            except (requests.RequestException, SyncRefused, StoreUnavailable) as e:
                failures += 1
                self.last_error = str(e)
                # Exponential backoff with full jitter, so many kiosks do not return together.
                wait = random.uniform(0, min(self.max_backoff, self.interval * 2 ** failures))
                logger.warning("sync failed (%s); next try in %.1f s", e, wait)
            except Exception as e:               # a bug must not end the thread that empties the outbox
                failures += 1
                self.last_error = f"{type(e).__name__}: {e}"
                wait = min(self.max_backoff, self.interval * 2 ** failures)
                logger.exception("sync failed unexpectedly; next try in %.1f s", wait)
            self._wake.wait(wait)
            self._wake.clear()

    def _set_aside(self, response, batch: list[dict]) -> bool:
        """When the central refuses one entry of the batch by name (a 400 naming the entry and
        the field: its shape, never a transient fault), take that entry out of the outbox with
        the reason kept on it, so the entries behind it are not held up forever. True when an
        entry was set aside."""
        try:
            answer = response.json()
        except ValueError:
            return False
        entry_id = answer.get("entry") if isinstance(answer, dict) else None
        if entry_id not in {e["id"] for e in batch}:
            return False
        reason = str(answer.get("error", "refused"))[:200]
        self.log.mark_synced([entry_id], self.clock.now(), refused=reason)
        self.refused += 1
        logger.error("the central refused entry %s for good (%s): set aside, kept on the kiosk", entry_id, reason)
        return True

    def push_once(self) -> int:
        """Send one batch; return how many entries the central confirmed."""
        batch = self.log.unsynced(self.batch_size)
        if not batch:
            return 0
        payload = {"kiosk": self.kiosk_id, "entries": batch}
        if self.status is not None:
            try:
                status = dict(self.status())
                if isinstance(status.get("backlog"), int):       # what waits once this batch is in
                    status["backlog"] = max(0, status["backlog"] - len(batch))
                payload["status"] = status
            except Exception:            # the entries matter; the status is a courtesy
                logger.exception("the kiosk's status for the central failed; sent without it")
        body, headers = syncproto.signed_request(self._token, payload)
        response = self._session.post(self.url, data=body, headers=headers, timeout=self.timeout,
                                      verify=self._verify)
        if response.status_code == 400 and self._set_aside(response, batch):
            return self.push_once()          # the rest of the batch, without the refused entry
        if response.status_code != 200:
            raise SyncRefused(f"central answered {response.status_code}: {response.text[:200]}")
        body = response.json()
        confirmed = list(body.get("stored", [])) + list(body.get("duplicate", []))
        sent_ids = {e["id"] for e in batch}
        confirmed = [i for i in confirmed if i in sent_ids]
        self.log.mark_synced(confirmed, self.clock.now())
        self.last_success = time.time()
        self.delivered += len(confirmed)
        return len(confirmed)
