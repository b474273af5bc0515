"""`make run`'s HTTP protocol: uvicorn's h11 one with a bound on how long a request head may
take to arrive. uvicorn bounds the idle time between requests (--timeout-keep-alive) but not
a head sent one byte a second, which would hold its connection forever. The body has its
own bound in the app (EMOTION_BODY_TIMEOUT), so it holds on Lambda too.

    uvicorn ... --http emotion.serve:TimedH11Protocol
"""

from __future__ import annotations

import asyncio
import json
import logging
import os

from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_S = float(os.environ.get("EMOTION_HEAD_TIMEOUT", 10))
_log = logging.getLogger("uvicorn.error")


class TimedH11Protocol(H11Protocol):
    """The clock starts when the connection opens, and with the first byte of each later
    request (between requests, uvicorn's keep-alive timeout applies); it stops when the whole
    head has arrived. When it runs out: 408 and the connection closed."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_clock()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._start_clock()  # the first bytes of the next request
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a new request's head arrived
            self._stop_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def _start_clock(self) -> None:
        self._stop_clock()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)

    def _stop_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        _log.info("request head not received within %g s: 408, connection closed", HEAD_TIMEOUT_S)
        self.transport.write(_timeout_response(HEAD_TIMEOUT_S))
        self.transport.close()


def _timeout_response(seconds: float) -> bytes:
    # Written raw: h11 cannot answer a request whose head it has not seen.
    detail = f"The request head did not arrive within {seconds:g} s."
    body = json.dumps({"error": "head_timeout", "detail": detail}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
