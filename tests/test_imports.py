"""`import kiosk` works on a laptop with no camera, adapter or hardware libraries."""
import subprocess
import sys

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
    code = "import sys, kiosk; print(sorted(m for m in sys.modules if m.startswith(('cv2', 'pyzbar', 'flask', 'gpiozero'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
