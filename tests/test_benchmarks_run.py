"""The benchmarks still run (their numbers are read by people, not asserted here)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Per script: what its --quick run must print, and how long it may take before it counts as hung.
BENCHMARKS = [
    pytest.param("ble_parse.py", 300, ["kiosk parse + classify + track (the door's path)", "max RSS MiB"],
                 id="ble"),
    pytest.param("verify.py", 300, ["EU DCC, PS256 (RSA-2048)", "target:", "hostile payloads: 2000"], id="verify"),
    pytest.param("qr_decode.py", 600, ["kiosk decoder", "which step of the kiosk's ladder"], id="qr"),
    pytest.param("qr_beyond.py", 300, ["bar to the code's edge", "steep, pitch and yaw 40-55"], id="qr_beyond"),
    pytest.param("store.py", 300, ["SQLite WAL, FULL", "ours (EntryLog)", "tinydb JSONStorage", "open (recover)",
                                   "target at 5000"], id="store"),
    pytest.param("export_latency.py", 300, ["while a full export streams", "p99 with the export / without"],
                 id="export_latency"),
    # A row per database and batch size; every entry reached the central (the bench asserts it).
    pytest.param("sync.py", 300, ["target at the default batch size", re.compile(r"^SQLite +100 ", re.M),
                                  re.compile(r"^PostgreSQL +100 ", re.M)], id="sync"),
    pytest.param("central_queries.py", 300, ["sparse search, first page", "daily report of", "SQLite"],
                 id="central_queries"),
    # A row per database and the kiosk's log; the naive scan agreed with the fast path (asserted).
    pytest.param("trace.py", 600, [re.compile(r"^PostgreSQL \(GiST\) +\d+ ", re.M), re.compile(r"^SQLite +\d+ ", re.M),
                                   re.compile(r"^kiosk log +\d+ ", re.M), "goal: PostgreSQL <= 200 ms"], id="trace"),
    pytest.param("web_limits.py", 300, ["50 MB POST to each listener", "guard screens (SSE) open", "413"],
                 id="web_limits"),
    pytest.param("memory.py", 600, [re.compile(r"^sse: 100 in .* per 1000", re.M), re.compile(r"^mixed: 100 in ", re.M),
                                    "after malloc_trim"], id="memory"),
    pytest.param("qr_clips.py", 600, ["kiosk: camera loop -> guard screen", "model: kiosk decoder",
                                      "model: pyzbar loop", "model: zxing-cpp loop",
                                      re.compile(r"kiosk loop: \d+ frames decoded of \d+ played")], id="qr_clips"),
]


@pytest.mark.slow
@pytest.mark.parametrize("script, timeout, expected", BENCHMARKS)
def test_benchmark_runs(script, timeout, expected):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick"],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    for wanted in expected:
        if isinstance(wanted, re.Pattern):
            assert wanted.search(result.stdout), (wanted.pattern, result.stdout)
        else:
            assert wanted in result.stdout, (wanted, result.stdout)


@pytest.mark.slow
def test_pi_budget_benchmark_runs_and_leaves_no_cgroup():
    bench = subprocess.Popen([sys.executable, str(ROOT / "bench" / "pi_budget.py"), "--quick"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = bench.communicate(timeout=600)
    result = subprocess.CompletedProcess(bench.args, bench.returncode, stdout, stderr)
    assert result.returncode == 0, result.stderr
    assert "decoded/s no code" in result.stdout and "CPU by stage" in result.stdout
    assert re.search(r"^uncapped +\d", result.stdout, re.M), result.stdout
    # Capped where a cgroup can be made (root), else a stated reason; never a cgroup left behind.
    assert re.search(r"^Pi 4 model \(1/4 core\) +\d", result.stdout, re.M) or "cap: skipped, " in result.stdout
    for root in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")):
        if root.is_dir():
            assert not (root / f"kiosk-pi-budget-{bench.pid}").exists()


def test_pi_budget_sweeps_only_empty_groups_of_runs_that_are_gone(tmp_path):
    # A run killed before close() leaves its cgroup; the next run removes it, and never a
    # live run's group or a group a process is still in (a non-empty directory here).
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, timeout=60).stdout.strip()
    (tmp_path / f"kiosk-pi-budget-{gone}").mkdir()
    (tmp_path / f"kiosk-pi-budget-{os.getpid()}").mkdir()
    busy = tmp_path / "kiosk-pi-budget-999999999"
    busy.mkdir()
    (busy / "cgroup.procs").write_text("1\n")
    (tmp_path / "other-group").mkdir()
    code = f"import pi_budget, pathlib; print(pi_budget.sweep_stale(pathlib.Path({str(tmp_path)!r})))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "bench")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.stdout.strip() == f"['kiosk-pi-budget-{gone}']", done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"kiosk-pi-budget-{os.getpid()}", busy.name, "other-group"])
