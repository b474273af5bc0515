"""One JSON line per request, through the standard logging module (CloudWatch-friendly).

Only what describes the request is logged: never image bytes, base64 or form contents.
"""

from __future__ import annotations

import json
import logging
import sys
import time

log = logging.getLogger("emotion.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        return json.dumps({"time": round(record.created, 3), "msg": record.getMessage(), **fields})


def configure() -> None:
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # Lambda's root handler would print it a second time


class AccessLog:
    """ASGI middleware: route, status, duration, request/response bytes, top class."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        received = sent = 0
        status = 500
        scope.setdefault("state", {})

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def counting_send(message):
            nonlocal sent, status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            fields = {
                "method": scope["method"],
                "route": scope["path"],
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "bytes_in": received,
                "bytes_out": sent,
            }
            fields.update(scope["state"].get("log_fields", {}))
            log.info("request", extra={"fields": fields})
