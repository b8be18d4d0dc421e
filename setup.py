"""Packaging for the checkpoint kiosk ("điểm kiểm dịch")."""
from setuptools import find_packages, setup

setup(
    name="kiosk",
    version="0.1.0",
    description="Raspberry Pi checkpoint kiosk: QR health declarations, BLE app presence, door control",
    python_requires=">=3.11",
    packages=find_packages(include=["kiosk", "kiosk.*"]),
    package_data={
        "kiosk.web": ["templates/*.html", "static/*"],
        "kiosk.central": ["templates/*.html", "templates/central/*.html", "assets/*"],
        "kiosk.demo": ["*.jsonl", "*.toml"],
    },
    install_requires=[
        # Reading frames and images (replay, USB cameras, `kiosk decode`).
        "opencv-python-headless>=4.8",
        "numpy>=1.24",
        # QR decoding; pyzbar needs the system library libzbar0. zxing-cpp runs first in the
        # ladder (keystone angles, dim screens); wheels for the Pi's aarch64 on CPython 3.11.
        "pyzbar>=0.1.9",
        "zxing-cpp>=2.2",
        # Declarations: COSE/CBOR/base45 as the EU DCC spec uses them, signatures via cryptography.
        "cbor2>=5.4",
        "base45>=0.4",
        "cryptography>=41",
        # Reads DCC signer certificates that strict DER parsers refuse (as found in the wild).
        "asn1crypto>=1.5",
        # Rendering QR codes for issued passes and the demo's visitors.
        "segno>=1.5",
        # Door relay, LEDs, buzzer; its MockFactory runs anywhere.
        "gpiozero>=2.0",
        # The entry log (on our own durable Storage).
        # JournalTable overrides tinydb's private Table._read_table, _get_next_id and _next_id
        # (tests/test_tinydb_contract.py checks them): a new major version may change them.
        "tinydb>=4.8,<5",
        "orjson>=3.8",
        # Guard pages, operator API and the central server.
        "flask>=3.0",
        "waitress>=3.0",  # 3.x flushes each write (SSE) by default
        "sqlalchemy>=2.0",
        "requests>=2.31",
        "click>=8.1",
    ],
    extras_require={
        # Hardware-only libraries: installed on the Pi (bluepy builds against libglib2.0-dev).
        # picamera2 comes from Raspberry Pi OS (apt: python3-picamera2), not PyPI.
        "pi": ["bluepy>=1.3", "lgpio>=0.2"],
        # Browser tests drive Debian's chromium through Playwright (no browser download);
        # jsonschema validates API responses against the OpenAPI document. aiosmtpd: a real SMTP
        # server on loopback (STARTTLS, AUTH) that the daily report's mail tests send to.
        # ruff and mypy run in `make test` before pytest; pinned below the next minor release because
        # new releases add rules and checks that would fail CI on unchanged code.
        "test": ["pytest>=7.4", "hypothesis>=6.80", "playwright>=1.40", "jsonschema>=4.18", "psycopg[binary]>=3.1",
                 "aiosmtpd>=1.4.6", "ruff>=0.17,<0.18", "mypy>=2.4,<2.5"],
        # bench/soak.py's plot (make soak installs it); the CI smoke test checks behaviour only.
        "bench": ["matplotlib>=3.7", "psycopg[binary]>=3.1"],
        # The central on PostgreSQL in production.
        "postgres": ["psycopg[binary]>=3.1"],
    },
    entry_points={
        "console_scripts": [
            "kiosk=kiosk.cli:main",
            "kiosk-central=kiosk.central.cli:main",
        ],
    },
)
