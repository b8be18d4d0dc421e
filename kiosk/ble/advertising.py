"""BLE advertising data: the length-type-value structures of Core Spec Vol 3 Part C §11.

Pure and fast. Malformed data never raises: parsing stops at the first bad structure and
the result says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# AD types (Bluetooth Assigned Numbers, "Common Data Types").
FLAGS = 0x01
UUID16_INCOMPLETE, UUID16_COMPLETE = 0x02, 0x03
UUID32_INCOMPLETE, UUID32_COMPLETE = 0x04, 0x05
UUID128_INCOMPLETE, UUID128_COMPLETE = 0x06, 0x07
NAME_SHORT, NAME_COMPLETE = 0x08, 0x09
TX_POWER = 0x0A
SERVICE_DATA16 = 0x16
SERVICE_DATA32 = 0x20
SERVICE_DATA128 = 0x21
MANUFACTURER = 0xFF


@dataclass
class AdvertisingData:
    uuid16: list[int] = field(default_factory=list)
    uuid128: list[str] = field(default_factory=list)     # lower-case canonical text form
    service_data16: dict[int, bytes] = field(default_factory=dict)
    manufacturer: list[tuple[int, bytes]] = field(default_factory=list)
    local_name: str | None = None
    flags: int | None = None
    tx_power: int | None = None
    malformed: bool = False


def uuid128_text(le: bytes) -> str:
    """16 little-endian bytes as on air -> 'xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx'."""
    h = le[::-1].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid128_bytes(text: str) -> bytes:
    """The inverse of uuid128_text."""
    return bytes.fromhex(text.replace("-", ""))[::-1]


def parse(raw: bytes) -> AdvertisingData:
    ad = AdvertisingData()
    i, n = 0, len(raw)
    while i < n:
        length = raw[i]
        if length == 0:          # early terminator: the rest is padding
            break
        if i + 1 + length > n:
            ad.malformed = True
            break
        kind, value = raw[i + 1], raw[i + 2:i + 1 + length]
        i += 1 + length
        if kind in (UUID16_COMPLETE, UUID16_INCOMPLETE):
            ad.uuid16.extend(int.from_bytes(value[j:j + 2], "little") for j in range(0, len(value) - 1, 2))
        elif kind in (UUID128_COMPLETE, UUID128_INCOMPLETE):
            ad.uuid128.extend(uuid128_text(value[j:j + 16]) for j in range(0, len(value) - 15, 16))
        elif kind == SERVICE_DATA16 and len(value) >= 2:
            ad.service_data16[int.from_bytes(value[:2], "little")] = value[2:]
        elif kind == MANUFACTURER and len(value) >= 2:
            ad.manufacturer.append((int.from_bytes(value[:2], "little"), value[2:]))
        elif kind in (NAME_COMPLETE, NAME_SHORT):
            ad.local_name = value.decode("utf-8", "replace")
        elif kind == FLAGS and value:
            ad.flags = value[0]
        elif kind == TX_POWER and value:
            ad.tx_power = int.from_bytes(value[:1], "little", signed=True)
    return ad


def build(*structures: tuple[int, bytes]) -> bytes:
    """Raw advertising data from (type, value) pairs."""
    return b"".join(bytes([len(value) + 1, kind]) + value for kind, value in structures)
