"""One structured JSON log line and one set of CloudWatch metrics per request (Powertools for
AWS Lambda). Locally (`make run`) the same lines print to stdout.

- Log line (Powertools Logger): level, message "request", service, request_id (the Lambda
  request id, or a fresh one locally), method, route, status, ms, bytes in/out, the `error`
  code of a 4xx/5xx, and what a route adds (top class, faces found).
- Metrics in CloudWatch's embedded metric format (Powertools EphemeralMetrics: one set per
  request, so concurrent requests never mix): Requests, Latency (ms) and, where it applies,
  Faces, by route; Errors by route and `error` code.

Only what describes the request is logged: never image bytes, base64 or form contents. Route
dimensions are a fixed set, so a scan of random paths cannot create metrics by the thousand.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

NAMESPACE = "EmotionEvaluator"  # infra/monitoring.py: METRICS_NAMESPACE
SERVICE = "emotion"  # infra/monitoring.py: SERVICE
ROUTES = ("/face", "/faces", "/health")  # other paths count as "other"
ERROR_BODY_LIMIT = 4096  # error answers are small JSON; read at most this much for the code

_logger: Logger | None = None


def configure() -> Logger:
    """The process's Powertools logger (stdout, JSON); idempotent."""
    global _logger
    if _logger is None:
        _logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))
        # Lambda's root handler would print every line a second time.
        logging.getLogger(_logger.service).propagate = False
    return _logger


def record_faces(scope_or_request: Any, count: int) -> None:
    """Report how many faces a photo held (POST /faces): logged, and the Faces metric."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    scope.setdefault("state", {}).setdefault("log_fields", {})["faces"] = int(count)


def _route(path: str) -> str:
    return path if path in ROUTES else "other"


def _request_id(scope: dict) -> str:
    context = scope.get("aws.context")  # set by Mangum on Lambda
    request_id = getattr(context, "aws_request_id", None)
    return request_id or uuid.uuid4().hex


def _error_code(status: int, body: bytes) -> str | None:
    if status < 400:
        return None
    try:
        code = json.loads(body).get("error")
    except (ValueError, AttributeError):
        code = None
    if isinstance(code, str) and code.isidentifier() and len(code) <= 40:
        return code
    return "internal_error" if status >= 500 else f"http_{status}"


def emit_metrics(route: str, ms: float, error: str | None, faces: int | None) -> None:
    """Print this request's metrics as EMF JSON lines (CloudWatch turns them into metrics)."""
    service = os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE)
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    metrics = EphemeralMetrics(namespace=namespace, service=service)
    metrics.add_dimension(name="route", value=route)
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=ms)
    if faces is not None:
        metrics.add_metric(name="Faces", unit=MetricUnit.Count, value=faces)
    metrics.flush_metrics()
    if error:
        errors = EphemeralMetrics(namespace=namespace, service=service)
        errors.add_dimension(name="route", value=route)
        errors.add_dimension(name="error", value=error)
        errors.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
        errors.flush_metrics()


class AccessLog:
    """ASGI middleware: the log line and the metrics of every HTTP request."""

    def __init__(self, app):
        self.app = app
        self.logger = configure()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        received = sent = 0
        status = 500
        error_body = b""
        scope.setdefault("state", {})

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def counting_send(message):
            nonlocal sent, status, error_body
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                sent += len(body)
                if status >= 400 and len(error_body) < ERROR_BODY_LIMIT:
                    error_body += body[: ERROR_BODY_LIMIT - len(error_body)]
            await send(message)

        raised = None
        try:
            await self.app(scope, counting_receive, counting_send)
        except Exception as exc:  # logged (type only) and re-raised: Starlette answers 500
            raised = type(exc).__name__
            raise
        finally:
            ms = round((time.perf_counter() - started) * 1000, 2)
            route = _route(scope["path"])
            error = "unhandled_exception" if raised else _error_code(status, error_body)
            added = scope["state"].get("log_fields", {})
            fields = {
                "request_id": _request_id(scope),
                "method": scope["method"],
                "route": route,
                "path": scope["path"],
                "status": status,
                "ms": ms,
                "bytes_in": received,
                "bytes_out": sent,
                **({"error": error} if error else {}),
                **({"exception": raised} if raised else {}),
                **added,
            }
            (self.logger.error if status >= 500 else self.logger.info)("request", extra=fields)
            faces = added.get("faces")
            counted = isinstance(faces, int) and not isinstance(faces, bool)
            emit_metrics(route, ms, error, faces if counted else None)
