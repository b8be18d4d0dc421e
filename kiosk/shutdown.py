"""A clean stop on SIGTERM (systemd's stop) and SIGINT (Ctrl-C) for the kiosk's commands."""
from __future__ import annotations

import signal
import threading

__all__ = ["stop_on_signals"]


def stop_on_signals(signals=(signal.SIGINT, signal.SIGTERM)) -> threading.Event:
    """An event that is set when the process gets one of `signals`.

    The command's loop waits on the event and then stops its threads in order; a signal
    only sets the flag, because a handler runs between two bytecodes of the main thread
    and must not stop anything itself. Call from the main thread (Python's rule).

    :param signals: The signal numbers to handle; SIGINT and SIGTERM by default.
    :returns: The event; set once, never cleared.
    """
    stop = threading.Event()
    for sig in signals:
        signal.signal(sig, lambda *_: stop.set())
    return stop
