"""Entries as operators take them away: the public JSON form and Excel-safe CSV rows.

The definitions live in kiosk/entries.py (shared by the kiosk and the central); this module
keeps the names the store, `kiosk export` and the benchmarks import.
"""
from __future__ import annotations

from datetime import date

from .entries import CSV_COLUMNS, DECISIONS, bound, csv_chunks, csv_row, daily_report, public, totals

__all__ = ["CSV_COLUMNS", "DECISIONS", "bound", "csv_chunks", "csv_row", "daily_summary", "public", "totals"]


def daily_summary(docs: list[dict], tz) -> dict:
    """The daily report's figures of `docs` (entries.daily_report without date, site, kiosks)."""
    report = daily_report(docs, date(1970, 1, 1), tz, "")
    return {k: v for k, v in report.items() if k not in ("date", "site", "kiosks")}
