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




def test_the_exit_button_opens_the_door_and_the_contact_is_reported(make_kiosk):
    kiosk = make_kiosk(signals__exit_button_pin=24, signals__door_contact_pin=25)
    factory = kiosk.signals.factory
    relay, button, contact = factory.pin(17), factory.pin(24), factory.pin(25)
    relay.clear_states()
    contact.drive_low()                       # reed contact closed: the door is shut
    assert kiosk.health()["door"] == "closed"
    button.drive_low()                        # pressed (switches to ground)
    wait_for(lambda: [s.state for s in relay.states] == [False, True, False], timeout=3)
    button.drive_high()
    assert kiosk.signals.exits == 1
    contact.drive_high()
    assert kiosk.health()["door"] == "open"


def test_a_camera_that_stops_sending_frames_is_offline_and_resumes(make_kiosk):
    kiosk = make_kiosk()
    kiosk.camera.stall_after = 0.5           # a live source: silence means a hung camera
    kiosk.camera.show(visitor_frame(None))
    wait_for(lambda: kiosk.health()["camera"] == "ok")
    # Reported by the stall rule (no frame for stall_after), not by any other failure; how
    # soon is the stall threshold's job, not a wall-clock bound a busy machine can miss.
    wait_for(lambda: kiosk.health()["camera"].startswith("offline"), timeout=30)
    assert "no frame for" in kiosk.health()["camera"]
    for _ in range(20):                        # frames flow again
        kiosk.camera.show(visitor_frame(None))
    wait_for(lambda: kiosk.health()["camera"] == "ok", timeout=10)


def test_a_usb_camera_unplugged_and_back_through_opencv(make_kiosk, tmp_path):
    # A video file that ends stands for a camera whose reads fail: reported, retried, resumed.
    path = tmp_path / "door.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for i in range(20):
        writer.write(visitor_frame("https://example.org/poster" if 5 <= i < 10 else None))
    writer.release()
    kiosk = make_kiosk(camera__backend="opencv", camera__device=str(path))
    seen = set()
    wait_for(lambda: seen.add(kiosk.health()["camera"].split(":")[0]) or {"ok", "offline"} <= seen, timeout=60)
    entry = wait_for(lambda: kiosk.log.recent(1), timeout=60)[0]
    assert entry["reasons"][0] == "unknown_code"
