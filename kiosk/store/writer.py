"""One thread that owns a store: other threads hand it functions and wait for the results."""
from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from ..exc import StoreUnavailable

_STOP = object()


class Writer:
    """The single thread that may touch a store's files and state (as Datasette's
    `_execute_writes`): requests come through a queue, one at a time, in order.

    :param str name: the thread's name.
    :param after_each: called on the thread after every request (housekeeping that must
        not wait for a quiet moment).
    :param when_idle: called on the thread after a request when no other is waiting.
    """

    def __init__(self, name: str, after_each: Callable[[], None] = lambda: None,
                 when_idle: Callable[[], None] = lambda: None):
        self.name = name
        self.after_each = after_each
        self.when_idle = when_idle
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self, setup: Callable[[], None], teardown: Callable[[], None]) -> None:
        """Start the thread; return once `setup` has run on it (raising what it raised).

        :param setup: run first, on the thread (opening the store).
        :param teardown: run last, on the thread, after `stop` (closing it).
        """
        ready: Future = Future()
        self._thread = threading.Thread(target=self._run, args=(ready, setup, teardown),
                                        name=self.name, daemon=True)
        self._thread.start()
        ready.result()

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def busy(self) -> bool:
        """True when a request is waiting."""
        return not self._queue.empty()

    def stop(self, timeout: float = 5.0) -> None:
        """Let the requests already queued run, then stop the thread.

        :param float timeout: seconds to wait for the thread to end.
        """
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, fn: Callable) -> Future:
        """Queue `fn` for the thread; its Future holds the result or the exception."""
        if self._thread is None:
            raise StoreUnavailable(f"{self.name} not started")
        future: Future = Future()
        self._queue.put((fn, future))
        return future

    def call(self, fn: Callable, timeout: float = 30.0):
        """Run `fn` on the thread and return its result.

        :param float timeout: seconds to wait for the result; past them the request is
            called off if it has not begun, else awaited as long again.
        :raises StoreUnavailable: no result in time (the thread is stuck: a card that
            stops answering); the request did not run, or may still end.
        """
        future = self.submit(fn)
        try:
            return future.result(timeout)
        except FutureTimeout:
            if not future.cancel():
                try:
                    return future.result(timeout)
                except FutureTimeout:
                    pass
        raise StoreUnavailable(f"{self.name} did not answer within {timeout:g} s")

    def _run(self, ready: Future, setup, teardown) -> None:
        try:
            setup()
        except Exception as e:
            ready.set_exception(e)
            return
        ready.set_result(None)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                fn, future = item
                if not future.set_running_or_notify_cancel():
                    continue                       # the caller gave up before it ran
                try:
                    future.set_result(fn())
                except BaseException as e:
                    future.set_exception(e)
                self.after_each()
                if self._queue.empty():
                    self.when_idle()
        finally:
            teardown()


def on_writer(method=None, *, timeout: float = 30.0):
    """Make a method of an object with a `_writer` (a Writer) run on that writer's thread:
    the caller waits for the result (Writer.call). `@on_writer` or `@on_writer(timeout=600)`;
    a caller may pass `writer_timeout=` (seconds) to wait less."""
    def decorate(fn):
        @functools.wraps(fn)
        def call(self, *args, writer_timeout: float = timeout, **kwargs):
            return self._writer.call(lambda: fn(self, *args, **kwargs), writer_timeout)
        call.runs_on_writer = True
        return call
    return decorate(method) if method is not None else decorate
