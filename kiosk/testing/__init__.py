"""What the tests and the benchmarks share, importable from any folder (as gpiozero ships
gpiozero/testing/): a private PostgreSQL (`pgcluster`), a test issuer of EU DCCs
(`dcc_issuer`), the QR image corpus (`qr_corpus`) and `free_port`.

Never imported by `import kiosk` or by the kiosk's own code: the submodules pull in
cryptography, OpenCV, segno and SQLAlchemy when a test or benchmark asks for them.
"""
from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS's choice for port 0).

    :returns: The port number. Another process may take it before the caller binds it; the
        servers under test that can bind port 0 themselves should do that instead.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
