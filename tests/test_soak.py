"""The soak's CI run: bench/soak.py for 150 s (every fault once, the hour's schedule scaled by
150/3600), against the real kiosk and central processes; its own checks must all pass."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DURATION = 150          # seconds of traffic; with set-up and the drain about 3.5 minutes


@pytest.mark.slow
def test_a_short_soak_accounts_for_every_scan_through_every_fault(tmp_path):
    if not sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.skip("PostgreSQL is not installed (Debian's postgresql): the soak's central runs on it")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "bench"),
                                                       os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--duration", str(DURATION),
                           "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=290)
    result = json.loads((tmp_path / "soak.json").read_text())
    assert [f["fault"] for f in result["faults"] if f["began_s"] is not None] == [
        "camera gone", "BLE dead", "BLE hung", "kill -9", "central down", "central 500 half the time",
        "central slow", "data dir full", "clock back 2 h", "clock forward 6 h"]
    scans = result["scans"]
    assert scans["presented"] > 0
    assert scans["presented"] == scans["logged"] == scans["at_central"], scans
    assert scans["missing_from_log"] == scans["logged_more_than_shown"] == scans["duplicate_ids"] == 0, scans
    assert scans["reread_after_a_kill"] <= 1, scans       # one kill -9: at most the code in view re-read
    assert result["door"]["pulses_not_for_an_allow"] == [] and result["door"]["entries_pulsed_twice"] == []
    assert [p["how_it_ended"] for p in result["run"]["kiosk_processes"]][0] == "kill -9"
    assert (tmp_path / "soak.md").exists()
    assert done.returncode == 0, "\n".join(f"{k}: {v}" for k, v in result["checks"].items()) + done.stdout[-2000:]
