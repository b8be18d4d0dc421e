"""`import kiosk` works on a laptop with no camera, adapter or hardware libraries."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCK = """
import sys
for name in ("bluepy", "picamera2", "lgpio", "RPi", "pigpio"):
    sys.modules[name] = None        # importing any of them now raises ImportError
import kiosk, kiosk.config, kiosk.model, kiosk.policy, kiosk.ble, kiosk.ble.presence
import kiosk.camera, kiosk.declarations, kiosk.checkpoint, kiosk.cli, kiosk.web, kiosk.central.app
print("ok")
"""


def test_import_without_hardware_libraries():
    result = subprocess.run([sys.executable, "-c", BLOCK], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


def test_import_kiosk_has_no_side_effects():
    code = ("import sys, kiosk; "
            "print(sorted(m for m in sys.modules if m.startswith(('cv2', 'pyzbar', 'flask', 'gpiozero'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_the_kiosk_never_loads_its_testing_package():
    # kiosk.testing pulls in cryptography's issuer, the QR corpus and a PostgreSQL launcher:
    # tools for tests and benchmarks, never part of a running gate.
    code = ("import sys, kiosk, kiosk.checkpoint, kiosk.cli, kiosk.web, kiosk.central.app, kiosk.demo.run; "
            "print(sorted(m for m in sys.modules if m.startswith('kiosk.testing')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_the_testing_package_imports_from_any_folder(tmp_path):
    # What tests and benchmarks share comes from the installed package, with no sys.path
    # insert; the old tests/fixtures names still lead to the same objects.
    code = ("from kiosk.testing import free_port, dcc_issuer, pgcluster, qr_corpus; "
            "import tests.fixtures.dcc_issuer as old_issuer, tests.fixtures.pgcluster as old_pg; "
            "print(free_port() > 0, old_issuer.issue is dcc_issuer.issue, old_pg.free_port is free_port, "
            "pgcluster.private_postgres is old_pg.private_postgres, 'tilt' in qr_corpus.CATEGORIES)")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": path})
    assert result.stdout.split() == ["True"] * 5, result.stderr
