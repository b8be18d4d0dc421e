"""Serve a WSGI app with waitress on a background thread, and stop it completely.

waitress's `server.close()` closes only the listening socket: its loop keeps running while
any connection is open (an SSE screen, a keep-alive client), so a plain join would hang.
`stop()` closes every connection from inside waitress's own loop thread (through its
trigger, the one safe way in), then waits for the loop and the worker threads.

Limits (waitress 3.0): a request whose Content-Length is over `max_body` gets 413 and the
connection is closed as soon as its headers are parsed, before the body is read; a chunked
body is read only up to `max_body`, then the same. waitress keeps a body in memory up to
512 kB (`inbuf_overflow`) and spools a larger one to TMPDIR, so a `max_body` below that never
touches the disk.
"""
from __future__ import annotations

import threading

MAX_BODY = 1 << 20            # bytes: waitress's own default is 1 GiB
MAX_HEADER = 32 * 1024        # bytes of request line and headers (waitress's default is 256 kB)
CONNECTION_LIMIT = 100        # open connections (waitress's default); beyond it, new ones wait
CHANNEL_TIMEOUT = 30          # seconds an idle connection stays open (waitress's default is 120)


class BackgroundServer:
    """A waitress server on its own thread.

    :param app: the WSGI application.
    :param host: address to listen on.
    :param port: TCP port; 0 = any free port (see `.port`).
    :param threads: worker threads (one request, or one server-sent event stream, each).
    :param name: name of the loop thread.
    :param max_body: largest request body accepted, in bytes; larger gets 413 unread.
    :param max_header: largest request line and headers, in bytes; larger gets 431.
    :param connection_limit: open connections at most; beyond it waitress stops accepting.
    :param channel_timeout: whole seconds after which a connection with no request is closed.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 8, name: str = "web",
                 max_body: int = MAX_BODY, max_header: int = MAX_HEADER,
                 connection_limit: int = CONNECTION_LIMIT, channel_timeout: int = CHANNEL_TIMEOUT):
        import waitress

        # waitress 3 flushes each write at once (its send_bytes default is 1; older releases
        # buffered 18 kB), so server-sent events reach the screen without delay.
        # waitress refuses a Content-Length equal to its max_request_body_size (parser.py:
        # `content_length >= max_body`), hence the + 1 to accept exactly `max_body` bytes.
        # Idle connections are swept every cleanup_interval (whole seconds), kept below the timeout.
        self._server = waitress.create_server(
            app, host=host, port=port, threads=threads, clear_untrusted_proxy_headers=True,
            max_request_body_size=max_body + 1, max_request_header_size=max_header,
            connection_limit=connection_limit, channel_timeout=int(channel_timeout),
            cleanup_interval=max(1, min(30, int(channel_timeout) // 2)))
        self.host = host
        self.port = self._server.effective_port
        self.max_body = max_body
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server = self._server

        def close_everything():
            for dispatcher in list(server._map.values()):
                dispatcher.close()

        if self._thread.is_alive():
            try:
                server.trigger.pull_trigger(close_everything)
            except OSError:          # the loop is already closing its trigger: it is on its way out
                pass
            self._thread.join(timeout)
        if self._thread.is_alive() or not self._thread.ident:
            server.close()
        server.task_dispatcher.shutdown(timeout=timeout)
