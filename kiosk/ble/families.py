"""Which contact-tracing app an advertisement comes from.

Sources: the Bluezone app's published source (service UUID 0x4E56, manufacturer id 0x22B5
with a 12-byte rotating id, the iOS 128-bit UUID) and the Exposure Notification Bluetooth
Specification v1.2 (16-bit UUID 0xFD6F, service data = 16-byte RPI + 4-byte metadata).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import advertising as adv

STRONG, WEAK = "strong", "weak"

BLUEZONE_UUID16 = 0x4E56
BLUEZONE_COMPANY = 0x22B5
BLUEZONE_ID_LEN = 12
BLUEZONE_UUID128 = "00004e56-73f5-4bc4-a12f-17d1ad07a667"
APPLE_COMPANY = 0x004C
# iOS background "overflow area": Apple manufacturer data, type byte 0x01, then a 128-bit
# mask of hashed service UUIDs. Bluezone's UUID lands on bit 0x08 of the first mask byte;
# other apps' UUIDs can land there too, so it is weak evidence.
APPLE_OVERFLOW_TYPE = 0x01
BLUEZONE_OVERFLOW_BYTE, BLUEZONE_OVERFLOW_BIT = 0, 0x08
GAEN_UUID16 = 0xFD6F
GAEN_DATA_LEN = 20
OTHER_UUID16 = {0xFD64: "tousanticovid", 0xFCF6: "herald"}
OTHER_UUID128 = {"428132af-4746-42d3-801e-4572d65bfd9b": "herald",
                 "b82ab3fc-1595-4f6a-80f0-fe094cc218f9": "opentrace"}


@dataclass(frozen=True)
class Match:
    family: str          # "bluezone", "gaen", "tousanticovid", "herald", "opentrace"
    strength: str        # STRONG or WEAK
    beacon_id: str       # the rotating identifier where the advertisement carries one


def classify(ad: adv.AdvertisingData) -> list[Match]:
    matches = []
    for company, data in ad.manufacturer:
        if company == BLUEZONE_COMPANY and len(data) >= BLUEZONE_ID_LEN:
            matches.append(Match("bluezone", STRONG, data[:BLUEZONE_ID_LEN].hex()))
        elif company == APPLE_COMPANY and len(data) > 1 + BLUEZONE_OVERFLOW_BYTE \
                and data[0] == APPLE_OVERFLOW_TYPE \
                and data[1 + BLUEZONE_OVERFLOW_BYTE] & BLUEZONE_OVERFLOW_BIT:
            matches.append(Match("bluezone", WEAK, ""))
    if BLUEZONE_UUID128 in ad.uuid128 or (ad.local_name == "Bluezone" and not matches):
        matches.append(Match("bluezone", STRONG, ""))
    gaen = ad.service_data16.get(GAEN_UUID16)
    if gaen is not None and len(gaen) == GAEN_DATA_LEN:
        matches.append(Match("gaen", STRONG, gaen[:16].hex()))
    for uuid16, family in OTHER_UUID16.items():
        if uuid16 in ad.uuid16 or uuid16 in ad.service_data16:
            matches.append(Match(family, STRONG, ""))
    for uuid128, family in OTHER_UUID128.items():
        if uuid128 in ad.uuid128:
            matches.append(Match(family, STRONG, ""))
    return matches


# -- Advertisements as phones send them: for the demo capture, tests and `kiosk ble` -----

def bluezone_android(bluezone_id: bytes) -> bytes:
    return adv.build((adv.FLAGS, b"\x06"),
                     (adv.UUID16_COMPLETE, BLUEZONE_UUID16.to_bytes(2, "little")),
                     (adv.MANUFACTURER, BLUEZONE_COMPANY.to_bytes(2, "little") + bluezone_id))


def bluezone_ios_foreground() -> bytes:
    return adv.build((adv.FLAGS, b"\x1a"),
                     (adv.UUID128_COMPLETE, adv.uuid128_bytes(BLUEZONE_UUID128)),
                     (adv.NAME_COMPLETE, b"Bluezone"))


def ios_background_overflow(mask_first_byte: int = BLUEZONE_OVERFLOW_BIT) -> bytes:
    mask = bytes([mask_first_byte]) + bytes(15)
    return adv.build((adv.FLAGS, b"\x1a"),
                     (adv.MANUFACTURER, APPLE_COMPANY.to_bytes(2, "little")
                      + bytes([APPLE_OVERFLOW_TYPE]) + mask))


def gaen(rpi: bytes, metadata: bytes = b"\x40\x08\x00\x00", flags: bool = False) -> bytes:
    structures = [(adv.FLAGS, b"\x1a")] if flags else []   # iPhones send flags, Android not
    structures += [(adv.UUID16_COMPLETE, GAEN_UUID16.to_bytes(2, "little")),
                   (adv.SERVICE_DATA16, GAEN_UUID16.to_bytes(2, "little") + rpi + metadata)]
    return adv.build(*structures)


def unrelated_device(name: bytes = b"Mi Band 6") -> bytes:
    return adv.build((adv.FLAGS, b"\x06"), (adv.NAME_COMPLETE, name),
                     (adv.UUID16_COMPLETE, (0xFEE0).to_bytes(2, "little")))
