"""`kiosk`: run the checkpoint, the demo, and the checks anyone can run from outside.

Over the house's ~300 lines: one click command per thing anyone checks from outside; each
is a thin call into the part it names, and they read best side by side.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

import click

from . import config
from .camera.still import MAX_PIXELS
from .exc import ConfigError, KioskError
from .shutdown import stop_on_signals


def _settings(path):
    try:
        return config.load(path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose):
    """The checkpoint kiosk at a gate."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Settings file (default /etc/kiosk/kiosk.toml when present).")
def run(config_path):
    """Run the kiosk until SIGTERM or Ctrl-C."""
    from . import heap
    from .checkpoint import Kiosk

    settings = _settings(config_path)
    stop = stop_on_signals()
    heap.limit_arenas()           # before the first thread: see kiosk/heap.py
    try:
        kiosk = Kiosk(settings)
    except KioskError as e:
        raise click.ClickException(str(e)) from None
    from . import sdnotify

    kiosk.start()
    logging.getLogger("kiosk").info("guard screen on %s/", kiosk.web_url)
    sdnotify.notify("READY=1\nSTATUS=checking visitors")
    # systemd restarts the kiosk when these pings stop: only ping while the threads that
    # the door depends on are alive.
    interval = sdnotify.watchdog_interval() or 5.0
    while not stop.wait(interval):
        problems = kiosk.stalled()
        if problems:
            logging.getLogger("kiosk").error("not pinging the watchdog: %s", ", ".join(problems))
            sdnotify.notify(f"STATUS=stalled: {', '.join(problems)}")
        else:
            sdnotify.notify("WATCHDOG=1")
    sdnotify.notify("STOPPING=1")
    kiosk.stop()


@main.command()
@click.option("--from", "since", help="First local day (YYYY-MM-DD) or ISO time; default: everything.")
@click.option("--to", "until", help="Last local day (YYYY-MM-DD, included) or ISO time.")
@click.option("--decision", type=click.Choice(["allow", "deny", "review"]),
              help="The final decision (after overrides).")
@click.option("--app", type=click.Choice(["confirmed", "likely", "not_detected"]), help="The app's presence.")
@click.option("--status", type=click.Choice(["valid", "invalid", "expired", "unknown", "review"]),
              help="The declaration's status.")
@click.option("-q", "text", help="Text in the holder's name (case and diacritics ignored).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--out", type=click.File("w", encoding="utf-8"), default="-", help="File (default: standard output).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def export(since, until, decision, app, status, text, fmt, out, config_path):
    """Export entries from this kiosk's log, as the operator API does (read-only, beside a running kiosk)."""
    from zoneinfo import ZoneInfo

    from .entries import CSV_COLUMNS, BadParameter, Filters, csv_chunks, csv_row, public
    from .store import read_entries

    settings = _settings(config_path)
    tz = ZoneInfo(settings["timezone"])
    args = {k: v for k, v in (("from", since), ("to", until), ("decision", decision), ("app", app),
                              ("status", status), ("q", text)) if v}
    try:
        filters = Filters.from_args(args, tz)
    except BadParameter as e:
        raise click.BadParameter(str(e)) from None
    lo, hi = filters.since, filters.until
    path = Path(settings["data_dir"]) / "log"
    if not path.is_dir():
        raise click.ClickException(f"no entry log at {path}")
    docs = [d for d in read_entries(path) if filters.match(d)]
    logging.getLogger("kiosk.export").info("export by %s on the command line: %s..%s: %d entries",
                                           os.environ.get("USER", "?"), lo, hi, len(docs))
    with click.progressbar(docs, label=f"{len(docs)} entries", file=sys.stderr,
                           show_pos=True) as bar:
        if fmt == "json":
            out.write("[")
            for i, d in enumerate(bar):
                out.write(("," if i else "") + "\n" + json.dumps(public(d), ensure_ascii=False))
            out.write("\n]\n")
        else:
            for chunk in csv_chunks((csv_row(d, tz) for d in bar), CSV_COLUMNS):
                out.write(chunk)


@main.command(name="trace")
@click.option("--entry", "entry_id", required=True, help="An entry of the traced person.")
@click.option("--reason", required=True, help="Why (kept in the audit log with your user name).")
@click.option("--days", type=click.FloatRange(1, 28), help="Days back from --until; default trace.window_days.")
@click.option("--until", help="End of the window (ISO-8601 time); default now.")
@click.option("--min-overlap", type=click.FloatRange(0, 1440), help="Minutes; default trace.min_overlap.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def trace_(entry_id, reason, days, until, min_overlap, config_path):
    """Contacts of the person of an entry in this kiosk's log: JSON lines, one contact per line
    (holder, overlap_minutes, stays, app, assumed, ...). Logged in trace-audit.jsonl."""
    from . import names, trace, trace_columns
    from .model import iso, parse_iso, text_problem
    from .store import read_entries
    from .store.audit import append_audit
    from .store.declarations import read_declarations

    settings = _settings(config_path)
    if len(reason) > 200 or text_problem(reason):
        raise click.BadParameter("the reason must be printable text of at most 200 characters")
    try:
        end = parse_iso(until) if until else time.time()
    except ValueError:
        raise click.BadParameter(f"{until!r} is not an ISO-8601 time") from None
    since = end - (days or settings["trace.window_days"]) * 86400
    default_stay, max_stay = settings["trace.default_stay"] * 3600, settings["trace.max_stay"] * 3600
    data_dir = Path(settings["data_dir"])
    if not (data_dir / "log").is_dir():
        raise click.ClickException(f"no entry log at {data_dir / 'log'}")
    lo, hi = iso(since - max_stay), iso(end)
    docs = [d for d in read_entries(data_dir / "log") if lo <= d["time"] < hi]
    target = next((d for d in docs if d["id"] == entry_id), None)
    if target is None or not target.get("fingerprint"):
        raise click.ClickException(f"no entry {entry_id} between {lo} and {hi}")
    _, _, found = trace_columns.query_columns(
        trace_columns.columns_of_docs(docs), target["fingerprint"], target["site"], since, end, default_stay,
        max_stay, (settings["trace.min_overlap"] if min_overlap is None else min_overlap) * 60)
    declarations = [d for d in read_declarations(data_dir / "log") if d["time"] >= iso(since - 86400)]
    holder = (target.get("declaration") or {}).get("holder")
    append_audit(data_dir, {"who": "cli:" + os.environ.get("USER", "?"), "at": iso(time.time()), "reason": reason,
                            "from": iso(since), "to": iso(end), "kind": "trace",
                            "for": f"{entry_id} {holder or ''}".strip(), "listed": len(found)})
    for c in found:
        c = c._replace(phone=trace.phone_for(c.holder, declarations, names.same))
        click.echo(json.dumps(c.to_json(), ensure_ascii=False))


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def doctor(config_path):
    """Check camera, decoder, Bluetooth, GPIO, disk, clock, central and trust list; exit 1 on a failure."""
    from .clock import SystemClock
    from .doctor import FAIL, run_checks

    settings = _settings(config_path)
    findings = run_checks(settings, SystemClock())
    for f in findings:
        click.echo(f"{f.status:5} {f.name:11} {f.found}")
        if f.fix:
            click.echo(f"{'':17}fix: {f.fix}")
    sys.exit(1 if any(f.status == FAIL for f in findings) else 0)


@main.command()
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-data"),
              show_default=True, help="Folder for the demo's log, keys and central database.")
@click.option("--port", default=8080, show_default=True, help="Guard page and operator API port.")
@click.option("--central-port", default=8090, show_default=True, help="Central server port.")
@click.option("--form-port", default=8081, show_default=True, help="Visitors' declaration form port.")
@click.option("--seconds", type=float, help="Stop after this many seconds (default: until Ctrl-C).")
def demo(data, port, central_port, form_port, seconds):
    """Run the whole kiosk with no hardware: replayed camera and BLE, mock GPIO, local central."""
    from .demo.run import run_demo

    logging.getLogger().setLevel(logging.WARNING)
    run_demo(data.resolve(), port, central_port, seconds, form_port)


_MAX_PIXELS_HELP = "Refuse pictures larger than this many pixels, before decoding them."


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--max-pixels", type=click.IntRange(min=1), default=MAX_PIXELS, show_default=True,
              help=_MAX_PIXELS_HELP)
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def decode(images, max_pixels, config_path):
    """Decode QR codes in IMAGES with the door's decoder; one JSON line per image."""
    from .camera import still

    still.limit_opencv(max_pixels)           # before cv2 loads: OpenCV reads it once
    from .camera.decoder import QRDecoder

    settings = _settings(config_path)
    # The door's decoder, without its memory of where the last frame's code was: the images
    # are unrelated, and each one's result must not depend on the one before.
    decoder = QRDecoder(settings["decoder.max_payload"], remember=0)
    failed = False
    for path in images:
        try:
            image = still.read(path, max_pixels)
        except still.ImageRefused as e:
            click.echo(json.dumps({"image": path, "error": str(e)}))
            failed = True
            continue
        start = time.perf_counter()
        payloads = decoder.decode(image)
        ms = (time.perf_counter() - start) * 1000
        click.echo(json.dumps({"image": path, "payloads": [_payload_json(p) for p in payloads],
                               "ms": round(ms, 2)}, ensure_ascii=False))
    sys.exit(1 if failed else 0)


def _payload_json(payload: bytes) -> dict:
    try:
        return {"text": payload.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(payload).decode("ascii")}


def _when(text: str | None) -> float:
    """--at: UNIX seconds or an ISO-8601 time; default now."""
    from .model import parse_iso

    if text is None:
        return time.time()
    try:
        return float(text)
    except ValueError:
        try:
            return parse_iso(text)
        except ValueError:
            raise click.BadParameter(f"{text!r} is neither UNIX seconds nor an ISO-8601 time") from None


@main.command()
@click.argument("payload", required=False)
@click.option("--image", type=click.Path(exists=True, dir_okay=False), help="Read the code from a picture.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=MAX_PIXELS, show_default=True,
              help=_MAX_PIXELS_HELP)
@click.option("--at", "at", help="Verify at this time (UNIX seconds or ISO-8601; default now).")
@click.option("--trust", "trust_path", type=click.Path(exists=True, dir_okay=False),
              help="DCC trust list file (default: the kiosk's).")
@click.option("--cert", "certs", multiple=True, help="A DCC signer certificate, base64 DER (repeatable).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def verify(payload, image, max_pixels, at, trust_path, certs, config_path):
    """Verify a code as the door does; print one JSON object; exit 0 only when valid."""
    from .declarations import Verifier
    from .declarations.trust import TrustList

    settings = _settings(config_path)
    if (payload is None) == (image is None):
        raise click.UsageError("give either PAYLOAD or --image")
    when = _when(at)
    verifier = Verifier.from_settings(settings)
    if trust_path:
        verifier.trust = TrustList.load(trust_path)
    elif certs:
        try:
            verifier.trust = TrustList.from_der([base64.b64decode(c) for c in certs], downloaded=when)
        except ValueError as e:
            raise click.BadParameter(f"not a base64 DER certificate: {e}", param_hint="--cert") from None
    if image:
        from .camera import still

        still.limit_opencv(max_pixels)       # before cv2 loads: OpenCV reads it once
        from .camera.decoder import QRDecoder

        try:
            picture = still.read(image, max_pixels)
        except still.ImageTooLarge as e:
            click.echo(json.dumps({"format": None, "status": "unknown", "reasons": ["image_too_large"],
                                   "error": str(e)}))
            sys.exit(1)
        except still.ImageRefused:
            picture = None
        found = QRDecoder(settings["decoder.max_payload"]).decode(picture) if picture is not None else []
        if not found:
            click.echo(json.dumps({"format": None, "status": "unknown", "reasons": ["no_code_in_image"]}))
            sys.exit(1)
        data = found[0]
    else:
        data = payload.encode("utf-8")
    d = verifier.verify(data, when)
    click.echo(json.dumps({"format": d.format, "status": d.status, "reasons": list(d.reasons),
                           "holder": d.holder, "dob": d.details.get("dob"),
                           "type": d.details.get("kind"), "kid": d.details.get("kid"),
                           "alg": d.details.get("alg"), "expires": d.summary()["expires"],
                           "flags": list(d.flags)}, ensure_ascii=False))
    sys.exit(0 if d.status == "valid" else 1)


@main.group()
def trust():
    """The EU DCC trust list (signer certificates)."""


@trust.command()
@click.option("--url", required=True, help="HTTPS address of the list.")
@click.option("--out", type=click.Path(dir_okay=False), help="Where to write it (default: the kiosk's dcc.trust_list).")
@click.option("--signer", type=click.Path(exists=True, dir_okay=False),
              help="PEM public key that signs the list (JWS); required for a signed list.")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False), help="Custom CA certificates for HTTPS.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def update(url, out, signer, ca_bundle, config_path):
    """Fetch the trust list over HTTPS, verify it, and replace the old one atomically."""
    from pathlib import Path as _Path

    from .declarations import fetch as trustfetch

    settings = _settings(config_path)
    out = out or settings["dcc.trust_list"] or str(_Path(settings["data_dir"]) / "trust-list.json")
    try:
        trust_list = trustfetch.fetch(url, signer_pem=_Path(signer).read_bytes() if signer else None,
                                      verify=ca_bundle or True)
    except trustfetch.TrustListError as e:
        raise click.ClickException(f"trust list not updated: {e}") from None
    trust_list.save(out)
    click.echo(f"{len(trust_list)} signer certificates from {url} written to {out}")


@main.group(name="pass")
def pass_():
    """The site's own signed visitor passes."""


@pass_.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def keygen(path):
    """Create the site's pass-signing key at PATH (and PATH's .pub.pem for the kiosks)."""
    from .declarations import sitepass

    if path.exists():
        raise click.ClickException(f"{path} exists; not overwriting a signing key")
    sitepass.save_key(sitepass.new_key(), path)
    click.echo(f"private key {path}\npublic key  {sitepass.public_path(path)} (list it in sitepass.public_keys)")


@pass_.command()
@click.option("--key", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--site", required=True)
@click.option("--name", "holder", required=True, help="The visitor's full name.")
@click.option("--hours", default=24.0, show_default=True, help="Validity.")
@click.option("--png", type=click.Path(dir_okay=False), help="Also write the QR code as PNG.")
def issue(key, site, holder, hours, png):
    """Issue a visitor pass; print its text."""
    import segno

    from .declarations import sitepass

    text = sitepass.issue(sitepass.load_private_key(key), site, holder, time.time(), hours * 3600)
    if png:
        segno.make(text, error="m", micro=False).save(png, scale=6)
    click.echo(text)


@main.group()
def ble():
    """Bluetooth: record advertisements at a door, analyse captures, calibrate the range."""


def _scan(settings, seconds, on_advert) -> None:
    """Run the configured BLE backend, handing each advertisement to `on_advert`, until
    Ctrl-C or `seconds` pass."""
    from .ble import open_source
    from .clock import SystemClock

    source = open_source(settings, SystemClock())
    stop = stop_on_signals()
    thread = threading.Thread(target=source.run, args=(on_advert, stop), name="ble", daemon=True)
    thread.start()
    stop.wait(seconds)
    stop.set()
    thread.join(5)


@ble.command()
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Capture file (JSON lines).")
@click.option("--seconds", type=float, help="Stop after this long (default: Ctrl-C).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def record(out, seconds, config_path):
    """Write every advertisement heard as one JSON line (advertisement and scan response each)."""
    settings = _settings(config_path)
    count = 0
    with open(out, "a", encoding="utf-8") as f:
        def write(advert):
            nonlocal count
            f.write(json.dumps(advert.to_json()) + "\n")
            f.flush()
            count += 1
        _scan(settings, seconds, write)
    click.echo(f"{count} advertisements written to {out}", err=True)


@ble.command()
@click.argument("capture", type=click.Path(exists=True, dir_okay=False))
@click.option("--scan-at", "scan_at", type=float, multiple=True, help="UNIX time of a scan (repeatable).")
@click.option("--summary", "show_summary", is_flag=True, help="Families heard and counts.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def analyze(capture, scan_at, show_summary, config_path):
    """Run CAPTURE through the door's parser, classifier and tracker."""
    from .ble import analysis
    from .ble.presence import PresenceTracker
    from .ble.replay import read_capture

    if not scan_at and not show_summary:
        raise click.UsageError("give --scan-at T (one or more) or --summary")
    settings = _settings(config_path)
    records = read_capture(capture)
    if show_summary:
        click.echo(json.dumps(analysis.summary(records)))
    for line in analysis.presence_at(records, PresenceTracker.from_settings(settings), list(scan_at)):
        click.echo(json.dumps(line))


@ble.command()
@click.option("--seconds", type=float, help="Stop after this long (default: Ctrl-C).")
@click.option("--top", default=5, show_default=True, help="How many beacons to show.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def calibrate(seconds, top, config_path):
    """Print, every second, the strongest app beacons heard and whether they count as near."""
    from .ble.presence import PresenceTracker
    from .model import iso

    settings = _settings(config_path)
    tracker = PresenceTracker.from_settings(settings)
    last_print = [0.0]

    def hear(advert):
        tracker.record(advert)
        if advert.t - last_print[0] >= 1.0:
            last_print[0] = advert.t
            rows = tracker.strongest(advert.t, top)
            line = "  ".join(f"{r['family']}{'?' if r['strength'] == 'weak' else ''} {r['addr']} "
                             f"{r['rssi']} dBm{' NEAR' if r['near'] else ''}" for r in rows)
            click.echo(f"{iso(advert.t)[11:19]}  threshold {settings['ble.rssi_near']} dBm  {line or 'no app beacon'}")
    _scan(settings, seconds, hear)


@main.group()
def report():
    """The daily report."""


def _report_day(text: str):
    from datetime import date

    try:
        if len(text) != 10:          # fromisoformat also takes 20261125 and week dates
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not YYYY-MM-DD", param_hint="--date") from None


def _print_outcome(sent, dry_run: bool) -> None:
    """--dry-run: the message as it would go; else the server's acceptance (and refusals)."""
    msg, record = sent
    if dry_run:
        click.echo(msg.as_string())
        return
    click.echo(f"accepted by the mail server: {record['message_id']} to {', '.join(record['to'])}")
    if record.get("refused"):
        click.echo(f"refused by the server: {', '.join(record['refused'])}", err=True)


@report.command(name="send")
@click.option("--date", "day_text", required=True, help="Local day of the report (YYYY-MM-DD).")
@click.option("--dry-run", is_flag=True, help="Print the message; send nothing, record nothing.")
@click.option("--again", is_flag=True, help="Send even when the report was accepted before (a new Message-ID).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def report_send(day_text, dry_run, again, config_path):
    """Send this kiosk's daily report now; exit 0 only when the mail server accepted it
    (now, or before: then nothing is sent without --again)."""
    from zoneinfo import ZoneInfo

    from . import mail
    from .exc import ReportNotSent
    from .store import read_entries

    settings = _settings(config_path)
    day = _report_day(day_text)
    try:
        smtp = mail.MailSettings.from_settings(settings)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    if not smtp.enabled:
        raise click.ClickException("report.to is empty: no one to send the report to")
    if mail.who_sends(settings) == "central":
        click.echo("note: this kiosk syncs to a central, which sends the site's report; "
                   "this sends the kiosk's own", err=True)
    tz = ZoneInfo(settings["timezone"])
    lo, hi = mail.day_bounds(day, tz)
    path = Path(settings["data_dir"]) / "log"
    docs = [d for d in read_entries(path) if lo <= d["time"] < hi] if path.is_dir() else []
    report = mail.build_report(docs, day, tz, settings["site.id"], [settings["kiosk.id"]])
    now = time.time()
    if dry_run:
        mid = mail.message_id(settings["site.id"], day, smtp.sender)
        _print_outcome((mail.compose(smtp, mail.render(report, smtp.language), settings["site.id"], day,
                                     mid, now), None), True)
        return
    ledger = mail.FileLedger(Path(settings["data_dir"]) / mail.LEDGER_FILE)
    with ledger.claim(settings["site.id"], day):
        try:
            sent = mail.send_report(smtp, ledger, settings["site.id"], day, report, now, again=again)
        except mail.AlreadySent as e:
            click.echo(f"{e}; nothing sent (--again sends it once more)")
            return
        except ReportNotSent as e:
            raise click.ClickException(f"not sent: {e}") from None
    _print_outcome(sent, False)
