"""CPU work (parsing, decoding, detection, inference) off the event loop: a fixed number of
worker threads and a bounded queue in front of them. The loop only moves bytes, so /health
and the page's files answer while every worker is busy; a full queue is a 503 at once, not a
request that waits without bound. ONNX Runtime and Pillow release the GIL while they work."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from emotion.errors import ClientError

T = TypeVar("T")
RETRY_AFTER_S = 1  # a /face call takes tens of ms: the queue drains within a second


class Pool:
    def __init__(self, workers: int, queue: int):
        self.capacity = workers + queue  # running + waiting
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="emotion")
        self._pending = 0
        self._lock = threading.Lock()  # the count drops in a worker thread

    async def run(self, fn: Callable[..., T], *args) -> T:
        with self._lock:
            if self._pending >= self.capacity:
                raise busy()
            self._pending += 1
        future = self.executor.submit(fn, *args)
        # Counted until the work itself ends, even if the request is abandoned first.
        future.add_done_callback(self._done)
        return await asyncio.wrap_future(future)

    def _done(self, _: Future) -> None:
        with self._lock:
            self._pending -= 1


def busy() -> ClientError:
    return ClientError(
        503,
        "busy",
        f"The server is busy; retry in {RETRY_AFTER_S} s.",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
