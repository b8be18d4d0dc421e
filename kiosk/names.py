"""People's names as a comparison sees them: the same person written with or without
Vietnamese diacritics, in any case and spacing, is the same name.

Pure.
"""
from __future__ import annotations

import unicodedata

__all__ = ["normalise", "same"]

# Đ/đ is a letter of its own in Unicode, not D with a combining mark: NFD leaves it whole.
_LETTERS = str.maketrans({"đ": "d", "Đ": "d"})


def normalise(name: str) -> str:
    """`name` in NFC, case-folded, spaces collapsed, diacritics removed ("Nguyễn  Văn Đức" ->
    "nguyen van duc").

    Diacritics are folded because phones are used to type names without them (a PC-Covid QR
    carries them; a visitor typing on an English keyboard does not); the name is compared
    only with a declaration made under the same ID number.
    """
    text = unicodedata.normalize("NFC", name).casefold().translate(_LETTERS)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return " ".join(unicodedata.normalize("NFC", text).split())


def same(a: str | None, b: str | None) -> bool:
    """Whether two written names are the same name; a missing name matches nothing."""
    if not a or not b:
        return False
    return normalise(a) == normalise(b)
