"""The EU DCC payload's structure, types and lengths, by the DCC JSON schema 1.3.3.

Pure: an hcert (JSON-like data) in, the schema errors out, each a reason code with the
field's path ("schema_too_long:nam.gn"). Array indexes are left out of paths: each group
holds exactly one entry. Deliberate differences from the schema, each held by the tests:

- every string is at most MAX_TEXT characters, the value-set codes too (the schema bounds
  names, issuer and identifiers only; an unbounded code would reach the guard's screen);
- the country code is a whole match of [A-Z]{1,10} (the schema's pattern is unanchored,
  so any text with one capital letter would pass);
- "date" and "date-time" fields are checked as RFC 3339 dates and times (a validator
  checks these only when asked to), because the entry rules compute with them; a leap
  second (:60) is refused.
"""
from __future__ import annotations

import re
from datetime import date, datetime

__all__ = ["MAX_TEXT", "errors"]

# The schema's own bound on names, issuer and identifiers; applied to every string here.
MAX_TEXT = 80
# At most this many errors are reported: the guard needs the first, the log needs few.
MAX_ERRORS = 8
GROUPS = ("v", "t", "r")

_VER = re.compile(r"^\d+.\d+.\d+$")
_DOB = re.compile(r"^((19|20)\d\d(-\d\d){0,2}){0,1}$")
_ICAO = re.compile(r"^[A-Z<]*$")
_COUNTRY = re.compile(r"[A-Z]{1,10}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# RFC 3339 date-time: a time zone is required; fractions of a second are allowed.
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)

TEXT, CODE, COUNTRY, DOSE, DATE, DATE_TIME = "text", "code", "country", "dose", "date", "date-time"
# field -> kind, for each group's entry; required fields by the schema.
_ENTRY = {
    "v": {"tg": CODE, "vp": CODE, "mp": CODE, "ma": CODE, "dn": DOSE, "sd": DOSE, "dt": DATE,
          "co": COUNTRY, "is": TEXT, "ci": TEXT},
    "t": {"tg": CODE, "tt": CODE, "nm": TEXT, "ma": CODE, "sc": DATE_TIME, "tr": CODE, "tc": TEXT,
          "co": COUNTRY, "is": TEXT, "ci": TEXT},
    "r": {"tg": CODE, "fr": DATE, "co": COUNTRY, "is": TEXT, "df": DATE, "du": DATE, "ci": TEXT},
}
_REQUIRED = {"v": ("tg", "vp", "mp", "ma", "dn", "sd", "dt", "co", "is", "ci"),
             "t": ("tg", "tt", "sc", "tr", "co", "is", "ci"),
             "r": ("tg", "fr", "co", "is", "df", "du", "ci")}


def _is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_date_time(text: str) -> bool:
    if not _DATE_TIME.fullmatch(text):
        return False
    try:
        # Python refuses a leap second (:60), which the entry rules could not compute with.
        datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_integer(value) -> bool:
    # JSON has one number type: 2.0 is an integer for the schema, True is not a number.
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value.is_integer()


def _string(value, path: str, out: list[str]) -> bool:
    """Whether `value` is a string within MAX_TEXT; records the error if not."""
    if not isinstance(value, str):
        out.append(f"schema_type:{path}")
        return False
    if len(value) > MAX_TEXT:
        out.append(f"schema_too_long:{path}")
        return False
    return True


def _field(value, kind: str, path: str, out: list[str]) -> None:
    if kind == DOSE:
        if not _is_integer(value):
            out.append(f"schema_type:{path}")
        elif value < 1:
            out.append(f"schema_range:{path}")
        return
    if not _string(value, path, out):
        return
    if ((kind == COUNTRY and not _COUNTRY.fullmatch(value))
            or (kind == DATE and not _is_date(value))
            or (kind == DATE_TIME and not _is_date_time(value))):
        out.append(f"schema_format:{path}")


def _name(nam, out: list[str]) -> None:
    if not isinstance(nam, dict):
        out.append("schema_type:nam")
        return
    if "fnt" not in nam and "gnt" not in nam:
        out.append("schema_missing:nam.fnt")
    for key in ("fn", "fnt", "gn", "gnt"):
        if key in nam and _string(nam[key], f"nam.{key}", out) and key.endswith("t") \
                and not _ICAO.match(nam[key]):
            out.append(f"schema_format:nam.{key}")


def _group(kind: str, items, out: list[str]) -> None:
    if not isinstance(items, list):
        out.append(f"schema_type:{kind}")
        return
    if len(items) != 1:
        out.append(f"schema_count:{kind}")
    for entry in items:
        if not isinstance(entry, dict):
            out.append(f"schema_type:{kind}")
            continue
        for field in _REQUIRED[kind]:
            if field not in entry:
                out.append(f"schema_missing:{kind}.{field}")
        for field, field_kind in _ENTRY[kind].items():
            if field in entry:
                _field(entry[field], field_kind, f"{kind}.{field}", out)


def errors(hcert) -> list[str]:
    """The schema errors of an hcert as reason codes; [] when it has the schema's shape.

    :param hcert: the certificate (claim -260, key 1) as JSON-like data (dates as ISO text).
    :returns: at most MAX_ERRORS codes, in the schema's order of fields.
    """
    if not isinstance(hcert, dict):
        return ["schema_type:hcert"]
    out: list[str] = []
    for key in ("ver", "nam", "dob"):
        if key not in hcert:
            out.append(f"schema_missing:{key}")
    if "ver" in hcert and _string(hcert["ver"], "ver", out) and not _VER.match(hcert["ver"]):
        out.append("schema_format:ver")
    if "nam" in hcert:
        _name(hcert["nam"], out)
    if "dob" in hcert and _string(hcert["dob"], "dob", out) and not _DOB.match(hcert["dob"]):
        out.append("schema_format:dob")
    groups = [k for k in GROUPS if k in hcert]
    if len(groups) != 1:
        out.append("not_one_certificate")
    for kind in groups:
        _group(kind, hcert[kind], out)
    return out[:MAX_ERRORS]
