"""The kiosk's web side: guard touchscreen pages (with SSE) and the operator API.

`create_app(kiosk)` builds the Flask app; everything it shows comes through the Kiosk
object (its entry log, event bus and health), never from a module-level global.
"""
from __future__ import annotations

from flask import Flask

from . import api, guard, trace

# bytes: the largest body this app takes is a guard override (entry id, action, reason, PIN:
# about 200 bytes); the operator API takes none.
MAX_BODY = 8 * 1024


def create_app(kiosk, config: dict | None = None) -> Flask:
    app = Flask(__name__)
    # Flask answers 413 for a longer body before reading it; the listener (serving.py) has
    # the same bound, so the body is never even received in full.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config.update(config or {})
    app.extensions["kiosk"] = kiosk
    app.register_blueprint(guard.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(trace.bp)
    guard.init_app(app)
    api.init_app(app)
    trace.init_app(app)
    return app
