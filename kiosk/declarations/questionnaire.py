"""The health declaration a visitor fills in on their phone (the questions of Vietnam's
electronic health declaration), and what of it travels in the pass.

Pure: a submitted form in, a record and the pass's flags (or the errors to show) out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# (key, Vietnamese, English) for the yes/no questions about the last 14 days.
QUESTIONS = (
    ("travel", "Đi qua vùng có dịch", "Travelled through an outbreak area"),
    ("contact", "Tiếp xúc với ca bệnh hoặc nghi ngờ mắc bệnh", "Contact with a confirmed or suspected case"),
    ("fever", "Sốt", "Fever"),
    ("cough", "Ho", "Cough"),
    ("breath", "Khó thở", "Shortness of breath"),
    ("throat", "Đau họng", "Sore throat"),
    ("taste", "Mất vị giác hoặc khứu giác", "Loss of taste or smell"),
)
SEXES = {"male": ("Nam", "Male"), "female": ("Nữ", "Female"), "other": ("Khác", "Other")}
_ID = re.compile(r"^[A-Z0-9]{6,12}$")
_PHONE = re.compile(r"^\+?[0-9 .]{8,15}$")


@dataclass(frozen=True)
class Submission:
    name: str
    year_of_birth: int
    sex: str
    id_number: str
    phone: str
    address: str
    answers: dict            # question key -> bool

    @property
    def flags(self) -> tuple[str, ...]:
        """The answers that need health staff to look: every "yes"."""
        return tuple(key for key, *_ in QUESTIONS if self.answers.get(key))


def parse_form(form, this_year: int) -> tuple[Submission | None, list[str]]:
    """Validate a submitted form; return (submission, []) or (None, error keys)."""
    errors = []
    name = " ".join(str(form.get("name", "")).split())[:100]
    if len(name) < 2:
        errors.append("name")
    try:
        year = int(form.get("year_of_birth", ""))
        if not this_year - 120 <= year <= this_year:
            raise ValueError
    except ValueError:
        year = 0
        errors.append("year_of_birth")
    sex = str(form.get("sex", ""))
    if sex not in SEXES:
        errors.append("sex")
    id_number = str(form.get("id_number", "")).strip().upper().replace(" ", "")
    if id_number and not _ID.match(id_number):
        errors.append("id_number")
    phone = str(form.get("phone", "")).strip()
    if phone and not _PHONE.match(phone):
        errors.append("phone")
    address = " ".join(str(form.get("address", "")).split())[:200]
    answers = {}
    for key, *_ in QUESTIONS:
        value = form.get(key)
        if value not in ("yes", "no"):
            errors.append(key)
        answers[key] = value == "yes"
    if errors:
        return None, errors
    return Submission(name, year, sex, id_number, phone, address, answers), []
