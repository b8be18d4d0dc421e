"""The event bus: the checkpoint publishes, each guard screen (SSE stream) subscribes."""
from __future__ import annotations

import queue
import threading

CLOSED = None


class EventBus:
    def __init__(self, backlog: int = 100):
        self._subscribers: set[queue.Queue] = set()
        self._lock = threading.Lock()
        self._backlog = backlog
        self.closed = False

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue(self._backlog)
        with self._lock:
            self._subscribers.add(q)
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            self._subscribers.discard(q)

    def publish(self, kind: str, data: dict) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for q in subscribers:
            try:
                q.put_nowait((kind, data))
            except queue.Full:       # a stalled screen must not hold up the door
                pass

    def close(self) -> None:
        """Tell every subscriber to finish (on shutdown)."""
        self.closed = True
        with self._lock:
            subscribers = list(self._subscribers)
        for q in subscribers:
            try:
                q.put_nowait(CLOSED)
            except queue.Full:
                pass
