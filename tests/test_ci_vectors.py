"""Where the shared EU DCC test vectors are absent, tests/test_dcc_vectors.py skips on a
developer's machine and fails in CI (CI=true), which always has ../shared: a real pytest
run in a copy of the test file whose vector folder does not exist."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_without_vectors(tmp_path, ci: bool):
    # A tests/ package beside no ../shared: conftest.py finds SHARED two levels up from itself.
    tests = tmp_path / "clone" / "tests"
    tests.mkdir(parents=True)
    for name in ("__init__.py", "conftest.py", "test_dcc_vectors.py"):
        shutil.copy(ROOT / "tests" / name, tests / name)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tests)],
                          cwd=tmp_path / "clone", env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("ci, exit_code, words", [(False, 0, "1 skipped"), (True, 1, "1 failed")],
                         ids=["developer", "CI"])
def test_absent_vectors_skip_for_a_developer_and_fail_in_ci(tmp_path, ci, exit_code, words):
    assert not (tmp_path / "shared").exists()
    result = _run_without_vectors(tmp_path, ci)
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert words in result.stdout and "is absent" in result.stdout, result.stdout
