"""The personal QR of PC-Covid and the apps that share its format (Decision 1405/QĐ-BTTTT,
2021): pipe-separated text `SoGiayTo|HoTen|NgaySinh|LoaiDinhDanh|QID|EXT`.

It identifies a person and proves nothing about health (there is no signature), so it
always ends as "review" with the reason "identity_only"; the ID number is not kept.
Trailing fields may be missing and digits of the ID may be masked with '*'.
"""
from __future__ import annotations

import re

from ..model import REVIEW_STATUS, Declaration

FORMAT = "pc-covid"
# CMND (9 digits), CCCD (12 digits) or a passport number; '*' where an app masks digits.
_ID = re.compile(r"^(?:[0-9*]{9}|[0-9*]{12}|[A-Z][0-9*]{7,8})$")
_DOB = re.compile(r"^(\d{2})(\d{2})(\d{4})$")


def looks_like(text: str) -> bool:
    fields = text.split("|")
    return len(fields) >= 3 and bool(_ID.match(fields[0].strip())) and bool(fields[1].strip())


def parse(text: str) -> Declaration:
    fields = [f.strip() for f in text.split("|")]
    name = fields[1][:100]
    dob = None
    if len(fields) > 2 and (m := _DOB.match(fields[2])):
        dob = f"{m.group(3)}-{m.group(2)}-{m.group(1)}"
    id_number = fields[0].upper() if "*" not in fields[0] else None
    # The ID number stays in `details` (never in the entry summary) so the kiosk can match a
    # health declaration made today by the same person.
    return Declaration(FORMAT, REVIEW_STATUS, ("identity_only",), name,
                       details={"kind": "identity", "dob": dob, "id_number": id_number})
