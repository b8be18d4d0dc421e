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
    assert "hostile payloads: 2000" in result.stdout


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


def test_presentation_clips_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "qr_clips.py"), "--quick"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    for loop in ("kiosk: camera loop -> guard screen", "model: kiosk decoder", "model: pyzbar loop",
                 "model: zxing-cpp loop"):
        assert loop in result.stdout, result.stdout
    assert re.search(r"kiosk loop: \d+ frames decoded of \d+ played", result.stdout), result.stdout


def test_pi_budget_benchmark_runs_and_leaves_no_cgroup():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "pi_budget.py"), "--quick"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "decoded/s no code" in result.stdout and "CPU by stage" in result.stdout
    assert re.search(r"^uncapped +\d", result.stdout, re.M), result.stdout
    # Capped where a cgroup can be made (root), else a stated reason; never a cgroup left behind.
    assert re.search(r"^Pi 4 model \(1/4 core\) +\d", result.stdout, re.M) or "cap: skipped, " in result.stdout
    for root in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")):
        if root.is_dir():
            assert not [p for p in root.iterdir() if p.name.startswith("kiosk-pi-budget-")]
