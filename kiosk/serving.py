"""Serve a WSGI app with waitress on a background thread, and stop it completely.

waitress's `server.close()` closes only the listening socket: its loop keeps running while
any connection is open (an SSE screen, a keep-alive client), so a plain join would hang.
`stop()` closes every connection from inside waitress's own loop thread (through its
trigger, the one safe way in), then waits for the loop and the worker threads.
"""
from __future__ import annotations

import threading


class BackgroundServer:
    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 8, name: str = "web"):
        import waitress

        # waitress 3 flushes each write at once (its send_bytes default is 1; older releases
        # buffered 18 kB), so server-sent events reach the screen without delay.
        self._server = waitress.create_server(app, host=host, port=port, threads=threads,
                                              clear_untrusted_proxy_headers=True)
        self.host = host
        self.port = self._server.effective_port
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "BackgroundServer":
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
