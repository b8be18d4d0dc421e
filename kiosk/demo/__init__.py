"""`kiosk demo`: the whole kiosk with no hardware.

A replayed camera (visitors rendered from SCENE into a folder of frames), the bundled BLE
capture (ble_capture.jsonl, built by build_capture() from the same SCENE), gpiozero's mock
pins, the entry log in a local folder, the guard page, and a central server on loopback.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from ..ble import families
from ..model import Advertisement

HERE = Path(__file__).parent
CAPTURE = HERE / "ble_capture.jsonl"
PERIOD = 40.0            # seconds; camera and BLE replays both loop after this
FPS = 2.0
CAPTURE_START = 1_795_420_800.0   # 2026-11-20T08:00:00Z, when this synthetic capture "begins"


@dataclass(frozen=True)
class Visit:
    """Someone at the door from `start` to `end` (seconds into the loop) showing `code`."""
    code: str                 # "pass:<name>", "forged:<name>", "text:<payload>"
    start: float
    end: float
    phone: str | None = None  # advertising family: "bluezone-android", "bluezone-ios", "gaen"
    addr: str = ""


SCENE = (
    Visit("pass:Nguyễn Văn An", 2.0, 5.0, "bluezone-android", "5d:3a:10:22:8f:01"),
    Visit("pass:Nguyễn Văn An", 9.0, 11.0, "bluezone-android", "5d:3a:10:22:8f:01"),  # shown again
    Visit("pass:Trần Thị Bình", 15.0, 18.0, None),                                     # no app
    Visit("forged:Phạm Quốc Dũng", 23.0, 25.0, "gaen", "4c:91:e2:07:b3:5a"),            # forged pass
    Visit("text:https://menu.example/pho-bo", 30.0, 32.0, None),                       # unknown code
    Visit("pass:Lê Văn Cường", 35.0, 38.0, "bluezone-ios", "7a:22:c1:9e:40:d3"),
)

GUARD_PHONE = "6e:11:4a:90:2c:77"   # Bluezone on the guard's desk, all day, too far to count
FITNESS_BAND = "c4:7d:46:1a:0b:e9"  # not a contact-tracing app


def _phone_raw(kind: str, seed: int) -> bytes:
    ident = random.Random(seed).randbytes(16)
    if kind == "bluezone-android":
        return families.bluezone_android(ident[:12])
    if kind == "bluezone-ios":
        return families.bluezone_ios_foreground()
    return families.gaen(ident, flags=False)


def build_capture(scene=SCENE) -> list[Advertisement]:
    """The BLE capture of one loop of `scene`: each phone approaches (RSSI rising), stays
    near while its owner is at the door, then walks away (RSSI falling) and is gone."""
    rng = random.Random(7)
    records = []

    def at(t, addr, rssi, raw):
        records.append(Advertisement(addr, int(round(rssi + rng.uniform(-2, 2))),
                                     round(CAPTURE_START + t, 3), raw))

    for t in [i * 1.0 for i in range(int(PERIOD))]:
        at(t + 0.3, GUARD_PHONE, -84, families.bluezone_android(bytes.fromhex("a1" * 12)))
        at(t + 0.6, FITNESS_BAND, -66, families.unrelated_device())
    for number, visit in enumerate(scene):
        if visit.phone is None:
            continue
        raw = _phone_raw(visit.phone, number)
        arrive, leave = visit.start - 1.5, visit.end + 0.5
        t = arrive
        while t < leave + 2.5:
            if t < visit.start:
                rssi = -85 + 25 * (t - arrive) / 1.5        # approaching
            elif t <= leave:
                rssi = -58                                   # at the door
            else:
                rssi = -60 - 14 * (t - leave)                # walking away
            at(t, visit.addr, rssi, raw)
            t = round(t + 0.25, 3)
    records.sort(key=lambda a: a.t)
    return records


def write_capture(path: Path = CAPTURE) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for advert in build_capture():
            f.write(json.dumps(advert.to_json()) + "\n")
