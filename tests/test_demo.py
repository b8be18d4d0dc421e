"""`kiosk demo` as a user runs it: a real process, real ports, stopped with Ctrl-C."""
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from kiosk.testing import free_port

from .conftest import wait_for


@pytest.mark.slow
def test_demo_serves_the_guard_page_and_syncs_then_stops_cleanly(tmp_path):
    port, central_port, form_port = free_port(), free_port(), free_port()
    kiosk_bin = Path(sys.executable).with_name("kiosk")
    proc = subprocess.Popen([str(kiosk_bin), "demo", "--data", str(tmp_path / "demo"), "--port", str(port),
                             "--central-port", str(central_port), "--form-port", str(form_port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        token = (wait_for(lambda: (tmp_path / "demo" / "operator.token").exists() and
                          (tmp_path / "demo" / "operator.token").read_text(), timeout=30)).strip()
        headers = {"Authorization": f"Bearer {token}"}

        def central_entries():
            try:
                r = requests.get(f"http://127.0.0.1:{central_port}/api/v1/entries", headers=headers, timeout=2)
                return r.json()["entries"]
            except requests.RequestException:
                return []

        # The scene's first three visitors (2 s, 9 s, 15 s into the loop) reach the central.
        entries = wait_for(lambda: len(central_entries()) >= 3 and central_entries(), timeout=45, interval=0.5)
        assert [(e["declaration"]["holder"], e["decision"]) for e in entries[:3]] == [
            ("Nguyễn Văn An", "allow"), ("Nguyễn Văn An", "review"), ("Trần Thị Bình", "review")]
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=5).text
        assert "Trần Thị Bình" in page and "MỜI VÀO" in page
        # the demo ships a trust list of its own signer: its line is green, not red all day
        assert '<span class="good" data-key="trust_list">' in page and 'class="bad"' not in page
        assert "Khai báo y tế" in requests.get(f"http://127.0.0.1:{form_port}/", timeout=5).text
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}/" in out
    pin = (tmp_path / "demo" / "guard.pin").read_text().strip()
    assert re.fullmatch(r"\d{4}", pin) and f"Guard PIN      {pin}" in out
    assert re.search(r"ALLOW\s+Nguyễn Văn An", out)
    assert re.search(r"stopped; \d+ entries reached the central", out)
    assert "Traceback" not in out
