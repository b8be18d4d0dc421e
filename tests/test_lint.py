"""`make test` and `make test-fast` run ruff and mypy before pytest, so CI (which runs `make
test`) fails on a lint or type error; the configuration lives where pip leaves the build alone."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def planned_commands(target: str) -> list[str]:
    """The commands `make TARGET` would run, in order (a dry run: nothing is executed).

    :param target: a Makefile target.
    """
    result = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True,
                            timeout=60, check=True)
    return [line.strip() for line in result.stdout.splitlines()]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("target", ["test", "test-fast"])
def test_lint_and_types_run_before_the_tests(target):
    commands = planned_commands(target)
    ruff = commands.index(".venv/bin/ruff check kiosk tests bench")
    mypy = commands.index(".venv/bin/mypy kiosk")
    pytest_run = next(i for i, c in enumerate(commands) if c.startswith(".venv/bin/python -m pytest"))
    assert ruff < pytest_run and mypy < pytest_run


def test_configuration_without_pyproject():
    # A pyproject.toml would switch pip to build isolation for the editable install.
    assert not (ROOT / "pyproject.toml").exists()
    assert (ROOT / "ruff.toml").is_file()
    assert "[mypy]" in (ROOT / "setup.cfg").read_text(encoding="utf-8")
