"""The benchmarks still run (their numbers are read by people, not asserted here)."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ble_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "ble_parse.py"), "--quick"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "kiosk parse + classify + track (the door's path)" in result.stdout
    assert "max RSS MiB" in result.stdout


def test_verify_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "verify.py"), "--quick"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "EU DCC, PS256 (RSA-2048)" in result.stdout and "target:" in result.stdout


def test_qr_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "qr_decode.py"), "--quick"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "kiosk decoder" in result.stdout and "which step of the kiosk's ladder" in result.stdout


def test_store_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "store.py"), "--quick"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for store in ("SQLite WAL, FULL", "ours (EntryLog)", "tinydb JSONStorage"):
        assert store in result.stdout
    assert "open (recover)" in result.stdout and "target at 5000" in result.stdout


def test_sync_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "sync.py"), "--quick"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "target at the default batch size" in result.stdout
    # A row per database and batch size; every entry reached the central (the bench asserts it).
    for database in ("SQLite", "PostgreSQL"):
        assert re.search(rf"^{database} +100 ", result.stdout, re.M), result.stdout


def test_web_limits_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "web_limits.py"), "--quick"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "50 MB POST to each listener" in result.stdout and "guard screens (SSE) open" in result.stdout
    assert "413" in result.stdout
