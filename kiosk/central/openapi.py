"""The central's OpenAPI 3.1 document (served at /api/v1/openapi.json).

Its entries, CSV and daily report are the kiosk's operator API's (kiosk/web/openapi.py: the
same filters, schemas and errors); tests check that every route is in it and that real
responses validate against its schemas.
"""
from ..web.openapi import _ERRORS, _FILTERS, _PAGING, _REPORT_CONTENT, _REPORT_PARAMS
from ..web.openapi import SPEC as KIOSK_SPEC

__all__ = ["SPEC"]

_TZ = {"name": "tz", "in": "query", "schema": {"type": "string", "maxLength": 100},
       "description": "Time zone of local days (from/to dates, the report's hours); default the central's "
                      "(kiosk-central serve --timezone)."}
_SCHEMAS = KIOSK_SPEC["components"]["schemas"]
_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "Checkpoint central server API", "version": "1",
             "description": "Kiosks send their entries (ingest); operators read them with the kiosk's filters."},
    "components": {
        "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            **{name: _SCHEMAS[name] for name in ("Error", "Entry", "EntryPage", "DailyReport")},
            "IngestAnswer": {"type": "object", "required": ["stored", "duplicate"], "properties": {
                "stored": {"type": "array", "items": {"type": "string"}},
                "duplicate": {"type": "array", "items": {"type": "string"}}}},
            "Health": {"type": "object", "required": ["status", "reports_missed"], "properties": {
                "status": {"const": "ok"}, "reports_missed": {"type": "integer", "minimum": 0}}},
            "ReportSends": {"type": "object", "required": ["sends", "missed"], "properties": {
                "sends": {"type": "array", "items": {"type": "object"}},
                "missed": {"type": "array", "items": {"type": "object"}}}},
        },
    },
    "security": [{"token": []}],
    "paths": {
        "/api/v1/ingest": {"post": {
            "summary": "A kiosk's batch of entries (kiosk token, signed: X-Kiosk-Timestamp, X-Kiosk-Signature)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["entries"], "properties": {
                    "kiosk": {"type": "string"},
                    "entries": {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}}}}}}},
            "responses": {"200": {"description": "Stored and already-held ids", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/IngestAnswer"}}}},
                **{code: {"description": text, **_ERROR} for code, text in (
                    ("400", "An entry not in the kiosk's shape (named by id and field)"),
                    ("401", "No valid kiosk token or signature"), ("403", "Entries of another kiosk or site"),
                    ("409", "A replayed batch"), ("413", "Too many entries or bytes"))}}}},
        "/api/v1/entries": {"get": {
            "summary": "Entries, oldest first, a page at a time (operator token)",
            "description": "A request reads at most 50,000 rows: a filter few entries pass may give a short or "
                           "empty page; follow next_cursor until it is null.",
            "parameters": _FILTERS + [_TZ] + _PAGING + [
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000}}],
            "responses": {"200": {"description": "A page of entries", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/EntryPage"}}}},
                **{k: v for k, v in _ERRORS.items() if k != "429"}}}},
        "/api/v1/entries.csv": {"get": {
            "summary": "The same entries as CSV for Excel (UTF-8 with BOM, CRLF, formulas neutralised)",
            "parameters": _FILTERS + [_TZ],
            "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
                          **{k: v for k, v in _ERRORS.items() if k != "429"}}}},
        "/api/v1/reports/daily": {"get": {
            "summary": "A site's daily report across its kiosks",
            "parameters": [{"name": "site", "in": "query", "required": True, "schema": {"type": "string"}},
                           {"name": "date", "in": "query", "required": True,
                            "schema": {"type": "string", "format": "date"},
                            "description": "Local date."}, _TZ, *_REPORT_PARAMS],
            "responses": {"200": {"description": "The report", "content": _REPORT_CONTENT},
                          **{k: v for k, v in _ERRORS.items() if k != "429"}}}},
        "/api/v1/reports/sends": {"get": {
            "summary": "The daily report's sent state per site and day (latest 14 days), and the missed ones",
            "responses": {"200": {"description": "Sends", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ReportSends"}}}},
                "401": _ERRORS["401"]}}},
        "/api/v1/health": {"get": {
            "summary": "Up, and how many reports missed their deadline", "security": [],
            "responses": {"200": {"description": "Health", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}}},
        "/api/v1/openapi.json": {"get": {
            "summary": "This document", "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    },
}


def _with_tracing(spec: dict) -> dict:
    """The tracing routes (central/trace.py: the kiosk's trace, plus site and tz; who is inside)
    belong to this document too; /api/v1/trace/openapi.json serves them alone."""
    from .trace import spec as tracing

    extra = tracing()
    spec["paths"].update(extra["paths"])
    spec["components"]["schemas"].update(extra["components"]["schemas"])
    return spec


SPEC = _with_tracing(SPEC)
