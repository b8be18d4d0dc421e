#!/usr/bin/env bash
# Install the kiosk and run a subset of its tests in an emulated arm64 Debian Bookworm root
# (the base of Raspberry Pi OS 64-bit): debootstrap + qemu-user through binfmt_misc.
#
#   sudo tools/check-arm64.sh                 build a root, install, test, remove the root
#   sudo tools/check-arm64.sh --keep          keep the root afterwards (its path is printed)
#   sudo tools/check-arm64.sh --root DIR      build in DIR, or reuse the finished root in DIR
#                                             (removed afterwards too, unless --keep)
#   sudo tools/check-arm64.sh --report FILE   also write the summary (times, wheels) to FILE
#   sudo tools/check-arm64.sh --tests "A B"   run these test files instead of the chosen subset
#
# Packages come from the mirror this machine's apt is configured with (MIRROR= overrides) and
# from PyPI; nothing else. Slow (47 minutes on 2 shared cores, docs/install.md): `make check-arm64`,
# not CI.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED=$(realpath -m "$REPO/../shared")
KEEP=0
ROOTDIR=""
REPORT=""
# The subset, and why each: what could differ on arm64 is compiled code (OpenCV, zbar through
# ctypes, cryptography, orjson, bluepy's helper) and the byte-level parsers. The Chromium and
# PostgreSQL tests are left out: two large installs more on an emulated run that already takes
# most of an hour, and neither runs code of ours that differs on arm64. Tests marked slow too.
TESTS="tests/test_imports.py tests/test_config.py tests/test_policy.py \
tests/test_store.py tests/test_journal_table.py tests/test_tinydb_contract.py \
tests/test_declarations.py tests/test_dcc.py tests/test_dcc_vectors.py tests/test_dcc_schema.py \
tests/test_decoder.py tests/test_still_images.py \
tests/test_ble.py tests/test_ble_bluepy.py tests/test_hardware_boundaries.py \
tests/test_operator_api.py tests/test_install.py"
# The Makefile's system packages less chromium, postgresql and systemd (see above).
PI_PACKAGES="libzbar0 libglib2.0-dev build-essential pkg-config python3-venv"

while [ $# -gt 0 ]; do
  case "$1" in
    --keep) KEEP=1 ;;
    --root) ROOTDIR=$(realpath -m "$2"); shift ;;
    --report) REPORT=$(realpath -m "$2"); shift ;;
    --tests) TESTS=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "check-arm64: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$(id -u)" != 0 ]; then
  echo "check-arm64: run as root (debootstrap, chroot, mount and binfmt_misc need it)" >&2; exit 1
fi

say() { printf '== %s\n' "$*"; }
STEPS=()
step() {   # step NAME COMMAND...: run it, and remember how long it took
  local name=$1; shift
  say "$name"
  local t0; t0=$(date +%s.%N)
  "$@"
  STEPS+=("$(awk -v n="$name" -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%-58s %6.0f s", n, b - a }')")
}

# --- the host's tools and its Debian mirror ---------------------------------------------------
host_tools() {
  local missing=""
  for p in debootstrap qemu-user-static; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
  fi
}
mirror_uris() {   # every URI of this machine's apt sources (deb822 and one-line forms), in order
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p'; } | grep -v '^$' || true
}
host_tools
MIRROR=${MIRROR:-$(mirror_uris | grep -v -- '-security' | head -n1)}
SECURITY=$(mirror_uris | grep -- '-security' | head -n1 || true)
[ -n "$MIRROR" ] || { echo "check-arm64: no Debian mirror in this machine's apt sources; set MIRROR=" >&2; exit 1; }

if [ -z "$ROOTDIR" ]; then ROOTDIR=$(mktemp -d /var/tmp/kiosk-arm64.XXXXXX); fi
mkdir -p "$ROOTDIR"
LOG="$ROOTDIR.log"
SRC=/srv/kiosk/repo      # the repo's place inside the root; ../shared is beside it, as here
MOUNTED=()               # mount points inside the root, in the order they were mounted
BINFMT=/proc/sys/fs/binfmt_misc
MOUNTED_BINFMT=0
REGISTERED=0

# --- clean-up, also on failure or Ctrl-C ----------------------------------------------------------
cleanup() {
  local rc=$?
  set +e
  # Processes still running inside the root (a test's server) would keep its mounts busy.
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOTDIR" ] && kill -9 "${p#/proc/}" 2>/dev/null
  done
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}"
  done
  if [ "$REGISTERED" = 1 ] && [ -e "$BINFMT/qemu-aarch64" ]; then echo -1 > "$BINFMT/qemu-aarch64"; fi
  if [ "$MOUNTED_BINFMT" = 1 ]; then umount "$BINFMT"; fi
  if [ "$KEEP" = 1 ]; then
    say "kept the root: $ROOTDIR (sudo tools/check-arm64.sh --root $ROOTDIR reuses it)"
  elif grep -q " $ROOTDIR[/ ]" /proc/mounts; then
    # Never rm -rf through a bind mount of the host's /dev or of ../shared.
    echo "check-arm64: something is still mounted under $ROOTDIR; not removing it" >&2; rc=1
  else
    rm -rf --one-file-system "$ROOTDIR"; say "removed the root $ROOTDIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_in() {   # mount_in TARGET-INSIDE-ROOT MOUNT-ARGS...
  local target="$ROOTDIR$1"; shift
  mkdir -p "$target"
  mount "$@" "$target"
  MOUNTED+=("$target")
}

# A clean environment inside: no host pip settings (local wheel folders, constraints) leak in,
# so pip sees only PyPI, as a Pi does. Proxy settings, if any, are passed on.
in_root() {
  local envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
              DEBIAN_FRONTEND=noninteractive PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1)
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && envs+=("$v=${!v}")
  done
  env -i "${envs[@]}" chroot "$ROOTDIR" "$@"
}

# --- 1. the root ----------------------------------------------------------------------------------
register_qemu() {
  if ! grep -q " $BINFMT binfmt_misc " /proc/mounts; then mount -t binfmt_misc binfmt_misc "$BINFMT"; MOUNTED_BINFMT=1; fi
  if [ -e "$BINFMT/qemu-aarch64" ]; then say "qemu-aarch64 is already registered; using it as it is"; return; fi
  # The F flag opens the interpreter now, on the host, so the root needs no copy of qemu.
  local line; line=$(grep '^:qemu-aarch64:' /usr/lib/binfmt.d/qemu-aarch64.conf)
  case "${line##*:}" in *F*) ;; *) line="${line}F" ;; esac
  printf '%s' "$line" > "$BINFMT/register"
  REGISTERED=1
}
debootstrap_first() {
  debootstrap --foreign --arch=arm64 --variant=minbase bookworm "$ROOTDIR" "$MIRROR" >>"$LOG" 2>&1
}
debootstrap_second() {
  chroot "$ROOTDIR" /debootstrap/debootstrap --second-stage >>"$LOG" 2>&1
}
apt_sources() {
  { echo "deb $MIRROR bookworm main"; echo "deb $MIRROR bookworm-updates main"
    [ -n "$SECURITY" ] && echo "deb $SECURITY bookworm-security main"; } > "$ROOTDIR/etc/apt/sources.list"
  cp /etc/resolv.conf "$ROOTDIR/etc/resolv.conf"
}
# The Makefile's path: `make system-packages` then the venv with pip install -e '.[pi,test]'.
base_packages() {
  in_root apt-get update -qq >>"$LOG" 2>&1
  in_root apt-get install -y -qq --no-install-recommends ca-certificates make python3 >>"$LOG" 2>&1
}
copy_repo() {
  mkdir -p "$ROOTDIR$SRC"
  # The files git knows (committed or not), not this machine's .venv or caches.
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$ROOTDIR$SRC"
}
system_packages() {
  in_root make -C "$SRC" system-packages SYSTEM_PACKAGES="$PI_PACKAGES" >>"$LOG" 2>&1
  # After apt's last ca-certificates run: pip trusts what this machine trusts (its proxy).
  cp /etc/ssl/certs/ca-certificates.crt "$ROOTDIR/etc/ssl/certs/ca-certificates.crt"
}
venv_install() {
  # PIP_REPORT: pip's JSON report of what it installed and from which file (wheel or sdist).
  in_root env PIP_REPORT=/srv/kiosk/pip-report.json \
    make -C "$SRC" .venv/.installed SYSTEM_PACKAGES="$PI_PACKAGES" >>"$LOG" 2>&1
}
native_parts() {   # the compiled parts load, and bluepy's helper was built for this machine
  in_root "$SRC/.venv/bin/python" - <<'EOF'
import glob, platform, struct, sysconfig
import cv2, numpy, cryptography, orjson, bluepy.btle
from pyzbar import pyzbar
helper = glob.glob(sysconfig.get_paths()["purelib"] + "/bluepy/bluepy-helper")[0]
with open(helper, "rb") as f:
    head = f.read(20)
machine = struct.unpack_from("<H", head, 18)[0]  # ELF e_machine: 183 is AArch64
print(f"platform {platform.machine()}, {sysconfig.get_platform()}; OpenCV {cv2.__version__}, numpy {numpy.__version__}")
print(f"bluepy-helper: ELF machine {machine} ({'aarch64' if machine == 183 else 'NOT aarch64'})")
assert machine == 183
EOF
}
TESTS_STATUS=""
run_tests() {   # sets TESTS_STATUS to pytest's exit status; the script's own exit status is it
  in_root sh -c "cd $SRC && .venv/bin/python -m pytest -m 'not slow' -p no:cacheprovider -q -rfs $TESTS" 2>&1 | tee -a "$LOG" \
    && TESTS_STATUS=0 || TESTS_STATUS=${PIPESTATUS[0]}
}
wheels() {   # the pip report as a table: what came as a wheel, what was built here
  python3 - "$ROOTDIR/srv/kiosk/pip-report.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
rows = []
for item in report["install"]:
    meta, url = item["metadata"], item["download_info"]["url"]
    name = url.rsplit("/", 1)[-1]
    if item["download_info"].get("dir_info") is not None:
        how = "this repository (editable)"
    elif name.endswith(".whl"):
        platform = name[:-4].split("-")[-1].split(".")[-1]
        how = "wheel, pure Python" if platform == "any" else f"wheel, {platform}"
    else:
        how = "built here from " + name
    rows.append((meta["name"], meta["version"], how))
for name, version, how in sorted(rows, key=lambda r: r[0].lower()):
    print(f"| {name} | {version} | {how} |")
EOF
}

finished_root() { [ -f "$ROOTDIR/etc/debian_version" ] && [ ! -d "$ROOTDIR/debootstrap" ]; }

say "root $ROOTDIR, mirror $MIRROR${SECURITY:+, security $SECURITY}; log $LOG"
: > "$LOG"
register_qemu
if finished_root; then
  say "reusing the finished root in $ROOTDIR"
else
  step "debootstrap --foreign (arm64, minbase, bookworm)" debootstrap_first
  step "debootstrap --second-stage (emulated)" debootstrap_second
fi
mount_in /proc -t proc proc
mount_in /sys -t sysfs sysfs
mount_in /dev --bind /dev
mount_in /dev/pts --bind /dev/pts
if [ -d "$SHARED" ]; then
  mount_in /srv/kiosk/shared --bind "$SHARED"
  mount -o remount,bind,ro "$ROOTDIR/srv/kiosk/shared"
else
  say "no $SHARED here: the tests that need it will skip"
fi
apt_sources
step "apt: ca-certificates make python3" base_packages
# A reused root keeps its venv (make reinstalls only when setup.py changed); the rest is fresh.
if [ -d "$ROOTDIR$SRC" ]; then find "$ROOTDIR$SRC" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +; fi
copy_repo
step "make system-packages ($PI_PACKAGES)" system_packages
step "make .venv/.installed (venv, pip install -e '.[pi,test]')" venv_install
step "the compiled parts load; bluepy-helper is aarch64" native_parts
step "pytest -m 'not slow' on the subset" run_tests

{
  echo "# check-arm64, $(date -u '+%Y-%m-%d %H:%M UTC'), host $(uname -m) with $(nproc) cores, qemu-user $(dpkg-query -W -f='${Version}' qemu-user-static)"
  echo
  echo '```'
  printf '%s\n' "${STEPS[@]}"
  echo '```'
  echo
  echo "| package | version | installed from |"
  echo "| --- | --- | --- |"
  wheels
  echo
  echo "tests: $TESTS"
  echo "result: $(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$LOG" | tail -n1 || echo none); pytest exit status $TESTS_STATUS"
  grep '^FAILED ' "$LOG" || true
} | tee ${REPORT:+"$REPORT"}
exit "$TESTS_STATUS"
