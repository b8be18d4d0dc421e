"""install.sh in a throwaway root and in --dry-run, and the systemd units through
`systemd-analyze verify`."""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def install(*args) -> subprocess.CompletedProcess:
    # No terminal on stdin: the PIN step generates instead of asking.
    return subprocess.run(["bash", str(ROOT / "install.sh"), *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_dry_run_says_everything_and_does_nothing():
    before = Path("/opt/kiosk").exists()
    result = install("--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for action in ("venv --system-site-packages", "setcap cap_net_raw,cap_net_admin+eip",
                   "/etc/systemd/system/kiosk.service", "systemctl enable --now kiosk.service kiosk-display.service"):
        assert action in out, action
    assert all(line.startswith(("would ", "unchanged", "kept", "skipped", "firmware", "done"))
               for line in out.splitlines()), out
    assert Path("/opt/kiosk").exists() == before


def test_install_into_a_root_is_idempotent_and_keeps_the_operators_settings(tmp_path):
    first = install("--root", str(tmp_path))
    assert first.returncode == 0, first.stderr
    for path in ("etc/kiosk/kiosk.toml", "etc/systemd/system/kiosk.service", "etc/systemd/system/kiosk-display.service",
                 "etc/systemd/system/kiosk-central.service", "etc/systemd/system/bluetooth.service.d/kiosk.conf",
                 "opt/kiosk/kiosk/checkpoint.py"):
        assert (tmp_path / path).is_file(), path
    assert "AutoEnable=true" in (tmp_path / "etc/bluetooth/main.conf").read_text()
    settings = tmp_path / "etc/kiosk/kiosk.toml"
    settings.write_text(settings.read_text().replace('id = "site-1"', 'id = "nha-may-binh-duong"'))
    second = install("--root", str(tmp_path))
    assert "installed:" not in second.stdout and "updated:" not in second.stdout
    assert f"kept: {settings}" in second.stdout
    assert "nha-may-binh-duong" in settings.read_text()
    assert (tmp_path / "etc/bluetooth/main.conf").read_text().count("AutoEnable=true") == 1

    gone = install("--root", str(tmp_path), "--uninstall")
    assert gone.returncode == 0
    assert not (tmp_path / "etc/systemd/system/kiosk.service").exists() and not (tmp_path / "opt/kiosk").exists()
    assert settings.exists(), "uninstall keeps the settings unless --purge"
    install("--root", str(tmp_path), "--uninstall", "--purge")
    assert not settings.exists()


def pin_digest(settings: Path) -> str:
    return re.search(r'^guard_pin_sha256 = "([0-9a-f]*)"', settings.read_text(), re.MULTILINE).group(1)


def test_install_sets_a_guard_pin_once_and_prints_it_once(tmp_path):
    first = install("--root", str(tmp_path))
    assert first.returncode == 0, first.stderr
    settings = tmp_path / "etc/kiosk/kiosk.toml"
    printed = re.findall(r"^set: guard PIN (\d{6}) \(generated", first.stdout, re.MULTILINE)
    assert len(printed) == 1, first.stdout
    assert pin_digest(settings) == hashlib.sha256(printed[0].encode()).hexdigest()
    assert settings.stat().st_mode & 0o777 == 0o640, "only root and the kiosk read the PIN's digest"
    # The settings still load, with the PIN in force.
    from kiosk import config
    assert config.load(path=settings, env={})["web.guard_pin_sha256"] == pin_digest(settings)
    again = install("--root", str(tmp_path))
    assert printed[0] not in again.stdout and f"kept: guard PIN (web.guard_pin_sha256 in {settings})" in again.stdout
    assert pin_digest(settings) == hashlib.sha256(printed[0].encode()).hexdigest()


def test_install_takes_the_operators_pin_and_refuses_a_bad_one(tmp_path):
    assert install("--root", str(tmp_path), "--pin", "12ab").returncode == 2
    assert not (tmp_path / "etc").exists(), "nothing installed with a bad PIN"
    given = install("--root", str(tmp_path), "--pin", "48291375")
    assert given.returncode == 0, given.stderr
    assert "48291375" not in given.stdout, "a PIN given is not printed back"
    assert pin_digest(tmp_path / "etc/kiosk/kiosk.toml") == hashlib.sha256(b"48291375").hexdigest()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (make test installs systemd on Debian)")
def test_units_pass_systemd_analyze_verify(tmp_path):
    # The units name the Pi's paths; point them at what exists here. Programs that only the
    # Pi has (cage) are replaced by /bin/true so verify checks everything else.
    venv_bin = str(Path(sys.executable).parent) + "/"
    for unit in (ROOT / "systemd").glob("*.service"):
        text = unit.read_text().replace("/opt/kiosk/.venv/bin/", venv_bin)
        if not Path("/usr/bin/cage").exists():
            text = text.replace("/usr/bin/cage", "/bin/true")
        (tmp_path / unit.name).write_text(text)
    units = sorted(str(p) for p in tmp_path.glob("*.service"))
    assert len(units) == 3
    result = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 0 and not problems, problems


def machine_reporting(tmp_path, dpkg_arch: str, uname_machine: str) -> dict:
    """An environment whose `dpkg --print-architecture` and `uname -m` answer as a Pi would.

    This machine is amd64; a 32-bit Raspberry Pi OS cannot be booted here, so the two commands
    install.sh asks are put first on PATH with a Pi's answers (`make check-arm64` runs
    install.sh's tests on a real arm64 userland)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, answer in (("dpkg", dpkg_arch), ("uname", uname_machine)):
        (bin_dir / name).write_text(f"#!/bin/sh\necho {answer}\n")
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}


@pytest.mark.parametrize("kernel", ["armv7l", "aarch64"])
def test_a_32_bit_raspberry_pi_os_is_refused_with_what_it_would_need(tmp_path, kernel):
    # A Pi 4 or 5 on 32-bit Raspberry Pi OS runs a 64-bit kernel: uname says aarch64 there, and
    # the armhf userland must still be refused.
    env = machine_reporting(tmp_path, "armhf", kernel)
    for args in (["--dry-run"], ["--root", str(tmp_path / "root")]):
        result = subprocess.run(["bash", str(ROOT / "install.sh"), *args], capture_output=True, text=True,
                                timeout=120, env=env)
        assert result.returncode == 1
        assert result.stdout == "", "nothing is done or planned before the refusal"
        for needed in ("32-bit Raspberry Pi OS (armhf)", "Raspberry Pi OS (64-bit)",
                       "no opencv-python-headless or numpy wheels for 32-bit ARM", "python3-opencv",
                       "docs/install.md"):
            assert needed in result.stderr, needed
    assert not (tmp_path / "root").exists()


def test_an_arm64_raspberry_pi_os_is_accepted(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "install.sh"), "--dry-run"], capture_output=True, text=True,
                            timeout=120, env=machine_reporting(tmp_path, "arm64", "aarch64"))
    assert result.returncode == 0, result.stderr
    assert "venv --system-site-packages" in result.stdout


def test_uninstall_works_on_any_architecture(tmp_path):
    # Removing what an earlier install left needs no wheels.
    (tmp_path / "root/opt/kiosk").mkdir(parents=True)
    result = subprocess.run(["bash", str(ROOT / "install.sh"), "--root", str(tmp_path / "root"), "--uninstall"],
                            capture_output=True, text=True, timeout=120,
                            env=machine_reporting(tmp_path, "armhf", "armv7l"))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "root/opt/kiosk").exists()
