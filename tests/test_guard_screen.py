"""The guard's touchscreen in real headless Chromium (Debian's, driven by Playwright): a
visitor appears within 300 ms, the screen clears, an override opens the door, the
language switches, and screenshots at 800x480 go to test-artifacts/screens/."""
from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import time
from pathlib import Path

import pytest

from kiosk.ble import families
from kiosk.declarations import sitepass
from kiosk.demo.scene import visitor_frame

from .conftest import SITE, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENS = Path(os.environ.get("KIOSK_SCREENSHOTS", Path(__file__).resolve().parents[1] / "test-artifacts" / "screens"))
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="chromium is not installed (make test installs Debian's chromium)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # As root Chromium needs --no-sandbox; the other flags keep it off the (closed) network.
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def screen(browser):
    context = browser.new_context(viewport={"width": 800, "height": 480})
    page = context.new_page()
    yield page
    context.close()


def open_screen(page, kiosk, lang="vi"):
    page.goto(f"{kiosk.web_url}/?lang={lang}")
    page.wait_for_function("window.kioskReady === true")
    wait_for(lambda: len(kiosk.bus._subscribers) >= 1)     # the EventSource is connected


def show(kiosk, code, phone: bytes | None = None):
    kiosk.clock.advance(60)                                  # a minute after the last visitor
    if phone is not None:
        kiosk.scanner.advertise("5d:3a:10:22:8f:01", -58, phone, times=3)
        assert kiosk.scanner.wait_idle()
    kiosk.camera.show(visitor_frame(code), frames=2)


def shoot(page, name):
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"))


@pytest.fixture
def passes(site_key):
    key = sitepass.load_private_key(site_key)

    def make(name, clock, forged=False):
        if forged:       # someone else's key, claiming the site's key id
            return sitepass.issue(sitepass.new_key(), SITE, name, clock.now(), 3600,
                                  kid=sitepass.cose.key_id(key.public_key()))
        return sitepass.issue(key, SITE, name, clock.now(), 86400 * 30)
    return make


def test_a_visitor_appears_within_300_ms_and_the_screens_read_at_a_glance(make_kiosk, screen, passes):
    kiosk = make_kiosk()
    open_screen(screen, kiosk)
    shoot(screen, "idle")
    latencies = []
    visitors = [("Nguyễn Văn An", families.bluezone_android(bytes(12)), "allow"),
                ("Trần Thị Bình", None, "review"),
                ("Phạm Quốc Dũng", families.gaen(bytes(16)), "deny")]
    for name, phone, outcome in visitors:
        code = passes(name, kiosk.clock, forged=outcome == "deny")
        before = screen.eval_on_selector("#decision", "e => e.dataset.latest")
        start = time.monotonic()
        show(kiosk, code, phone)
        screen.wait_for_function(f"document.getElementById('decision').dataset.latest !== '{before}'",
                                 timeout=5000, polling="raf")
        latencies.append(time.monotonic() - start)
        assert outcome in screen.get_attribute("#decision", "class")
        shoot(screen, outcome)
    recent = screen.inner_text("#recent")
    assert "Nguyễn Văn An" in recent and "Trần Thị Bình" in recent and "Phạm Quốc Dũng" not in recent
    assert "Chữ ký không hợp lệ (mã giả)" in screen.inner_text("#decision")
    assert statistics.median(latencies) < 0.300, latencies
    # the same ALLOW screen on the two other displays a gate may have
    for w, h in ((1024, 600), (1920, 1080)):
        screen.set_viewport_size({"width": w, "height": h})
        shoot(screen, f"deny-{w}x{h}")


def test_the_screen_clears_back_to_idle(make_kiosk, screen, passes):
    kiosk = make_kiosk(web__clear_after=1.0)
    open_screen(screen, kiosk)
    show(kiosk, passes("Lê Văn Cường", kiosk.clock), families.bluezone_android(bytes(12)))
    screen.wait_for_selector("#decision.allow", timeout=5000)
    shown = time.monotonic()
    screen.wait_for_selector("#decision.idle", timeout=5000)
    assert time.monotonic() - shown >= 0.8
    assert "Vui lòng đưa mã QR vào camera" in screen.inner_text("#decision")


def test_the_guard_lets_a_reviewed_visitor_in_with_a_reason_and_pin(make_kiosk, screen, passes):
    kiosk = make_kiosk(web__guard_pin_sha256=hashlib.sha256(b"2468").hexdigest())
    relay = kiosk.signals.factory.pin(kiosk.settings["door.relay_pin"])
    open_screen(screen, kiosk)
    show(kiosk, passes("Trần Thị Bình", kiosk.clock))            # no app heard: review
    screen.wait_for_selector("#decision.review", timeout=5000)
    entry_id = screen.eval_on_selector("#decision", "e => e.dataset.latest")
    relay.clear_states()
    screen.click("button[data-action=allow]")
    screen.fill("#pin", "1111")
    screen.click("button[data-reason=why_staff]")
    screen.wait_for_function("document.getElementById('why-error').textContent.length > 0")
    assert screen.inner_text("#why-error") == "Sai mã PIN"
    assert kiosk.log.get(entry_id)["override"] is None and not relay.state
    screen.fill("#pin", "2468")
    screen.click("button[data-reason=why_staff]")
    wait_for(lambda: [s.state for s in relay.states] == [False, True, False], timeout=5)
    override = kiosk.log.get(entry_id)["override"]
    assert (override["action"], override["reason"], override["by"]) == ("allow", "why_staff", "guard")
    screen.wait_for_selector(".overridden", timeout=5000)
    assert "Bảo vệ đã xử lý: Cho vào" in screen.inner_text("#decision")
    shoot(screen, "review-overridden")


def test_the_language_toggle(make_kiosk, screen, passes):
    kiosk = make_kiosk()
    open_screen(screen, kiosk)
    assert "Vui lòng đưa mã QR vào camera" in screen.inner_text("#decision")
    screen.click("#lang")
    screen.wait_for_function("window.kioskReady === true && document.documentElement.lang === 'en'")
    wait_for(lambda: len(kiosk.bus._subscribers) >= 1)
    assert "Please show your QR code to the camera" in screen.inner_text("#decision")
    show(kiosk, passes("Nguyễn Văn An", kiosk.clock), families.bluezone_android(bytes(12)))
    screen.wait_for_selector("#decision.allow", timeout=5000)
    assert "ALLOW" in screen.inner_text("#decision") and "App: confirmed" in screen.inner_text("#decision")
    shoot(screen, "allow-en")


def test_a_dead_camera_shows_red_on_the_screen(make_kiosk, screen):
    # A USB camera that is not there, through the door's own OpenCV backend: the screenshot
    # (docs/screens/camera-offline.png) then shows what a guard sees, not a test's temp path.
    kiosk = make_kiosk(camera__backend="opencv", camera__device="/dev/video-unplugged")
    wait_for(lambda: kiosk.health()["camera"].startswith("offline"))
    open_screen(screen, kiosk)
    camera = screen.locator("#health span[data-key=camera]")
    assert "bad" in camera.get_attribute("class") and "mất kết nối" in camera.inner_text()
    shoot(screen, "camera-offline")
