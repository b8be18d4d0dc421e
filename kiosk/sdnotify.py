"""systemd's notify protocol (sd_notify(3)), in the stdlib: READY, WATCHDOG, STOPPING.

Outside systemd (no NOTIFY_SOCKET) every call does nothing.
"""
from __future__ import annotations

import os
import socket


def notify(message: str, environ=os.environ) -> bool:
    """Send one state line; True when a notify socket took it."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):               # Linux abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError:
        return False


def watchdog_interval(environ=os.environ) -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec), or None when there is no watchdog."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6
