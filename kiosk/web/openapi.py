"""The operator API's OpenAPI 3.1 document (served at /api/v1/openapi.json).

Kept by hand beside the code; tests check that every route is in it and that real
responses validate against its schemas.
"""
from typing import Any

from ..health import CAUSES, PARTS, State
from ..model import DIRECTIONS, OUTCOMES, OVERRIDE_ACTIONS, PRESENCE_OUTCOMES, STATUSES

_TEXT_OR_NULL = {"type": ["string", "null"]}
_FILTERS = [
    {"name": "from", "in": "query", "schema": {"type": "string"},
     "description": "YYYY-MM-DD (local midnight) or an ISO-8601 time (local when it names no zone); inclusive."},
    {"name": "to", "in": "query", "schema": {"type": "string"},
     "description": "YYYY-MM-DD (that whole local day included) or an ISO-8601 time; exclusive."},
    {"name": "decision", "in": "query", "schema": {"enum": list(OUTCOMES)},
     "description": "The final decision: a guard's allow or deny override replaces the kiosk's."},
    {"name": "app", "in": "query", "schema": {"enum": list(PRESENCE_OUTCOMES)}},
    {"name": "status", "in": "query", "schema": {"enum": list(STATUSES)}},
    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 100},
     "description": "Text in the holder's name; case and Vietnamese diacritics ignored (binh finds Bình)."},
    {"name": "site", "in": "query", "schema": {"type": "string", "maxLength": 100}},
    {"name": "kiosk", "in": "query", "schema": {"type": "string", "maxLength": 100}},
]
_PAGING = [
    {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page."},
]
_ERRORS = {code: {"description": text,
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
           for code, text in (("400", "Bad parameters"), ("401", "No valid operator token"),
                              ("429", "Too many requests from this address"))}
_COUNT = {"type": "integer", "minimum": 0}
_SHARE = {"type": "number", "minimum": 0, "maximum": 1}
_SUMMARY = {"entries": _COUNT,
            "admitted": {**_COUNT, "description": "Final decision allow, coming in "
                                                  "(an exit override counts: it is taken for someone let in)"},
            "allow": {**_COUNT, "description": "Final decision allow"},
            "deny": {**_COUNT, "description": "Final decision deny"},
            "review": {**_COUNT, "description": "Left for review, never decided"},
            "sent_to_review": {**_COUNT, "description": "The kiosk's own decision was review"},
            "overrides": {"type": "object", "required": ["allow", "deny", "exit"], "properties": {
                "allow": _COUNT, "deny": _COUNT, "exit": _COUNT}},
            "exits": {**_COUNT, "description": "Entries going out, and exit overrides"},
            "unique_visitors": {**_COUNT, "description": "Distinct payload fingerprints per kiosk"},
            "app_share": {"type": "object", "required": ["confirmed", "likely", "not_detected"], "properties": {
                "confirmed": _SHARE, "likely": _SHARE, "not_detected": _SHARE}},
            "app_confirmed_share": _SHARE, "valid_declaration_share": _SHARE,
            "with_symptoms": {**_COUNT, "description": "Entries whose declaration has a symptom or contact flag"},
            "symptoms": {"type": "object", "additionalProperties": _COUNT, "description": "Entries by declared flag"}}
_REPORT_PARAMS = [{"name": "format", "in": "query", "schema": {"enum": ["json", "csv", "html"]},
                   "description": "csv: for Excel; html: a printable page."},
                  {"name": "language", "in": "query", "schema": {"enum": ["vi", "en"]},
                   "description": "Labels of the CSV and HTML forms; default report.language."}]
_REPORT_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/DailyReport"}},
                   "text/csv": {"schema": {"type": "string"}}, "text/html": {"schema": {"type": "string"}}}

# Contact tracing (GET /api/v1/trace): shared with the central's document (kiosk/central/trace.py).
_STAY = {"type": "object", "required": ["entry", "exit", "from", "to", "gates", "assumed", "app"], "properties": {
    "entry": {"type": "string"}, "exit": _TEXT_OR_NULL, "from": {"type": "string", "format": "date-time"},
    "to": {"type": "string", "format": "date-time", "description": "The exit, or the assumed end when assumed"},
    "gates": {"type": "array", "items": {"type": "string"}}, "assumed": {"type": "boolean"},
    "app": {"enum": ["confirmed", "likely", "not_detected"]}, "clock_unsynced": {"const": True}},
    "additionalProperties": False}
TRACE_SCHEMAS = {
    "Stay": _STAY,
    "Contact": {"type": "object",
                "required": ["holder", "overlap_minutes", "stays", "app", "assumed", "gates", "phone"],
                "properties": {
                    "holder": _TEXT_OR_NULL, "overlap_minutes": {"type": "number"},
                    "stays": {"type": "array", "items": {"$ref": "#/components/schemas/Stay"}},
                    "app": {"enum": ["confirmed", "likely", "not_detected"],
                            "description": "confirmed: the app (Bluezone) will warn them too; otherwise call"},
                    "assumed": {"type": "boolean", "description": "Some overlap rests on an assumed stay"},
                    "gates": {"type": "array", "items": {"type": "string"}},
                    "phone": {**_TEXT_OR_NULL, "description": "From their declaration on the kiosk's form; "
                              "always null on the central (declarations stay on the kiosk)"},
                    "clock_unsynced": {"const": True}}, "additionalProperties": False},
    "Trace": {"type": "object", "required": ["site", "entry", "holder", "window", "min_overlap_minutes", "stays",
                                             "total", "contacts"], "properties": {
        "site": {"type": "string"}, "entry": {"type": "string"}, "holder": _TEXT_OR_NULL,
        "window": {"type": "object", "properties": {"from": {"type": "string"}, "to": {"type": "string"}}},
        "min_overlap_minutes": {"type": "number"},
        "stays": {"type": "array", "items": {"$ref": "#/components/schemas/Stay"}},
        "total": {"type": "integer", "minimum": 0, "description": "Contacts in all (the page holds at most limit)"},
        "contacts": {"type": "array", "items": {"$ref": "#/components/schemas/Contact"},
                     "description": "The page: from offset, at most limit, longest together first"}}},
    "People": {"type": "object", "required": ["people"], "properties": {"people": {"type": "array", "items": {
        "type": "object", "required": ["holder", "last_seen", "last_entry"], "properties": {
            "holder": {"type": "string"}, "last_seen": {"type": "string"},
            "last_entry": {"type": "string", "description": "Pass as entry to trace this person"}}}}}},
    "TraceAudit": {"type": "object", "required": ["queries"], "properties": {"queries": {"type": "array", "items": {
        "type": "object", "required": ["who", "at", "kind", "for", "reason", "listed"], "properties": {
            "who": {"type": "string"}, "at": {"type": "string"}, "kind": {"enum": ["search", "trace"]},
            "for": {"type": "string"}, "reason": {"type": "string"}, "listed": {"type": "integer"},
            "from": {"type": "string"}, "to": {"type": "string"}}}}}},
}
TRACE_PARAMETERS = [
    {"name": "reason", "in": "query", "required": True, "schema": {"type": "string", "maxLength": 200},
     "description": "Why this query is run (kept in the audit log)."},
    {"name": "entry", "in": "query", "schema": {"type": "string"},
     "description": "An entry of the traced person (or a last_entry from a name search)."},
    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 100},
     "description": "Instead of entry: find people by name (no tracing); compared with case, spacing and "
                    "Vietnamese diacritics folded (nguyen van finds Nguyễn Văn)."},
    {"name": "id_number", "in": "query", "schema": {"type": "string", "maxLength": 20},
     "description": "Kiosk only, instead of entry: people whose declaration on the form gave this ID number "
                    "(matched by its keyed hash, then by name); the number is not kept."},
    {"name": "days", "in": "query", "schema": {"type": "number", "minimum": 1, "maximum": 28},
     "description": "Days back from until; default trace.window_days (14)."},
    {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"},
     "description": "End of the window; default now."},
    {"name": "min_overlap", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 1440},
     "description": "Minutes together to count; default trace.min_overlap (15)."},
    {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]},
     "description": "csv: one row per contact, every contact (limit and offset do not apply), for the "
                    "health authority."},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200},
     "description": "Contacts in the page (JSON); more than 1000 is a 400."},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0},
     "description": "Contacts skipped before the page, in the answer's order (longest together first)."},
]
_ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
TRACE_ERRORS = {code: {"description": text, "content": _ERROR_JSON}
                for code, text in (("400", "Bad parameters"), ("401", "No valid tracer token"),
                                   ("403", "An operator token: tracing needs the tracer role"),
                                   ("404", "No such entry"), ("429", "Too many requests from this address"))}
TRACE_PATHS: dict[str, Any] = {
    "/api/v1/trace": {"get": {
        "summary": "Contact tracing: who overlapped the traced person's stays (tracer token only; logged)",
        "parameters": TRACE_PARAMETERS,
        "responses": {"200": {"description": "The contacts, or the people found by name", "content": {
            "application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Trace"},
                                                      {"$ref": "#/components/schemas/People"}]}},
            "text/csv": {"schema": {"type": "string"}}}}, **TRACE_ERRORS}}},
    "/api/v1/trace/audit": {"get": {
        "summary": "The tracing queries run (who, when, for whom, why), newest first (tracer token only)",
        "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                                     "default": 100}}],
        "responses": {"200": {"description": "The audit log", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/TraceAudit"}}}}, **TRACE_ERRORS}}},
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Checkpoint kiosk operator API", "version": "1"},
    "components": {
        "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Entry": {
                "type": "object",
                "required": ["id", "site", "kiosk", "time", "direction", "declaration", "ble", "decision", "reasons"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[0-9A-HJKMNP-TV-Z]{26}$"},
                    "site": {"type": "string"}, "kiosk": {"type": "string"},
                    "time": {"type": "string", "format": "date-time"},
                    "direction": {"enum": list(DIRECTIONS)},
                    "declaration": {"type": "object", "required": ["format", "status"], "properties": {
                        "format": {"type": "string"}, "status": {"type": "string"}, "holder": _TEXT_OR_NULL,
                        "kind": _TEXT_OR_NULL, "expires": _TEXT_OR_NULL,
                        "flags": {"type": "array", "items": {"type": "string"}}}},
                    "ble": {"type": "object", "required": ["outcome"], "properties": {
                        "outcome": {"enum": list(PRESENCE_OUTCOMES)}, "family": _TEXT_OR_NULL,
                        "rssi": {"type": ["integer", "null"]}, "count_near": {"type": "integer"}}},
                    "decision": {"enum": list(OUTCOMES)},
                    "reasons": {"type": "array", "items": {"type": "string"}},
                    "override": {"type": ["object", "null"], "properties": {
                        "action": {"enum": list(OVERRIDE_ACTIONS)}, "reason": {"type": "string"},
                        "by": {"type": "string"}, "at": {"type": "string"}}},
                    "synced_at": _TEXT_OR_NULL,
                },
                "additionalProperties": False,
            },
            "EntryPage": {"type": "object", "required": ["entries", "next_cursor"], "properties": {
                "entries": {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}},
                "next_cursor": {"type": ["string", "null"],
                                "description": "Pass as cursor for the next page; null on the last page."}}},
            "DailyReport": {"type": "object", "required": ["date", "site", "kiosks", "by_hour", *_SUMMARY],
                            "properties": {
                "date": {"type": "string", "format": "date"}, "site": {"type": "string"},
                "kiosks": {"type": "array", "items": {"type": "string"}},
                **_SUMMARY,
                "by_hour": {"type": "array", "items": {"type": "object", "required": ["hour", *_SUMMARY],
                                                        "properties": {"hour": {"type": "integer"}, **_SUMMARY}}}}},
            "Health": {"type": "object", "required": ["camera", "ble", "log", "sync", "disk_free_mb"], "properties": {
                "camera": {"type": "string"}, "camera_fps": {"type": "number"}, "ble": {"type": "string"},
                "log": {"type": "string"},
                "log_damage": {"type": "array", "description": "Damage recovered when the log was opened",
                               "items": {"type": "object", "properties": {
                                   "file": {"type": "string"}, "offset": {"type": ["integer", "null"]},
                                   "length": {"type": "integer"}, "records_lost": {"type": "integer"},
                                   "copy": {"type": ["string", "null"]}}}},
                "sync": {"type": "object"}, "disk_free_mb": {"type": "integer"}, "trust_list": {"type": "string"},
                "door": {"type": "string"}, "scans": {"type": "integer"}, "ble_heard": {"type": "integer"},
                "log_held": {"type": "integer"}, "not_logged": {"type": "integer"},
                "inside_now": {"type": ["integer", "null"], "description":
                               "People inside by this kiosk's log: stays going on now (an entry without "
                               "an exit counts for trace.default_stay)"},
                "report": {"type": "object", "required": ["by", "ok"], "description":
                           "The daily report by email: by (kiosk, central, off); for kiosk: day, state "
                           "(due, sending, failed, sent, missed), sent_at, attempts, error; ok is false when missed"},
                "clock": {"type": "object", "required": ["status", "trusted"], "description":
                          "The clock: status (synced, unsynced, unknown, behind), trusted, detail, now, floor"},
                "parts": {"type": "object", "description": "Each part's typed state (kiosk/health.py)",
                          "propertyNames": {"enum": list(PARTS)},
                          "additionalProperties": {"$ref": "#/components/schemas/PartHealth"}},
                "frames_decoded": {"type": "integer", "description": "Frames decoded since start."},
                "cpu_seconds": {"type": "object", "additionalProperties": {"type": "number"},
                                "description": "CPU seconds since start by stage of the camera thread (grab, gray, "
                                               "zxing, finder, zbar, straighten, scan), by thread of the other "
                                               "stages ('ble thread', 'store thread', 'web thread', ...) and "
                                               "for the whole process."}}},
            "PartHealth": {"type": "object", "required": ["state", "cause", "detail"], "properties": {
                "state": {"enum": [s.value for s in State]},
                "cause": {"oneOf": [{"type": "null"}, {"enum": list(CAUSES)}]},
                "detail": {"type": "string", "description": "Technical detail (English), for the operator"},
                "figures": {"type": "object"}}},
            **TRACE_SCHEMAS,
        },
    },
    "security": [{"token": []}],
    "paths": {
        "/api/v1/entries": {"get": {
            "summary": "Entries, oldest first, a page at a time",
            "parameters": _FILTERS + _PAGING + [
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}],
            "responses": {"200": {"description": "A page of entries", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/EntryPage"}}}}, **_ERRORS}}},
        "/api/v1/entries.csv": {"get": {
            "summary": "The same entries as CSV for Excel (UTF-8 with BOM, CRLF)",
            "parameters": _FILTERS,
            "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
                          **_ERRORS}}},
        "/api/v1/reports/daily": {"get": {
            "summary": "The daily compliance report",
            "parameters": [{"name": "date", "in": "query", "schema": {"type": "string", "format": "date"},
                            "description": "Local date; default today."}, *_REPORT_PARAMS],
            "responses": {"200": {"description": "The report", "content": _REPORT_CONTENT}, **_ERRORS}}},
        "/api/v1/health": {"get": {
            "summary": "The kiosk's parts",
            "responses": {"200": {"description": "Health", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}, **_ERRORS}}},
        **TRACE_PATHS,
        "/api/v1/openapi.json": {"get": {
            "summary": "This document", "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    },
}
