"""What the tests and the benchmarks share, importable from any folder (as gpiozero ships
gpiozero/testing/): a private PostgreSQL (`pgcluster`), a test issuer of EU DCCs
(`dcc_issuer`), the QR image corpus (`qr_corpus`), `free_port` and `settings_toml`.

Never imported by `import kiosk` or by the kiosk's own code: the submodules pull in
cryptography, OpenCV, segno and SQLAlchemy when a test or benchmark asks for them.
"""
from __future__ import annotations

import socket

__all__ = ["free_port", "settings_toml"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS's choice for port 0).

    :returns: The port number. Another process may take it before the caller binds it; the
        servers under test that can bind port 0 themselves should do that instead.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def settings_toml(sections: dict[str, dict]) -> str:
    """A kiosk settings file's text: `sections[""]` at the top, then one table per other key.

    :param sections: {table name: {key: str, int, float, bool or a list of them}}.
    """
    top = sections.get("", {})
    lines = [f"{k} = {_toml(v)}" for k, v in top.items()]
    for name, values in sections.items():
        if name:
            lines.append(f"[{name}]")
            lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"
