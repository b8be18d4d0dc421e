"""Checks of request parameters shared by the guard pages and the operator API."""
from __future__ import annotations

import ipaddress
import re

from ..model import id_time, iso

__all__ = ["TRACE_MOST", "TRACE_PAGE", "host_allowed", "is_entry_id", "trace_page"]

TRACE_PAGE = 200        # contacts in a page of GET /api/v1/trace when no limit is given
TRACE_MOST = 1000       # the most contacts a page may hold (the CSV export holds them all)

# A ULID: 26 Crockford base32 characters, the first at most 7 (48 bits of milliseconds).
_ENTRY_ID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def is_entry_id(text) -> bool:
    """Whether `text` is an entry id whose time is a real date (not `ZZZ…` or `!!!!`)."""
    if not isinstance(text, str) or not _ENTRY_ID.fullmatch(text):
        return False
    try:
        iso(id_time(text))
    except (ValueError, OverflowError, OSError):       # past year 9999
        return False
    return True


def trace_page(args) -> tuple[int, int]:
    """The page of contacts asked for by GET /api/v1/trace, kiosk and central alike.

    :param args: the request's query arguments (`limit`: 1 to TRACE_MOST, default TRACE_PAGE;
        `offset`: contacts to skip, default 0).
    :returns: (limit, offset).
    :raises ValueError: the message for a 400 answer.
    """
    limit, offset = args.get("limit"), args.get("offset")
    if limit in (None, ""):
        limit = str(TRACE_PAGE)
    if not (limit.isascii() and limit.isdigit() and len(limit) <= 4) or not 1 <= int(limit) <= TRACE_MOST:
        raise ValueError(f"limit must be a whole number from 1 to {TRACE_MOST}")
    if offset in (None, ""):
        offset = "0"
    if not (offset.isascii() and offset.isdigit() and len(offset) <= 9):
        raise ValueError("offset must be a whole number of contacts to skip, from 0")
    return int(limit), int(offset)


def host_allowed(host: str, names) -> bool:
    """Whether a Host header names this kiosk: an IP address, `localhost`, or one of `names`.

    A DNS name other than those may be an attacker's name rebound to the kiosk's address
    (DNS rebinding); an IP address in Host cannot be rebound.

    :param host: the Host header, with or without a port.
    :param names: the extra host names allowed (web.allowed_hosts).
    """
    host = host.strip().lower()
    if host.startswith("["):
        name = host[1:host.find("]")] if "]" in host else ""
    else:
        name = host.partition(":")[0]
    if not name:
        return False
    if name == "localhost" or name in {n.lower() for n in names}:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
