"""The kiosk's web side: guard touchscreen pages (with SSE) and the operator API.

`create_app(kiosk)` builds the Flask app; everything it shows comes through the Kiosk
object (its entry log, event bus and health), never from a module-level global.
"""
from __future__ import annotations

import threading

from flask import Flask

from . import api, guard


def create_app(kiosk, config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})
    app.extensions["kiosk"] = kiosk
    app.extensions["guard_streams"] = threading.BoundedSemaphore(guard.MAX_STREAMS)
    app.register_blueprint(guard.bp)
    app.register_blueprint(api.bp)
    api.init_app(app)
    return app
