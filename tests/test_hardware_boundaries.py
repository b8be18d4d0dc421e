"""A camera that is not there, then is: reported to the guard, picked up by itself."""
import cv2

from kiosk.demo.scene import visitor_frame

from .conftest import wait_for


def test_a_camera_that_is_not_there_is_reported_and_picked_up_when_it_comes(make_kiosk, tmp_path):
    folder = tmp_path / "frames"
    kiosk = make_kiosk(camera__replay_path=str(folder), camera__replay_fps=20.0, camera__replay_loop=True)
    wait_for(lambda: kiosk.health()["camera"].startswith("offline"))
    assert "does not exist" in kiosk.health()["camera"]
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), visitor_frame("https://example.org/poster"))
    wait_for(lambda: kiosk.health()["camera"] == "ok", timeout=15)
    entry = wait_for(lambda: kiosk.log.recent(1), timeout=5)[0]
    assert entry["reasons"][0] == "unknown_code"


