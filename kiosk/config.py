"""Typed settings: embedded defaults, then a TOML file, then KIOSK_* environment variables.

Every setting is declared once below as (name, default, help). A TOML file uses sections
(`[camera] backend = "replay"`); the environment uses the upper-cased name with dots as
underscores (`KIOSK_CAMERA_BACKEND=replay`). A bad value stops start-up with one line that
names the key and where it came from.
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exc import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/kiosk/kiosk.toml")


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    choices: tuple | None = None
    bounds: tuple[float, float] | None = None      # numbers: lowest and highest allowed

    @property
    def env(self) -> str:
        return "KIOSK_" + self.name.upper().replace(".", "_")

    @property
    def kind(self) -> type:
        return type(self.default)


SETTINGS: tuple[Setting, ...] = (
    Setting("site.id", "site-1", "Identifier of the site (office, factory) this kiosk guards."),
    Setting("kiosk.id", "kiosk-1", "Identifier of this kiosk, unique within the site."),
    Setting("kiosk.direction", "in", "Whether this kiosk checks people coming in or going out.", ("in", "out")),
    Setting("data_dir", "/var/lib/kiosk", "Folder for the entry log and the kiosk's secrets."),
    Setting("timezone", "Asia/Ho_Chi_Minh", "Time zone for dates shown to people."),
    Setting("clock.offset_file", "", "Tests and bench/soak.py only: a file whose number of seconds is added to the "
            "kiosk's clock while it runs; empty = the system clock."),

    Setting("camera.backend", "opencv", "Frame source.", ("opencv", "picamera2", "replay")),
    Setting("camera.device", "0", "opencv: V4L2 index, /dev/videoN, a video file or an RTSP/HTTP URL."),
    Setting("camera.width", 640, "Requested frame width in pixels."),
    Setting("camera.height", 480, "Requested frame height in pixels."),
    Setting("camera.fps", 15, "Requested frames per second."),
    Setting("camera.replay_path", "", "replay: a folder of images or a video file; empty = frames pushed by a test."),
    Setting("camera.replay_fps", 10.0, "replay: frames per second (0 = as fast as possible)."),
    Setting("camera.replay_loop", False, "replay: start again at the end."),
    Setting("camera.replay_spool", False, "replay: replay_path is a spool folder; each image put there is shown "
            "once, then removed (bench/soak.py)."),

    Setting("decoder.cooldown", 2.0, "Seconds a payload must be out of view before it counts as a new scan."),
    Setting("decoder.max_payload", 4096, "Largest QR payload accepted, in bytes."),
    Setting("decoder.climb_every", 0.1, "Seconds between two climbs of the decoder's ladder past zxing-cpp while a "
            "code stays unread (each climb then waits 3x its own cost); 0 = every frame.", bounds=(0, 5)),
    Setting("decoder.max_fps", 0.0, "Most frames decoded per second (0 = as many as the camera gives); "
            "frames in between are skipped, e.g. 10 on a Pi that also runs Chromium.", bounds=(0, 120)),

    Setting("ble.backend", "bluepy", "Advertisement source.", ("bluepy", "replay")),
    Setting("ble.iface", 0, "bluepy: HCI adapter number (0 = hci0)."),
    Setting("ble.replay_path", "", "replay: a capture of JSON lines; empty = advertisements pushed by a test."),
    Setting("ble.replay_speed", 1.0, "replay: playback speed (2.0 = twice as fast)."),
    Setting("ble.replay_period", 0.0, "replay: seconds after which the capture starts again (0 = play once)."),
    Setting("ble.replay_follow", False, "replay: follow replay_path as it grows (as `tail -F`), each new line heard "
            "when written (bench/soak.py)."),
    Setting("ble.window", 30.0, "Seconds of look-back for beacons at a scan (Bluezone advertises 15 s on, 15 s off)."),
    Setting("ble.rssi_near", -75, "Smoothed RSSI (dBm) at or above which a beacon counts as at the door."),
    Setting("ble.arrival_window", 180.0, "Seconds since a phone first appeared "
            "within which it counts as the visitor's."),
    Setting("ble.rise_db", 10.0, "dB a phone already around must rise over its usual level to count as the visitor's."),
    Setting("ble.silence_restart", 60.0, "bluepy: seconds without any advertisement before the helper is restarted."),
    Setting("ble.required_families", ["bluezone", "gaen"], "App families that count as the required app."),

    Setting("policy.no_app", "review", "Outcome when no required app is heard.", ("review", "warn", "deny")),
    Setting("policy.reuse_window", 600.0, "Seconds within which the same code shown again is flagged (at most a day; "
            "the entry log indexes the UTC days this reaches).", bounds=(0, 86400)),
    Setting("policy.on_reuse", "review", "Outcome for a code shown again within the window.",
            ("review", "deny", "warn")),
    Setting("policy.identity_with_declaration", "allow", "Outcome for a PC-Covid QR whose holder declared today "
            "with no risk answer.", ("allow", "review")),

    Setting("sitepass.public_keys", [], "PEM files of the site's pass-signing public keys."),
    Setting("sitepass.signing_key", "", "PEM private key for issuing passes from the declaration form; "
            "empty = no form."),
    Setting("sitepass.valid_hours", 24.0, "How long a pass from the declaration form is valid."),
    Setting("form.host", "0.0.0.0", "Address of the visitors' declaration form (on the LAN, for phones)."),
    Setting("form.port", 8081, "Port of the visitors' declaration form."),
    Setting("form.idle_timeout", 5, "Seconds an idle connection to the form stays open (phones on the LAN).",
            bounds=(1, 3600)),

    Setting("dcc.trust_list", "", "EU DCC signer certificates (`kiosk trust update` writes it); "
            "empty = data_dir/trust-list.json."),
    Setting("dcc.trust_max_age_days", 7.0, "A trust list older than this sends every DCC to review."),
    Setting("dcc.vaccination_min_days", 14, "Days after the last dose of a complete series before it counts."),
    Setting("dcc.pcr_max_hours", 72.0, "Hours a negative PCR (NAAT) test counts from sampling."),
    Setting("dcc.rat_max_hours", 24.0, "Hours a negative rapid antigen test counts from sampling."),
    Setting("dcc.recovery_max_days", 180, "Days after the first positive test that a recovery counts."),

    Setting("gpio.pin_factory", "", "gpiozero pin factory by name (lgpio, mock, ...); empty = gpiozero's default."),
    Setting("door.relay_pin", 17, "BCM pin of the door relay."),
    Setting("door.relay_active_high", True, "The relay board closes on a high level."),
    Setting("door.open_seconds", 3.0, "How long the door relay stays energised on allow."),
    Setting("signals.green_pin", 27, "BCM pin of the green LED."),
    Setting("signals.red_pin", 22, "BCM pin of the red LED."),
    Setting("signals.buzzer_pin", 23, "BCM pin of the buzzer."),
    Setting("signals.exit_button_pin", 24, "BCM pin of the exit button (to ground; opens the door); 0 = none."),
    Setting("signals.door_contact_pin", 25, "BCM pin of the door contact (closed = door shut, to ground); 0 = none."),

    Setting("web.host", "127.0.0.1", "Address the guard pages and operator API listen on."),
    Setting("web.port", 8080, "Port of the guard pages and operator API."),
    Setting("web.language", "vi", "Language of the guard screen.", ("vi", "en")),
    Setting("web.clear_after", 20.0, "Seconds a decision stays on the guard screen before it returns to idle."),
    Setting("web.app_install_url", "https://bluezone.gov.vn/", "Install page of the contact-tracing app, shown as a "
            "QR code to a visitor whose app is not heard."),
    Setting("web.guard_pin_sha256", "", "SHA-256 hex digest of the guard's PIN for overrides (install.sh sets one)."),
    Setting("web.guard_pin_required", True, "Refuse every override while no PIN is set (false: anyone at the screen "
            "may override; the demo's choice is a PIN it prints)."),
    Setting("web.override_window", 120.0, "Seconds after a decision within which the guard may override it.",
            bounds=(10, 3600)),
    Setting("web.guard_from_lan", False, "Serve the guard pages to other machines too "
            "(normally only the kiosk's own screen)."),
    Setting("web.rate_limit", 120, "Operator API requests per minute from one address."),
    Setting("web.operator_tokens", [], "SHA-256 hex digests of the operators' API tokens."),
    Setting("web.tracer_tokens", [], "SHA-256 hex digests (optionally \"name:digest\") of the tracers' tokens: "
            "the only credential for GET /api/v1/trace (contact tracing); an operator token gets 403."),
    Setting("web.allowed_hosts", [], "Host names the guard pages answer to besides IP addresses and localhost "
            "(others are refused: DNS rebinding)."),
    Setting("web.threads", 8, "Worker threads of the guard pages and operator API.", bounds=(2, 64)),
    Setting("web.max_streams", 4, "Guard screens (event streams) open at once, each holding a thread; a new one "
            "ends the oldest. Below web.threads.", bounds=(1, 63)),
    Setting("web.max_streams_per_client", 2, "Guard screens open at once from one address; a new one ends that "
            "address's oldest.", bounds=(1, 63)),
    Setting("web.idle_timeout", 30, "Seconds an idle connection to the guard pages and operator API stays open.",
            bounds=(1, 3600)),

    Setting("sync.url", "", "Base URL of the central server; empty = no sync."),
    Setting("sync.token", "", "This kiosk's credential at the central server."),
    Setting("sync.interval", 5.0, "Seconds between sync attempts when the outbox is empty."),
    Setting("sync.batch_size", 100, "Entries per batch (at most 1000: the central sizes its body limit on it).",
            bounds=(1, 1000)),
    Setting("sync.max_backoff", 300.0, "Longest wait between attempts while the central is failing."),
    Setting("sync.ca_bundle", "", "CA certificates (PEM) to verify the central's TLS certificate; "
            "empty = the system's."),

    Setting("trace.default_stay", 8.0, "Hours of an assumed stay (an entry with no exit seen): a shift; it ends "
            "sooner at the person's next entry.", bounds=(0.25, 48)),
    Setting("trace.max_stay", 24.0, "Hours after an entry beyond which an exit is not taken for its end.",
            bounds=(1, 168)),
    Setting("trace.window_days", 14, "Days a contact-tracing query looks back by default (the incubation period).",
            bounds=(1, 28)),
    Setting("trace.min_overlap", 15.0, "Minutes two people must have been inside together to be listed as "
            "contacts (the close-contact rule).", bounds=(0, 1440)),

    Setting("store.retention_days", 28, "Days an entry is kept on the kiosk."),
    Setting("store.hold_mb", 16.0, "MB of entries held in memory while the disk takes no write (about 2,000 "
            "entries a MB); past it a scan is not logged and the door stays shut.", bounds=(0, 1024)),
    Setting("store.unsynced_max_days", 90, "Days after which even an entry that never reached the central "
            "is purged (logged)."),

    Setting("report.to", [], "Addresses the daily report is emailed to; empty = no mail."),
    Setting("report.send_at", "14:00", "Local time (HH:MM) the daily report of the day before is sent."),
    Setting("report.deadline", "15:00", "Local time (HH:MM) by which the report must be accepted; retries stop "
            "there and a missed report shows red."),
    Setting("report.from", "", "Sender address of the report (From:)."),
    Setting("report.language", "vi", "Language of the daily report: the mail's subject and body, the labels of its "
            "CSV and printable page (the operator API's too; ?language= per request).", ("vi", "en")),
    Setting("report.smtp_host", "", "Mail server (SMTP) the report is handed to."),
    Setting("report.smtp_port", 587, "Port of the mail server (587 for starttls, 465 for tls, 25 for none).",
            bounds=(1, 65535)),
    Setting("report.smtp_security", "starttls", "How the connection to the mail server is protected.",
            ("starttls", "tls", "none")),
    Setting("report.smtp_user", "", "User name at the mail server; empty = no login."),
    Setting("report.smtp_password_file", "", "File holding the mail server password (never the password itself)."),
    Setting("report.smtp_ca_bundle", "", "CA certificates (PEM) to verify the mail server's certificate; "
            "empty = the system's."),
    Setting("report.when_synced", False, "Send from this kiosk even when it syncs to a central (which normally "
            "sends the site's report)."),
    Setting("clock.require_sync", False, "Count a clock whose NTP state nothing reports (no timedatectl: a container, "
            "CI, a laptop) as untrusted. A Pi with systemd-timesyncd or chrony reports it either way."),
    Setting("clock.check_interval", 30.0, "Seconds between two questions to timedatectl whether NTP synchronised "
            "the clock.", bounds=(1, 3600)),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def defaults() -> dict[str, Any]:
    """Every setting's default, by name: what `load` starts from.

    :returns: A new dict; list defaults are copies, so a caller may change them freely.
    """
    return {s.name: list(s.default) if isinstance(s.default, list) else s.default for s in SETTINGS}


class Settings(Mapping[str, Any]):
    """The resolved settings: read with `settings["camera.backend"]`."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed; keys use '__' for '.' (camera__backend=...)."""
        return load(overrides={k.replace("__", "."): v for k, v in changes.items()}, base=self,
                    env={}, path=None)


def _coerce(setting: Setting, value: Any, source: str) -> Any:
    kind = setting.kind
    where = f"{source}: {setting.name}"
    if isinstance(value, str) and kind is not str:
        value = _from_text(setting, value, where)
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        value = float(value)
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{where}: expected text, got {value!r}")
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of text, got {value!r}")
    if setting.choices and value not in setting.choices:
        raise ConfigError(f"{where}: expected one of {', '.join(setting.choices)}, got {value!r}")
    if setting.bounds and not setting.bounds[0] <= value <= setting.bounds[1]:
        low, high = setting.bounds
        raise ConfigError(f"{where}: expected a value from {low:g} to {high:g}, got {value!r}")
    return value


def _from_text(setting: Setting, text: str, where: str) -> Any:
    kind = setting.kind
    try:
        if kind is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is list:
            return [part.strip() for part in text.split(",") if part.strip()]
    except ValueError:
        pass
    raise ConfigError(f"{where}: cannot read {text!r} as {kind.__name__}")


def _flatten(table: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in table.items():
        name = prefix + key
        if isinstance(value, dict) and name not in _BY_NAME:
            yield from _flatten(value, name + ".")
        else:
            yield name, value


def load(path: Path | str | None = None, env: Mapping[str, str] | None = None,
         overrides: Mapping[str, Any] | None = None, base: Mapping[str, Any] | None = None) -> Settings:
    """Resolve settings: base (or defaults) < TOML file < environment < overrides.

    `path=None` reads /etc/kiosk/kiosk.toml when it exists; pass a path to require one.
    """
    values = dict(base) if base is not None else defaults()
    if path is None and base is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        path = Path(path)
        try:
            with open(path, "rb") as f:
                table = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such settings file") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        for name, value in _flatten(table):
            if name not in _BY_NAME:
                raise ConfigError(f"{path}: {name}: unknown setting")
            values[name] = _coerce(_BY_NAME[name], value, str(path))
    env = os.environ if env is None else env
    for setting in SETTINGS:
        if setting.env in env:
            values[setting.name] = _coerce(setting, env[setting.env], "environment " + setting.env)
    for name, value in (overrides or {}).items():
        if name not in _BY_NAME:
            raise ConfigError(f"override: {name}: unknown setting")
        values[name] = _coerce(_BY_NAME[name], value, "override")
    # Each guard screen's event stream holds a web thread for as long as it is open.
    if values["web.max_streams"] >= values["web.threads"]:
        raise ConfigError(f"web.max_streams ({values['web.max_streams']}) must be below web.threads "
                          f"({values['web.threads']}): each open guard screen holds a thread")
    return Settings(values)
