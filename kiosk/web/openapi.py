"""The operator API's OpenAPI 3.1 document (served at /api/v1/openapi.json).

Kept by hand beside the code; tests check that every route is in it and that real
responses validate against its schemas.
"""

_TEXT_OR_NULL = {"type": ["string", "null"]}
_FILTERS = [
    {"name": "from", "in": "query", "schema": {"type": "string"},
     "description": "YYYY-MM-DD (local midnight) or an ISO-8601 time; inclusive."},
    {"name": "to", "in": "query", "schema": {"type": "string"},
     "description": "YYYY-MM-DD (that whole local day included) or an ISO-8601 time; exclusive."},
    {"name": "decision", "in": "query", "schema": {"enum": ["allow", "deny", "review"]}},
    {"name": "app", "in": "query", "schema": {"enum": ["confirmed", "likely", "not_detected"]}},
    {"name": "status", "in": "query", "schema": {"enum": ["valid", "invalid", "expired", "unknown", "review"]}},
    {"name": "q", "in": "query", "schema": {"type": "string"}, "description": "Text in the holder's name."},
]
_ERRORS = {code: {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
           for code, text in (("400", "Bad parameters"), ("401", "No valid operator token"),
                              ("429", "Too many requests from this address"))}
_SUMMARY = {"entries": {"type": "integer"}, "allow": {"type": "integer"}, "deny": {"type": "integer"},
            "review": {"type": "integer"}, "app_confirmed_share": {"type": "number"},
            "valid_declaration_share": {"type": "number"}}

SPEC = {
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
                    "direction": {"enum": ["in", "out"]},
                    "declaration": {"type": "object", "required": ["format", "status"], "properties": {
                        "format": {"type": "string"}, "status": {"type": "string"}, "holder": _TEXT_OR_NULL,
                        "kind": _TEXT_OR_NULL, "expires": _TEXT_OR_NULL,
                        "flags": {"type": "array", "items": {"type": "string"}}}},
                    "ble": {"type": "object", "required": ["outcome"], "properties": {
                        "outcome": {"enum": ["confirmed", "likely", "not_detected"]}, "family": _TEXT_OR_NULL,
                        "rssi": {"type": ["integer", "null"]}, "count_near": {"type": "integer"}}},
                    "decision": {"enum": ["allow", "deny", "review"]},
                    "reasons": {"type": "array", "items": {"type": "string"}},
                    "override": {"type": ["object", "null"], "properties": {
                        "action": {"enum": ["allow", "deny", "exit"]}, "reason": {"type": "string"},
                        "by": {"type": "string"}, "at": {"type": "string"}}},
                    "synced_at": _TEXT_OR_NULL,
                },
                "additionalProperties": False,
            },
            "EntryPage": {"type": "object", "required": ["entries", "next_cursor"], "properties": {
                "entries": {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}},
                "next_cursor": {"type": ["string", "null"],
                                "description": "Pass as cursor for the next page; null on the last page."}}},
            "DailyReport": {"type": "object", "required": ["date", "site", "kiosk", "by_hour", *_SUMMARY], "properties": {
                "date": {"type": "string", "format": "date"}, "site": {"type": "string"}, "kiosk": {"type": "string"},
                **_SUMMARY,
                "by_hour": {"type": "array", "items": {"type": "object", "required": ["hour", *_SUMMARY],
                                                        "properties": {"hour": {"type": "integer"}, **_SUMMARY}}}}},
            "Health": {"type": "object", "required": ["camera", "ble", "log", "sync", "disk_free_mb"], "properties": {
                "camera": {"type": "string"}, "camera_fps": {"type": "number"}, "ble": {"type": "string"},
                "log": {"type": "string"},
                "sync": {"type": "object"}, "disk_free_mb": {"type": "integer"}, "trust_list": {"type": "string"},
                "door": {"type": "string"}, "scans": {"type": "integer"}, "ble_heard": {"type": "integer"},
                "frames_decoded": {"type": "integer", "description": "Frames decoded since start."},
                "cpu_seconds": {"type": "object", "additionalProperties": {"type": "number"},
                                "description": "CPU seconds since start by stage of the camera thread (grab, gray, "
                                               "zxing, finder, zbar, straighten, scan), by thread of the other "
                                               "stages ('ble thread', 'store thread', 'web thread', ...) and "
                                               "for the whole process."}}},
        },
    },
    "security": [{"token": []}],
    "paths": {
        "/api/v1/entries": {"get": {
            "summary": "Entries, oldest first, a page at a time",
            "parameters": _FILTERS + [
                {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page."},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}],
            "responses": {"200": {"description": "A page of entries", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/EntryPage"}}}}, **_ERRORS}}},
        "/api/v1/entries.csv": {"get": {
            "summary": "The same entries as CSV for Excel (UTF-8 with BOM, CRLF)",
            "parameters": _FILTERS,
            "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}, **_ERRORS}}},
        "/api/v1/reports/daily": {"get": {
            "summary": "The daily compliance report",
            "parameters": [{"name": "date", "in": "query", "schema": {"type": "string", "format": "date"},
                            "description": "Local date; default today."},
                           {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}}],
            "responses": {"200": {"description": "The report", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/DailyReport"}},
                "text/csv": {"schema": {"type": "string"}}}}, **_ERRORS}}},
        "/api/v1/health": {"get": {
            "summary": "The kiosk's parts",
            "responses": {"200": {"description": "Health", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}, **_ERRORS}}},
        "/api/v1/openapi.json": {"get": {
            "summary": "This document", "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    },
}
