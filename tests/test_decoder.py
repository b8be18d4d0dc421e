"""Real pyzbar on real images rendered like a doorway camera sees them."""
import cv2
import numpy as np
import pytest

from kiosk import config
from kiosk.camera import open_source
from kiosk.camera.decoder import PresentationFilter, QRDecoder
from kiosk.clock import ManualClock
from kiosk.demo.scene import visitor_frame
from kiosk.exc import CameraFault


@pytest.mark.parametrize("angle, centre, tilt", [(0, (320, 240), 0), (10, (200, 180), 0.1),
                                                 (-25, (450, 300), 0.15), (45, (320, 240), 0.05)])
def test_codes_held_at_angles_and_off_centre(angle, centre, tilt):
    text = "KP1:" + "ABCDEFGH1234" * 12
    frame = visitor_frame(text, angle=angle, centre=centre, tilt=tilt)
    assert QRDecoder().decode(frame) == [text.encode()]


def test_an_empty_doorway_has_no_code():
    assert QRDecoder().decode(visitor_frame(None)) == []


def test_binary_payloads_come_out_as_the_same_bytes():
    payload = bytes(range(256))[:120]
    assert QRDecoder().decode(visitor_frame(payload)) == [payload]


def test_oversized_payloads_are_dropped():
    frame = visitor_frame("X" * 300)
    assert QRDecoder(max_payload=200).decode(frame) == []


def test_a_dim_low_contrast_code_is_read():
    frame = visitor_frame("KP1:LOWLIGHT", angle=5).astype(np.float32)
    dim = np.clip(frame * 0.25 + 30, 0, 255).astype(np.uint8)
    assert QRDecoder().decode(dim) == [b"KP1:LOWLIGHT"]


def test_once_per_presentation():
    f = PresentationFilter(cooldown=2.0)
    assert f.new([b"a"], 0.0) == [b"a"]
    assert f.new([b"a"], 1.0) == []          # still held up
    assert f.new([b"a", b"b"], 2.5) == [b"b"]
    assert f.new([], 3.0) == []
    assert f.new([b"a"], 6.0) == [b"a"]      # gone for 3.5 s: a new presentation


def test_a_code_seen_before_the_clock_stepped_back_is_a_new_presentation_after_it():
    """A Pi's clock ahead by hours, then set back by NTP: the visitor who showed a code then
    and shows it again now is a new presentation, not one held up since (the soak lost one)."""
    f = PresentationFilter(cooldown=2.0)
    ahead = 1_795_000_000.0 + 6 * 3600
    assert f.new([b"pass"], ahead) == [b"pass"]
    back = 1_795_000_000.0
    assert f.new([b"pass"], back) == [b"pass"]
    assert f.new([b"pass"], back + 0.5) == []     # and then held up as usual


@pytest.fixture(params=["replay-folder", "replay-video", "opencv-video", "picamera2"])
def camera_settings(request, tmp_path):
    """One suite for every frame source backend, as tinydb tests every storage."""
    frames = [visitor_frame(None), visitor_frame("KP1:ONE"), visitor_frame(None)]
    if request.param == "picamera2":
        pytest.importorskip("picamera2", reason="picamera2 comes with Raspberry Pi OS (python3-picamera2)")
    if request.param == "replay-folder":
        for i, frame in enumerate(frames):
            cv2.imwrite(str(tmp_path / f"{i:02d}.png"), frame)
        path = tmp_path
    else:
        path = tmp_path / "door.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (640, 480))
        for frame in frames:
            writer.write(frame)
        writer.release()
    base = config.defaults()
    if request.param == "opencv-video":
        return config.load(env={}, base=base, overrides={"camera.backend": "opencv", "camera.device": str(path)})
    return config.load(env={}, base=base, overrides={"camera.backend": "replay",
                                                     "camera.replay_path": str(path),
                                                     "camera.replay_fps": 0.0})


def test_frame_sources_deliver_every_frame_then_report_the_end(camera_settings):
    source = open_source(camera_settings, ManualClock())
    source.open()
    decoder = QRDecoder()
    found = [decoder.decode(source.read(1.0).image) for _ in range(3)]
    assert found == [[], [b"KP1:ONE"], []]
    with pytest.raises(CameraFault):
        source.read(1.0)                      # not looping: the end is a fault the kiosk reports
    source.close()


def test_a_missing_replay_folder_is_a_camera_fault(tmp_path):
    base = config.defaults()
    settings = config.load(env={}, base=base, overrides={"camera.backend": "replay",
                                                         "camera.replay_path": str(tmp_path / "gone")})
    with pytest.raises(CameraFault, match="does not exist"):
        open_source(settings, ManualClock()).open()


def test_a_phone_in_dark_mode_shows_an_inverted_code():
    frame = cv2.bitwise_not(visitor_frame("KP1:DARKMODE", angle=4))
    assert QRDecoder().decode(frame) == [b"KP1:DARKMODE"]


def test_a_code_tilted_away_is_rectified_and_read():
    import random

    from kiosk.testing.qr_corpus import make

    rng = random.Random(11)
    read = plain = 0
    for _ in range(10):
        frame, expected = make("tilt", (1280, 720), rng)
        decoder = QRDecoder()
        read += decoder.decode(frame) == [expected]
        plain += decoder.steps["gray"]
    assert read >= 7 and plain <= 2, (read, plain)


def _corpus(category, size, seed, n):
    import random

    from kiosk.testing.qr_corpus import make

    rng = random.Random(seed)
    return [make(category, size, rng) for _ in range(n)]


def test_an_empty_doorway_costs_one_zxing_pass_and_no_zbar_pass(monkeypatch):
    # zbar on the whole frame runs only once the finder has seen a code (zxing-cpp, first,
    # reads what zbar read there, for a tenth of the time; bench/qr_decode.py).
    from kiosk.camera import decoder as module

    calls, zxing = [], []
    real, real_zxing = module.pyzbar.decode, module.zxingcpp.read_barcodes
    monkeypatch.setattr(module.pyzbar, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(module.zxingcpp, "read_barcodes", lambda *a, **k: zxing.append(1) or real_zxing(*a, **k))
    qr = QRDecoder()
    for frame, _ in _corpus("none", (640, 480), 5, 5):
        assert qr.decode(frame) == []
    assert len(calls) == 0 and len(zxing) == 5 and qr.steps == {"none": 5}


def test_defocused_codes_are_sharpened_and_read():
    read = plain = 0
    for frame, expected in _corpus("focus_blur", (640, 480), 12, 10):
        decoder = QRDecoder()
        read += decoder.decode(frame) == [expected]
        plain += decoder.steps["gray"]
    assert read >= 7 and read - plain >= 3, (read, plain)


def test_small_and_dark_mode_codes_from_the_corpus():
    for category in ("small", "inverted"):
        frames = _corpus(category, (640, 480), 13, 6)
        assert sum(QRDecoder().decode(f) == [e] for f, e in frames) >= 5, category


def test_the_last_location_is_remembered_for_a_few_frames_only():
    text = "KP1:" + "MOVING" * 30
    decoder = QRDecoder(remember=2)
    assert decoder.decode(visitor_frame(text, centre=(300, 240))) == [text.encode()]
    assert decoder._last is not None and decoder._since == 0
    for _ in range(3):
        decoder.decode(visitor_frame(None))
    assert decoder._since == 3 > decoder.remember       # forgotten: the step no longer runs


def test_a_roughly_found_code_is_straightened_a_second_time():
    # A dark-mode code whose fourth corner the finder guessed badly: the first square is
    # bent, the finder on that square finds the corners that read.
    # (zxing-cpp, now first in the ladder, reads this frame itself: the step is shown on
    # the finder's square directly.)
    frame, expected = _corpus("inverted", (640, 480), 3, 4)[3]
    decoder = QRDecoder()
    assert decoder.decode(frame) == [expected]
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    squares = [decoder._rectified(gray, quad, 1) for quad in (decoder._find(gray),) if quad is not None]
    assert squares and decoder._payloads(decoder._symbols(squares[0])) == []
    assert decoder._payloads(decoder._symbols(decoder._again(squares[0]))) == [expected]


def test_while_a_code_stays_unread_the_slow_steps_wait_their_turn():
    # A defocused code zxing-cpp alone does not read; the ladder's sharpened square does.
    frame, expected = _corpus("focus_blur", (640, 480), 4, 1)[0]
    empty = visitor_frame(None)
    assert QRDecoder(climb_every=0.5).decode(frame, t=0.0) == [expected]     # the first frame climbs
    decoder = QRDecoder(climb_every=0.5)
    assert decoder.decode(empty, t=0.0) == []                                 # climbed, found nothing
    assert decoder.decode(frame, t=0.1) == [] and decoder.steps["none"] == 2  # zxing-cpp only
    assert decoder.decode(frame, t=0.6) == [expected]                         # its turn again
    # Every frame climbs without the setting (kiosk decode, the benchmark).
    plain = QRDecoder()
    assert plain.decode(empty) == [] and plain.decode(frame) == [expected]


def _smeared(frame, length: int, angle: float):
    """`frame` moved `length` px along `angle` degrees during the exposure (a line drawn
    with OpenCV, anti-aliased; unlike the corpus's rotated box)."""
    n = length + 2 | 1
    kernel = np.zeros((n, n), np.float32)
    ends = _line_ends(n, length, angle)
    cv2.line(kernel, ends[0], ends[1], 1.0, 1, cv2.LINE_AA)
    return cv2.filter2D(frame, -1, kernel / kernel.sum())


def _line_ends(n: int, length: int, angle: float):
    """The whole-pixel ends of a line `length` px long at `angle` degrees across the middle
    of an n x n kernel."""
    c, half, t = n // 2, (length - 1) / 2, np.deg2rad(angle)
    return [(round(c + s * half * np.cos(t)), round(c + s * half * np.sin(t))) for s in (-1, 1)]


def _with_sensor_noise(frame, sigma: float = 2.0):
    return np.clip(frame + np.random.default_rng(1).normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)


def _read_alone(frame):
    """What zxing-cpp and zbar each read on the whole frame, without the ladder."""
    import zxingcpp
    from pyzbar import pyzbar

    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return [r.bytes for r in zxingcpp.read_barcodes(gray)] + [s.data for s in pyzbar.decode(gray)]


@pytest.mark.parametrize("length, angle", [(10, 117), (14, 33)])
def test_a_code_smeared_by_a_moving_hand_is_deblurred_and_read(length, angle):
    # A phone moving 10-14 px (2.5-3.5 modules) during the exposure, with sensor noise: no
    # decoder reads it, the finder does not see it, the ladder reads it only once the
    # smear measured on the code's region is undone (its last step).
    text = "KP1:" + "VISITOR-7Q2" * 14
    frame = _with_sensor_noise(_smeared(visitor_frame(text, angle=-12, centre=(300, 250)), length, angle))
    assert _read_alone(frame) == []
    decoder = QRDecoder()
    assert decoder.decode(frame) == [text.encode()]
    assert set(decoder.steps) <= {"deblurred", "deblurred (zxing)"}, decoder.steps


def test_the_smear_is_measured_from_the_code_itself():
    from kiosk.camera.deblur import smear

    frame = cv2.cvtColor(visitor_frame("KP1:" + "MEASURE" * 20, angle=20, centre=(320, 240)), cv2.COLOR_BGR2GRAY)
    region = frame[100:380, 180:460]
    assert smear(region) is None                   # sharp: no direction of blur to undo
    angle, length, _ = smear(_smeared(region, 11, 140))
    (x0, y0), (x1, y1) = _line_ends(13, 11, 140)        # the line as drawn: 143 degrees
    drawn = np.degrees(np.arctan2(y1 - y0, x1 - x0)) % 180
    assert abs((angle - drawn + 90) % 180 - 90) <= 5 and abs(length - 11) <= 1, (angle, drawn, length)


def test_a_code_out_of_focus_is_refocused_and_read():
    # A lens well out of focus spreads each point over a disc (radius 5 px here, 2.5
    # modules across), unlike the corpus's Gaussian; the sharpened square does not read it.
    text = "KP1:" + "VISITOR-7Q2" * 14
    frame = visitor_frame(text, angle=-12, centre=(300, 250))
    disc = np.zeros((13, 13), np.float32)
    cv2.circle(disc, (6, 6), 5, 1.0, -1, cv2.LINE_AA)
    frame = _with_sensor_noise(cv2.filter2D(frame, -1, disc / disc.sum()))
    assert _read_alone(frame) == []
    decoder = QRDecoder()
    assert decoder.decode(frame) == [text.encode()]
    assert set(decoder.steps) <= {"refocused", "refocused (zxing)"}, decoder.steps


def test_sensor_noise_on_an_empty_doorway_is_not_taken_for_a_code():
    # Busy cells stand out from the frame's typical cell: a noisy sensor in a dim corridor
    # does not send the deblurring steps over the whole frame.
    from kiosk.camera.deblur import busy_regions, code_regions

    for sigma in (3, 6, 12, 20):
        frame = _with_sensor_noise(visitor_frame(None), sigma)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        assert code_regions(gray, cv2.GaussianBlur(gray, (0, 0), 2)) == [], sigma
        assert busy_regions(gray, cv2.GaussianBlur(gray, (0, 0), 2)) == [], sigma
        decoder = QRDecoder()
        assert decoder.decode(frame) == []



def test_a_busy_scene_filling_the_frame_is_not_taken_for_a_code():
    # A poster or a shelf behind the doorway: busy cells over the whole frame are a scene,
    # not a phone held close; no region step takes them.
    from kiosk.camera.deblur import busy_regions

    rng = np.random.default_rng(5)
    cells = cv2.resize(rng.integers(0, 2, (60, 80)).astype(np.uint8), (640, 480), interpolation=cv2.INTER_NEAREST)
    poster = (cells * 160 + 40).astype(np.uint8)
    assert busy_regions(poster, cv2.GaussianBlur(poster, (0, 0), 2)) == []
    decoder = QRDecoder()
    assert decoder.decode(poster) == []
    assert set(decoder.steps) == {"none"}

def test_a_code_at_a_steep_keystone_is_enlarged_and_read():
    # Pitched 50 and turned 40 degrees (a phone held low and tilted back), modules of 3 px
    # on the screen: on the far side they are under 2 px, too few for zxing-cpp's binarizer
    # and the finder; the busy region enlarged 1.5x reads.
    from kiosk.demo.scene import background, qr_image
    from kiosk.testing.qr_corpus import _paste, project

    text = "HC1:" + "6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3/XIV0W23NTDE" * 9
    code = np.pad(qr_image(text, 3), 12, constant_values=240)
    quad = project(code.shape, (640, 480), (320, 240), 50, 40, -8)
    frame = _paste(cv2.cvtColor(background(3), cv2.COLOR_BGR2GRAY), code, quad)
    assert _read_alone(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)) == []
    decoder = QRDecoder()
    assert decoder.decode(frame) == [text.encode()]
    assert set(decoder.steps) == {"enlarged (zxing)"}, decoder.steps


def _under_a_panel(text: str, side: str, dark_mode: bool, module: int = 5):
    """A phone screen showing `text` (`module` px modules) with a panel drawn up to the code's
    edge on `side` ("left": a navigation rail with rounded ends; "top": a status bar with a
    clock; "right": a plain side panel; "bottom": a tab bar with icons), its quiet zone gone
    there, yawed 12 degrees and turned 6 in a 640x480 frame (gray)."""
    from kiosk.demo.scene import background, qr_image
    from kiosk.testing.qr_corpus import _paste, project

    code = qr_image(text, module)             # 4 light modules of quiet zone on every side
    screen, ink = (255, 0) if not dark_mode else (0, 255)
    if dark_mode:
        code = 255 - code
    face = np.pad(code, 14, constant_values=screen)
    quiet = 14 + 4 * module                   # the screen's margin and the code's quiet zone, px
    panel = np.full_like(face, screen)
    if side == "left":
        cv2.rectangle(panel, (0, 6), (quiet - 1, face.shape[0] - 7), ink, -1)
        for y in (6, face.shape[0] - 7):
            cv2.circle(panel, (quiet // 2, y), quiet // 2, ink, -1)
        cv2.putText(panel, "=", (4, face.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.8, screen, 2)
    elif side == "top":
        panel[:quiet, :] = ink
        cv2.putText(panel, "08:15", (8, quiet - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, screen, 1)
    elif side == "right":
        panel[:, -quiet:] = ink
    else:
        panel[-quiet:, :] = ink
        for x in range(20, face.shape[1] - 20, 60):
            cv2.circle(panel, (x, face.shape[0] - quiet // 2), 5, screen, 1)
    face = np.where(panel == ink, panel, face)
    quad = project(face.shape, (640, 480), (330, 235), 0, 12, 6)
    return _paste(cv2.cvtColor(background(5), cv2.COLOR_BGR2GRAY), face, quad)


def _read_by_the_step_alone(frame, text: str, step: str, monkeypatch, owner, name: str, without) -> None:
    """`frame` (gray) is unread by zbar and zxing-cpp alone, read as `text` by the ladder's
    `step` alone, and unread once `owner.name` is `without` (the ladder without the step)."""
    assert _read_alone(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)) == []
    qr = QRDecoder()
    assert qr.decode(frame) == [text.encode()]
    assert set(qr.steps) == {step}, qr.steps
    monkeypatch.setattr(owner, name, without)
    assert QRDecoder().decode(frame) == []


# Panels the ladder without the step does not read (some others, a top bar on 5 px modules
# for one, zbar reads after one of the "refocused" step's deconvolutions).
@pytest.mark.parametrize("side, dark_mode, module", [("left", False, 4), ("top", False, 6), ("bottom", False, 6),
                                                     ("right", True, 5)])
def test_a_code_under_a_phone_panel_gets_its_quiet_zone_back(monkeypatch, side, dark_mode, module):
    # A panel drawn up to the code takes its quiet zone on that side: the finder patterns'
    # outer ring merges with the panel and no finder sees them. Their centres (a 3 x 3 square
    # alone in a light 5 x 5) are whole; from them the margin is painted back.
    from kiosk.camera import decoder

    text = "KP1:SITE-PASS/BLOCK-C/" + "7Y3W" * 30
    frame = _under_a_panel(text, side, dark_mode, module)
    _read_by_the_step_alone(frame, text, "quiet zone (zxing)", monkeypatch, decoder, "restored",
                            lambda region, polarity: None)      # the ladder without the step


def test_the_finder_patterns_are_found_by_their_centres_under_a_status_bar():
    from kiosk.camera.quietzone import finder_centres, three_finders
    from kiosk.demo.scene import qr_image

    code = qr_image("KP1:SITE-PASS/BLOCK-C/" + "7Y3W" * 30, 5)
    code[:20, :] = 0                                 # a status bar over the whole quiet zone
    corner, others = three_finders(finder_centres(np.where(code < 128, 255, 0).astype(np.uint8)))
    n = code.shape[0] // 5 - 8                       # modules across the code

    def middle(col, row):                            # a finder pattern's centre, px
        return np.array([(4 + col + 3.5) * 5 - 0.5, (4 + row + 3.5) * 5 - 0.5])
    assert np.abs(corner[0] - middle(0, 0)).max() <= 1 and abs(corner[1] - 5) <= 0.5, corner
    got = sorted(tuple(f[0]) for f in others)
    want = sorted((tuple(middle(n - 7, 0)), tuple(middle(0, n - 7))))
    assert np.abs(np.array(got) - np.array(want)).max() <= 1, (got, want)


def _held_far_off_axis(text: str, pitch: float, yaw: float, roll: float, reach: float, dark_mode: bool = False):
    """A phone screen showing `text` (3 px modules) pitched and turned far off the camera's
    axis, 640x480, gray."""
    from kiosk.demo.scene import background, qr_image
    from kiosk.testing.qr_corpus import _paste, project

    code = np.pad(qr_image(text, 3), 10, constant_values=255)
    if dark_mode:
        code = 255 - code
    quad = project(code.shape, (640, 480), (320, 240), pitch, yaw, roll, reach)
    return _paste(cv2.cvtColor(background(7), cv2.COLOR_BGR2GRAY), code, quad)


@pytest.mark.parametrize("pitch, yaw, roll, reach, dark_mode", [(55, 30, 0, 1.0, False), (-50, -38, -5, 0.9, False),
                                                                (-50, -38, -5, 0.9, True)])
def test_a_code_held_far_off_axis_is_straightened_from_its_outline(monkeypatch, pitch, yaw, roll, reach, dark_mode):
    # The far side's modules are about 2 px: zxing-cpp finds a false grid inside the code,
    # OpenCV's finder none. The hull of the code's modules on its light screen is its
    # outline in perspective; straightened from it, the code reads.
    from kiosk.camera import decoder

    text = "HC1:" + "NCFOXN%TS3DH0YOJ58S S-W5HDC *M0II5EHC%" * 11
    frame = _held_far_off_axis(text, pitch, yaw, roll, reach, dark_mode)
    _read_by_the_step_alone(frame, text, "outlined (zxing)", monkeypatch, decoder, "code_outline",
                            lambda region, polarity: None)   # the ladder without the step


@pytest.mark.parametrize("pitch, yaw, reach, step", [(50, -40, 0.55, "outlined (zxing)"),
                                                     (40, -40, 0.65, "enlarged (zxing)")])
def test_a_code_held_close_and_turned_is_read_though_it_fills_most_of_the_frame(monkeypatch, pitch, yaw, reach,
                                                                               step):
    # A visitor holds the phone close to the camera and turned: the code's busy cells make
    # one region whose box covers more than half the frame. The cheap region steps take it;
    # the deblurring steps still do not (they take regions of at most half the frame).
    from kiosk.camera import decoder
    from kiosk.camera.deblur import busy_regions, code_regions

    text = "HC1:" + "NCFOXN%TS3DH0YOJ58S S-W5HDC *M0II5EHC%" * 11
    frame = _held_far_off_axis(text, pitch, yaw, 5, reach)
    blur = cv2.GaussianBlur(frame, (0, 0), 2)
    regions = busy_regions(frame, blur)
    assert [compact for _, compact in regions][:1] == [False]
    (x0, y0, x1, y1), _ = regions[0]
    assert (x1 - x0) * (y1 - y0) > frame.size // 2
    assert regions[0][0] not in code_regions(frame, blur)
    # The ladder as it was: regions whose box covers more than half the frame left out.
    _read_by_the_step_alone(frame, text, step, monkeypatch, decoder, "busy_regions",
                            lambda gray, blur: [(box, True) for box, compact in busy_regions(gray, blur) if compact])


def _dim_screen(text: str, light: int, dark: int, module: int, room: int = 0, seed: int = 1):
    """A phone screen turned down showing `text`: its light `light` and its dark `dark` gray
    levels (of 255), turned 7 degrees, in a 1280x720 room the camera is exposed for (70-130
    gray levels, `room` more), with sensor noise (sigma 3); gray."""
    from kiosk.demo.scene import background, qr_image
    from kiosk.testing.qr_corpus import _paste

    code = np.pad(qr_image(text, module), 8 * module, constant_values=255).astype(np.float32)
    screen = (dark + code / 255 * (light - dark)).astype(np.uint8)
    h, w = screen.shape
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]]) - [w / 2, h / 2]
    t = np.deg2rad(-7)
    quad = corners @ np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]).T + (640, 360)
    lit = cv2.add(cv2.cvtColor(background(3, (1280, 720)), cv2.COLOR_BGR2GRAY), room)
    frame = _paste(lit, screen, quad).astype(np.float32)
    return np.clip(frame + np.random.default_rng(seed).normal(0, 3, frame.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("light, dark, module, room", [(24, 12, 5, 0), (22, 12, 4, 0), (24, 12, 6, 0),
                                                      (24, 12, 5, 100)])
def test_a_dim_screen_is_read_once_its_contrast_is_stretched(monkeypatch, light, dark, module, room):
    # A phone at low brightness: light and dark modules 12 gray levels apart, under the 24
    # that zxing-cpp's binarizer needs in a block (flat otherwise), and the busy cells split
    # into regions that each cut the code. Their union, denoised and its darker part
    # stretched to 0-255, reads; in a bright room too (the room's light is left out of the
    # stretch).
    from kiosk.camera import decoder

    text = "HC1:" + "6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3/XIV0W23NTDE" * 8
    frame = _dim_screen(text, light, dark, module, room)
    _read_by_the_step_alone(frame, text, "stretched (zxing)", monkeypatch, decoder.QRDecoder, "_stretched",
                            lambda self, gray, box: ([], None))   # without the step


def test_the_outline_is_the_code_corners_in_perspective():
    from kiosk.camera.outline import code_outline
    from kiosk.demo.scene import qr_image
    from kiosk.testing.qr_corpus import _paste, project

    code = qr_image("HC1:" + "NCFOXN%TS3DH0YOJ58S" * 20, 3, border=0)
    screen = np.pad(code, 30, constant_values=255)
    quad = project(screen.shape, (640, 480), (320, 240), 45, -35, 7)
    frame = _paste(np.full((480, 640), 90, np.uint8), screen, quad)
    # Where the code's own corners went: the screen's homography applied to them.
    h = cv2.getPerspectiveTransform(np.float32([[0, 0], [screen.shape[1], 0], [screen.shape[1], screen.shape[0]],
                                                [0, screen.shape[0]]]), quad)
    side = code.shape[0]
    corners = cv2.perspectiveTransform(np.float32([[[30, 30], [30 + side, 30], [30 + side, 30 + side],
                                                    [30, 30 + side]]]), h)[0]
    found = code_outline(frame[40:440, 60:580])
    assert found is not None
    found = found + [60, 40]
    # Each true corner has a found one within 2.5 px (measured 0.7-1.7: the threshold moves
    # an edge by up to a pixel; a module on the far side is about 2 px).
    assert max(np.linalg.norm(found - c, axis=1).min() for c in corners) <= 2.5, (found, corners)
