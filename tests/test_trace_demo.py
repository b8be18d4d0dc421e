"""`kiosk demo` with contact tracing: the tracer's own token, refused to an operator, and the
central's page where a tracer picks a visitor and sees who overlapped with them."""
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
from .test_central_pages import needs_chromium, shoot
from .test_guard_screen import browser  # noqa: F401  (the Chromium fixture)


@needs_chromium
@pytest.mark.slow
def test_demo_tracer_picks_a_visitor_on_the_central_page(tmp_path, browser):  # noqa: F811 (the fixture)
    port, central_port, form_port = free_port(), free_port(), free_port()
    kiosk_bin = Path(sys.executable).with_name("kiosk")
    data = tmp_path / "demo"
    proc = subprocess.Popen([str(kiosk_bin), "demo", "--data", str(data), "--port", str(port),
                             "--central-port", str(central_port), "--form-port", str(form_port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    central = f"http://127.0.0.1:{central_port}"
    try:
        tracer = wait_for(lambda: (data / "tracer.token").exists() and (data / "tracer.token").read_text(),
                          timeout=30).strip()
        operator = (data / "operator.token").read_text().strip()

        def synced():
            try:
                r = requests.get(f"{central}/api/v1/entries", headers={"Authorization": f"Bearer {operator}"},
                                 timeout=2)
                return len(r.json()["entries"]) >= 3
            except requests.RequestException:
                return False
        wait_for(synced, timeout=45, interval=0.5)
        params = {"q": "Nguyễn", "reason": "demo"}
        for base in (f"http://127.0.0.1:{port}", central):
            as_operator = requests.get(f"{base}/api/v1/trace", params=params, timeout=5,
                                       headers={"Authorization": f"Bearer {operator}"})
            assert as_operator.status_code == 403, base
            as_tracer = requests.get(f"{base}/api/v1/trace", params=params, timeout=5,
                                     headers={"Authorization": f"Bearer {tracer}"})
            assert as_tracer.status_code == 200 and as_tracer.json()["people"], base
        # The page: search a name, pick the visitor, see the contacts and how long.
        found = requests.post(f"{central}/trace", timeout=10,
                              data={"token": tracer, "reason": "demo: F0", "q": "Nguyễn", "min_overlap": "0"})
        assert found.status_code == 200 and "Nguyễn Văn An" in found.text
        entry = re.search(r'name="entry" value="([0-9A-Z]{26})"', found.text).group(1)
        shown = requests.post(f"{central}/trace", timeout=10, data={
            "token": tracer, "reason": "demo: F0", "entry": entry, "min_overlap": "0"})
        assert shown.status_code == 200
        assert "Trần Thị Bình" in shown.text                # entered after An, still inside (assumed)
        assert re.search(r"<td>[\d.]+</td>", shown.text)    # the overlap in minutes
        assert "demo: F0" in shown.text                     # the query is in the log shown
        # The same walk in Chromium, as the tracer does it (and the page's screenshot).
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{central}/trace")
        page.fill("form.query input[name=token]", tracer)
        page.fill("form.query input[name=reason]", "demo: F0")
        page.fill("form.query input[name=q]", "Nguyễn")
        page.fill("form.query input[name=min_overlap]", "0")
        page.click("form.query button[type=submit]")
        page.wait_for_selector("table#people")
        page.locator("table#people input[name=token]").first.fill(tracer)
        page.locator("table#people button[name=pick]").first.click()
        page.wait_for_selector("table#contacts")
        assert "Trần Thị Bình" in page.inner_text("table#contacts")
        shoot(page, "trace")
        page.close()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Tracer token" in out and f"{central}/trace" in out
    assert "Traceback" not in out
