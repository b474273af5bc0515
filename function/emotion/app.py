"""The ASGI app: POST /face, GET /health, and (locally) the page. Lambda and uvicorn run
the same object; see emotion.handler and `make run`."""

from __future__ import annotations

import json
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from emotion import logs
from emotion.decode import decode_image
from emotion.errors import ClientError
from emotion.model import EmotionModel, ranked
from emotion.payload import image_bytes
from emotion.settings import Settings


def create_app(settings: Settings | None = None, model: EmotionModel | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    model = model or EmotionModel(settings.model_path, settings.threads)
    logs.configure()

    async def face(request: Request) -> JSONResponse:
        started = time.perf_counter()
        data = await image_bytes(request, settings.max_body_bytes)
        image = decode_image(data, settings.max_pixels, settings.min_side)
        decoded = time.perf_counter()
        probabilities = model.predict([image])[0]
        inferred = time.perf_counter()

        predictions = ranked(probabilities, model.card.classes)
        top = next(iter(predictions))
        timings = {"decode": (decoded - started) * 1000, "infer": (inferred - decoded) * 1000}
        request.scope["state"]["log_fields"] = {"top": top}
        body = {
            "predictions": predictions,
            "top": top,
            "model": model.card.label,
            "timings_ms": {k: round(v, 2) for k, v in timings.items()},
        }
        server_timing = ", ".join(f"{k};dur={v:.2f}" for k, v in timings.items())
        return JSONResponse(body, headers={"Server-Timing": server_timing})

    async def health(request: Request) -> JSONResponse:
        card = model.card
        return JSONResponse(
            {
                "status": "ok",
                "model": card.label,
                "classes": list(card.classes),
                "input_size": card.input_size,
            }
        )

    routes = [
        Route("/face", face, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ]
    if settings.static_dir:
        allowed = {route.path: ", ".join(sorted(route.methods or ())) for route in routes}
        routes.append(Mount("/", app=_static_site(settings.static_dir, allowed)))
    return Starlette(
        routes=routes,
        middleware=[Middleware(logs.AccessLog)],
        exception_handlers={ClientError: _client_error, HTTPException: _http_error},
    )


async def _client_error(request: Request, exc: ClientError) -> JSONResponse:
    return JSONResponse(exc.as_json(), status_code=exc.status)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
    return JSONResponse(
        {"error": code, "detail": detail}, status_code=exc.status_code, headers=exc.headers
    )


def _static_site(directory: Path, api_methods: dict[str, str]):
    """The page, with the same security headers CloudFront adds (site/headers.json)."""
    files = StaticFiles(directory=directory, html=True)
    headers_file = Path(directory) / "headers.json"
    extra = json.loads(headers_file.read_text()) if headers_file.is_file() else {}
    extra.pop("Strict-Transport-Security", None)  # meaningless (and sticky) on plain http
    encoded = [(k.lower().encode(), v.encode()) for k, v in extra.items()]

    async def with_headers(scope, receive, send):
        if scope["path"] in api_methods:  # e.g. GET /face: an API path, the wrong method
            raise HTTPException(405, headers={"Allow": api_methods[scope["path"]]})

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *encoded]
            await send(message)

        await files(scope, receive, send_with_headers)

    return with_headers
