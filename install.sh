#!/usr/bin/env bash
# Install the checkpoint kiosk on a Raspberry Pi (Raspberry Pi OS Bookworm), idempotently.
#
#   sudo ./install.sh              install or update; settings and keys are never overwritten
#   sudo ./install.sh --uninstall  remove the services and the code (keeps /etc/kiosk and /var/lib/kiosk)
#   ./install.sh --dry-run         print every action instead of doing it
#   ./install.sh --root DIR        install the files into DIR (a throwaway root for checks);
#                                  packages, users, the venv and systemctl are skipped there
#   sudo ./install.sh --pin 482913 the guard's PIN for overrides (else asked on a terminal, or
#                                  generated); set once, printed once, kept only as its SHA-256
set -euo pipefail

SRC=$(cd "$(dirname "$0")" && pwd)
ROOT=""
DRY=0
UNINSTALL=0
PACKAGES=1
PURGE=0
PIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --root) ROOT=$(realpath -m "$2"); shift ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    --no-packages) PACKAGES=0 ;;
    --pin) PIN=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$ROOT" ] && PACKAGES=0
valid_pin() { [[ "$1" =~ ^[0-9]{4,8}$ ]]; }
if [ -n "$PIN" ] && ! valid_pin "$PIN"; then echo "install.sh: --pin takes 4 to 8 digits" >&2; exit 2; fi

APP="$ROOT/opt/kiosk"
ETC="$ROOT/etc/kiosk"
UNITS="$ROOT/etc/systemd/system"
DEB_PACKAGES="libzbar0 libglib2.0-dev build-essential pkg-config python3-venv python3-picamera2 bluez cage chromium curl"

say() { printf '%s\n' "$*"; }
run() {   # run a command, or say it in --dry-run
  if [ "$DRY" = 1 ]; then say "would run: $*"; else say "run: $*"; "$@"; fi
}
put() {   # put SRC at DEST with MODE, only when different
  local from=$1 to=$2 mode=$3
  if [ -f "$to" ] && cmp -s "$from" "$to"; then say "unchanged: $to"; return; fi
  if [ "$DRY" = 1 ]; then say "would install: $to"; return; fi
  install -D -m "$mode" "$from" "$to"; say "installed: $to"
}
put_once() {   # like put, but never replace an existing file (an operator's settings)
  if [ -e "$2" ]; then say "kept: $2"; else put "$@"; fi
}
remove() {
  if [ ! -e "$1" ]; then return; fi
  if [ "$DRY" = 1 ]; then say "would remove: $1"; else rm -rf "$1"; say "removed: $1"; fi
}
systemctl_() {
  if [ -n "$ROOT" ]; then say "skipped in --root: systemctl $*"; else run systemctl "$@"; fi
}
need_root() {
  if [ "$DRY" = 0 ] && [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (sudo ./install.sh), or with --dry-run / --root DIR" >&2; exit 1
  fi
}

need_root
if [ "$UNINSTALL" = 1 ]; then
  systemctl_ disable --now kiosk-display.service kiosk.service
  for unit in kiosk.service kiosk-display.service kiosk-central.service; do remove "$UNITS/$unit"; done
  remove "$ROOT/etc/systemd/system/bluetooth.service.d/kiosk.conf"
  systemctl_ daemon-reload
  remove "$APP"
  if [ "$PURGE" = 1 ]; then remove "$ETC"; remove "$ROOT/var/lib/kiosk"; else say "kept: $ETC and $ROOT/var/lib/kiosk (--purge removes them)"; fi
  exit 0
fi

# 1. Debian packages (bluepy builds against GLib; picamera2 and libcamera come from Raspberry Pi OS).
if [ "$PACKAGES" = 1 ]; then
  missing=""
  for p in $DEB_PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"; done
  if [ -n "$missing" ]; then run apt-get update; run apt-get install -y $missing; else say "unchanged: packages"; fi
else
  say "skipped: packages ($DEB_PACKAGES)"
fi

# 2. Users: the kiosk (gpio, video, bluetooth) and the screen (video, render, input).
if [ -z "$ROOT" ]; then
  id kiosk >/dev/null 2>&1 && say "unchanged: user kiosk" || run useradd --system --home-dir /var/lib/kiosk --shell /usr/sbin/nologin --groups gpio,video,bluetooth kiosk
  id kiosk-display >/dev/null 2>&1 && say "unchanged: user kiosk-display" || run useradd --system --create-home --shell /usr/sbin/nologin --groups video,render,input kiosk-display
else
  say "skipped in --root: users kiosk, kiosk-display"
fi

# 3. The code, and a virtualenv that sees Debian's picamera2 (--system-site-packages).
if [ "$SRC" != "$APP" ]; then
  for path in setup.py kiosk docs firmware_config systemd README.md; do
    if [ "$DRY" = 1 ]; then say "would copy: $SRC/$path -> $APP/"; else mkdir -p "$APP"; cp -a "$SRC/$path" "$APP/"; say "copied: $APP/$path"; fi
  done
fi
if [ -z "$ROOT" ]; then
  [ -x "$APP/.venv/bin/python" ] && say "unchanged: $APP/.venv" || run python3 -m venv --system-site-packages "$APP/.venv"
  run "$APP/.venv/bin/pip" install -q "$APP[pi]"
  helper=$(ls "$APP"/.venv/lib/python3*/site-packages/bluepy/bluepy-helper 2>/dev/null | head -n1 || true)
  # Belt and braces with the unit's AmbientCapabilities: `kiosk ble calibrate` run by hand scans too.
  if [ -n "$helper" ]; then run setcap cap_net_raw,cap_net_admin+eip "$helper"
  else run setcap cap_net_raw,cap_net_admin+eip "$APP/.venv/lib/python3.*/site-packages/bluepy/bluepy-helper"; fi
else
  say "skipped in --root: virtualenv, pip install, setcap on bluepy-helper"
fi

# 4. Settings and the site's pass key: created once, never overwritten.
put_once "$SRC/firmware_config/kiosk.toml" "$ETC/kiosk.toml" 0644
if [ ! -e "$ETC/site-key.pem" ]; then
  if [ -n "$ROOT" ] || [ "$DRY" = 1 ]; then say "would create: $ETC/site-key.pem (kiosk pass keygen)"
  else run "$APP/.venv/bin/kiosk" pass keygen "$ETC/site-key.pem"; chown root:kiosk "$ETC/site-key.pem"; chmod 0640 "$ETC/site-key.pem"; fi
else
  say "kept: $ETC/site-key.pem"
fi

# 4b. The guard's PIN: with none, the kiosk refuses every override (web.guard_pin_required).
# Asked on a terminal or generated (6 digits: a 4-digit one takes ~50 days to guess under the
# lockout, 6 digits years), printed this once; only its SHA-256 is kept, in the settings.
settings="$ETC/kiosk.toml"
if [ -f "$settings" ] && grep -q '^guard_pin_sha256 = "[0-9a-f]\{64\}"' "$settings"; then
  say "kept: guard PIN (web.guard_pin_sha256 in $settings)"
elif [ "$DRY" = 1 ]; then
  say "would set: guard PIN (asked, or generated and printed once; its SHA-256 in $settings)"
else
  if [ -z "$PIN" ] && [ -t 0 ]; then
    read -r -s -p "Guard PIN for overrides (4 to 8 digits; Enter: generate one): " PIN; echo
    if [ -n "$PIN" ] && ! valid_pin "$PIN"; then echo "install.sh: a PIN is 4 to 8 digits" >&2; exit 2; fi
  fi
  generated=0
  if [ -z "$PIN" ]; then PIN=$(printf '%06d' $(( $(od -An -N4 -tu4 /dev/urandom) % 1000000 ))); generated=1; fi
  digest=$(printf %s "$PIN" | sha256sum | cut -d' ' -f1)
  sed -i "s/^guard_pin_sha256 = \"[^\"]*\"/guard_pin_sha256 = \"$digest\"/" "$settings"
  grep -q "^guard_pin_sha256 = \"$digest\"" "$settings" || { echo "install.sh: no guard_pin_sha256 line in $settings" >&2; exit 1; }
  # A 6-digit PIN's SHA-256 is reversed by trying all 10^6: only root and the kiosk read it.
  chmod 0640 "$settings"; [ -z "$ROOT" ] && chown root:kiosk "$settings"
  if [ "$generated" = 1 ]; then say "set: guard PIN $PIN (generated; shown this once, write it down for the guards)"
  else say "set: guard PIN (the one given; its SHA-256 in $settings)"; fi
fi

# 5. systemd units and the Bluetooth drop-in.
for unit in kiosk.service kiosk-display.service kiosk-central.service; do put "$SRC/systemd/$unit" "$UNITS/$unit" 0644; done
put "$SRC/firmware_config/bluetooth-unblock.conf" "$ROOT/etc/systemd/system/bluetooth.service.d/kiosk.conf" 0644
conf="$ROOT/etc/bluetooth/main.conf"
if [ -f "$conf" ] && grep -q '^AutoEnable=true' "$conf"; then say "unchanged: $conf"
elif [ "$DRY" = 1 ]; then say "would add AutoEnable=true to $conf"
else mkdir -p "$(dirname "$conf")"; cat "$SRC/firmware_config/bluetooth/main.conf" >> "$conf"; say "updated: $conf"; fi
say "firmware: add firmware_config/config.txt to /boot/firmware/config.txt by hand (it changes how the Pi boots)"

systemctl_ daemon-reload
systemctl_ enable --now kiosk.service kiosk-display.service
say "done: check with '$APP/.venv/bin/kiosk doctor --config /etc/kiosk/kiosk.toml'"
