# Two commands do all the set-up on a fresh Debian machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# libzbar0: pyzbar's decoder. libglib2.0-dev, build-essential, pkg-config: bluepy builds its
# helper against GLib. python3-venv: Debian's python3 has no venv without it. systemd:
# `systemd-analyze verify` checks the units in the tests. chromium: the browser tests.
# postgresql: the central's tests run on SQLite and on a private PostgreSQL server.
SYSTEM_PACKAGES := libzbar0 libglib2.0-dev build-essential pkg-config python3-venv systemd chromium postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo lint test test-fast bench soak check-arm64 system-packages clean

demo: $(VENV)/.installed
	$(BIN)/kiosk demo

# Lint and types first, so CI (which runs `make test`) fails on them before the long tests.
# ruff.toml and setup.cfg ([mypy]) hold the configuration.
lint: $(VENV)/.installed
	$(BIN)/ruff check kiosk tests bench
	$(BIN)/mypy kiosk

test: lint
	$(BIN)/python -m pytest

# The loop while working: everything but the tests marked slow (pytest.ini says which and why).
test-fast: lint
	$(BIN)/python -m pytest -m "not slow"

bench: $(VENV)/.installed
	@$(BIN)/pip install -q zxing-cpp || echo "zxing-cpp did not install: the QR benchmark runs without that reference"
	@for b in bench/ble_parse.py bench/verify.py bench/qr_decode.py bench/screen_latency.py bench/store.py bench/export_latency.py bench/sync.py bench/trace.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Slow (about 20 minutes here), so not CI: the install and a subset of the tests in an emulated
# arm64 Debian Bookworm root, the base of Raspberry Pi OS 64-bit (tools/check-arm64.sh says how;
# docs/install.md has the last result). Needs root; CHECK_ARM64_FLAGS=--keep keeps the root.
check-arm64:
	$(SUDO) bash tools/check-arm64.sh $(CHECK_ARM64_FLAGS)

# The soak (bench/soak.py): DURATION seconds of shift-change traffic and every fault against the
# real kiosk and central processes; writes docs/reliability.md's tables and docs/soak.png.
# Needs root (a tmpfs for the data folder). matplotlib (the `bench` extra) draws the plot.
DURATION ?= 3600
soak: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[bench]'
	PYTHONPATH=bench $(BIN)/python bench/soak.py --duration $(DURATION) --out docs --report docs/reliability.md

system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: setup.py | system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[pi,test]'
	touch $@

clean:
	rm -rf $(VENV) demo-data *.egg-info
