"""Run the demo: prepare its data folder, start a central server and the kiosk."""
from __future__ import annotations

import hashlib
import logging
import secrets
import time
from pathlib import Path

import cv2

from .. import config
from ..declarations import sitepass
from ..model import final_decision
from ..serving import BackgroundServer
from ..shutdown import stop_on_signals
from . import CAPTURE, FPS, HERE, PERIOD, SCENE
from .scene import visitor_frame

log = logging.getLogger("kiosk.demo")

PASS_VALIDITY = 7 * 86400


def _payload(code: str, site: str, site_key, forger_key, now: float) -> str:
    kind, _, value = code.partition(":")
    if kind == "pass":
        return sitepass.issue(site_key, site, value, now, PASS_VALIDITY)
    if kind == "forged":
        # Signed with another key but claiming the site's key id: a tampered pass.
        kid = sitepass.cose.key_id(site_key.public_key())
        return sitepass.issue(forger_key, site, value, now, PASS_VALIDITY, kid=kid)
    return value


def render_frames(folder: Path, site: str, site_key, now: float) -> int:
    """Render one loop of SCENE at FPS into `folder`; return the number of frames."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.jpg"):
        old.unlink()
    forger = sitepass.new_key()
    payloads: dict[str, str] = {}
    count = int(PERIOD * FPS)
    for i in range(count):
        t = i / FPS
        visit = next((v for v in SCENE if v.start <= t < v.end), None)
        text = None
        if visit is not None:
            if visit.code not in payloads:
                payloads[visit.code] = _payload(visit.code, site, site_key, forger, now)
            text = payloads[visit.code]
        frame = visitor_frame(text, seed=i, angle=(i * 7) % 21 - 10, centre=(300 + (i * 13) % 60, 240))
        cv2.imwrite(str(folder / f"frame_{i:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return count


def _token(path: Path) -> str:
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _pin(path: Path) -> str:
    """The demo guard's PIN, made once (4 digits) and kept beside the tokens."""
    if not path.exists():
        path.write_text(f"{secrets.randbelow(10000):04d}")
        path.chmod(0o600)
    return path.read_text().strip()


def terminal_line(entry: dict) -> str:
    """An entry as the demo's terminal prints it: the final decision first (a guard's override
    counts), the door's own beside it when a guard changed it. No QR text."""
    holder = entry["declaration"].get("holder") or "-"
    line = (f"  {entry['time'][11:19]}Z  {final_decision(entry).upper():6}  {holder:24}  "
            f"{entry['declaration']['format']}/{entry['declaration']['status']}  "
            f"app {entry['ble']['outcome']}  {', '.join(entry['reasons'])}")
    override = entry.get("override")
    if override:
        line += (f"  [guard {override['action']}: {override.get('reason')}, by {override.get('by')}"
                 f" at {(override.get('at') or '')[11:19]}Z; door said {entry['decision'].upper()}]")
    return line


def write_trust_list(path: Path, now: float) -> None:
    """A DCC trust list holding the demo's own document signer, fetched `now`: the demo's
    trust-list line is green, as on a kiosk kept up to date, so red means something is wrong."""
    from ..declarations.trust import TrustList
    from ..testing.dcc_issuer import dsc

    path.parent.mkdir(parents=True, exist_ok=True)
    _, der = dsc(not_before=now - 86400, not_after=now + 365 * 86400)
    TrustList.from_der([der], downloaded=now, source="kiosk demo signer").save(path)


def prepare(data: Path, web_port: int, central_port: int, form_port: int = 8081) -> tuple[config.Settings, dict]:
    """Create keys, tokens, frames; return the kiosk's settings and what to tell the user."""
    data.mkdir(parents=True, exist_ok=True)
    key_path = data / "site-key.pem"
    if not key_path.exists():
        sitepass.save_key(sitepass.new_key(), key_path)
    site_key = sitepass.load_private_key(key_path)
    operator_token = _token(data / "operator.token")
    kiosk_token = _token(data / "kiosk.token")
    # The demo has a PIN like any kiosk (overrides need one); it prints it on the terminal.
    pin = _pin(data / "guard.pin")
    # Contact tracing has a credential of its own, beside the operator's (valid on both).
    tracer_token = _token(data / "tracer.token")
    settings = config.load(path=HERE / "demo.toml")
    settings = config.load(base=settings, overrides={
        "data_dir": str(data / "kiosk"),
        "camera.replay_path": str(data / "frames"),
        "ble.replay_path": str(CAPTURE),
        "sitepass.public_keys": [str(sitepass.public_path(key_path))],
        "sitepass.signing_key": str(key_path),
        "form.host": "127.0.0.1",
        "form.port": form_port,
        "web.port": web_port,
        "web.operator_tokens": [hashlib.sha256(operator_token.encode()).hexdigest()],
        "web.guard_pin_sha256": hashlib.sha256(pin.encode()).hexdigest(),
        "web.tracer_tokens": ["demo-tracer:" + hashlib.sha256(tracer_token.encode()).hexdigest()],
        "sync.url": f"http://127.0.0.1:{central_port}",
        "sync.token": kiosk_token,
    })
    render_frames(data / "frames", settings["site.id"], site_key, time.time())
    write_trust_list(Path(settings["data_dir"]) / "trust-list.json", time.time())
    return settings, {"operator_token": operator_token, "kiosk_token": kiosk_token, "pin": pin,
                      "tracer_token": tracer_token}


def start_central(data: Path, port: int, settings, kiosk_token: str, operator_token: str,
                  tracer_token: str | None = None):
    from ..central import db
    from ..central.app import MAX_BODY_BYTES, create_app

    engine = db.connect(f"sqlite:///{data / 'central.db'}")
    for name, role, site, token in ((settings["kiosk.id"], "kiosk", settings["site.id"], kiosk_token),
                                    ("demo-operator", "operator", None, operator_token),
                                    ("demo-tracer", "tracer", settings["site.id"], tracer_token)):
        if token and db.find_credential(engine, token) is None:
            db.add_credential(engine, name, role, site, token)
    return BackgroundServer(create_app(engine=engine), "127.0.0.1", port, threads=4, name="central",
                            max_body=MAX_BODY_BYTES).start()


def run_demo(data: Path, web_port: int = 8080, central_port: int = 8090, seconds: float | None = None,
             form_port: int = 8081) -> None:
    from ..checkpoint import Kiosk

    settings, tokens = prepare(data, web_port, central_port, form_port)
    central = start_central(data, central_port, settings, tokens["kiosk_token"], tokens["operator_token"],
                            tokens["tracer_token"])
    kiosk = Kiosk(settings)
    stop = stop_on_signals()
    subscription = kiosk.bus.subscribe()
    kiosk.start()
    print(f"""
  Guard screen   {kiosk.web_url}/   (open it in a browser; English: {kiosk.web_url}/?lang=en)
  Guard PIN      {tokens['pin']}   (for the guard's overrides: Cho vào / Từ chối / Ra về)
  Operator API   curl -H 'Authorization: Bearer {tokens['operator_token']}' {kiosk.web_url}/api/v1/entries
  Declaration    {kiosk.form_url}/   (what a visitor's phone opens; gives a pass to show at the door)
  Central pages  http://127.0.0.1:{central_port}/   (log in with the operator token: {tokens['operator_token']})
  Central API    curl -H 'Authorization: Bearer {tokens['operator_token']}' http://127.0.0.1:{central_port}/api/v1/entries
  Tracer token   {tokens['tracer_token']}   (contact tracing only; the operator token gets 403)
  Tracing page   http://127.0.0.1:{central_port}/trace   (the central: search a visitor, see the contacts, export)
  Tracing API    curl -H 'Authorization: Bearer {tokens['tracer_token']}' '{kiosk.web_url}/api/v1/trace?q=a&reason=demo'
  Data folder    {data}
  Visitors come every few seconds (a {PERIOD:.0f} s loop); Ctrl-C stops everything.
""", flush=True)
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                kind, data_ = subscription.get(timeout=0.2)
            except Exception:
                continue
            if kind == "entry":
                print(terminal_line(data_), flush=True)
    finally:
        print("  stopping...", flush=True)
        kiosk.stop()
        central.stop()
        print(f"  stopped; {kiosk.sync.delivered if kiosk.sync else 0} entries reached the central.", flush=True)
