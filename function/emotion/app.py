"""The ASGI app: POST /face, POST /faces, GET /health, GET /openapi.json, and (locally) the
page. Lambda and uvicorn run
the same object; see emotion.handler and `make run`."""

from __future__ import annotations

import json
import time
from pathlib import Path

from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from emotion import logs
from emotion.decode import decode_image
from emotion.detect import Detection, FaceDetector
from emotion.errors import ClientError, ModelFileError, bad_request
from emotion.framing import Framing, pixel_box, refine_crop
from emotion.model import EmotionModel, ranked
from emotion.origin import OriginCheck
from emotion.payload import image_bytes, read_body
from emotion.pool import Pool
from emotion.settings import Settings

OPENAPI = Path(__file__).resolve().parent / "openapi.json"
# POST /faces without ?max_faces / ?min_size (the page's on-device mode copies these:
# site/js/retinaface.js's SERVICE).
MAX_FACES = 20
MIN_SIZE = 24


def create_app(
    settings: Settings | None = None,
    model: EmotionModel | None = None,
    detector: FaceDetector | None = None,
) -> Starlette:
    settings = settings or Settings.from_env()
    # A missing or corrupt file stops the process here, with one line naming it, rather than
    # failing the first request.
    try:
        model = model or _load_model(settings.model_path, settings.threads)
        detector = detector or FaceDetector(settings.detector_path, settings.threads)
        framing = Framing.from_card(model.card.details)
    except ModelFileError as e:
        raise SystemExit(f"emotion: {e}") from None
    except ValueError as e:
        raise SystemExit(f"emotion: cannot start: {settings.model_path}: {e}") from None
    openapi = OPENAPI.read_bytes()
    logs.configure()

    pool = Pool(settings.workers, settings.queue)

    async def body_of(request: Request) -> bytes:
        return await read_body(request, settings.max_body_bytes, settings.body_timeout)

    def classify_crop(headers: Headers, body: bytes) -> tuple[dict, dict[str, float]]:
        """/face's work, in a worker thread."""
        started = time.perf_counter()
        data = image_bytes(headers, body, settings.max_body_bytes)
        image = decode_image(data, settings.max_pixels, settings.min_side)
        decoded = time.perf_counter()
        # Is there a face in the crop, and where? Checked small: the crop is one face already.
        face_found = (
            detector.find_in_crop(image, settings.crop_detect_side)
            if settings.crop_detect_side  # 0: the check is off (make bench measures its cost)
            else None
        )
        detected = time.perf_counter()
        probabilities = model.predict([refine_crop(image, face_found, framing)])[0]
        inferred = time.perf_counter()

        predictions = ranked(probabilities, model.card.classes)
        timings = {
            "decode": (decoded - started) * 1000,
            "detect": (detected - decoded) * 1000,
            "infer": (inferred - detected) * 1000,
        }
        body = {
            "predictions": predictions,
            "top": next(iter(predictions)),
            "face": _face_block(face_found, image, framing),
            "model": model.card.label,
            "detector": detector.label,
            "timings_ms": {k: round(v, 2) for k, v in timings.items()},
        }
        return body, timings

    async def face(request: Request) -> JSONResponse:
        body, timings = await pool.run(classify_crop, request.headers, await body_of(request))
        found = body["face"]["found"]
        request.scope["state"]["log_fields"] = {"top": body["top"], "face": found}
        return JSONResponse(body, headers={"Server-Timing": _server_timing(timings)})

    def classify_photo(
        headers: Headers, body: bytes, max_faces: int, min_size: int
    ) -> tuple[dict, dict[str, float]]:
        """/faces's work, in a worker thread."""
        started = time.perf_counter()
        data = image_bytes(headers, body, settings.max_body_bytes)
        image = decode_image(data, settings.max_pixels, settings.min_side)
        decoded = time.perf_counter()
        found = detector.detect(image, max_side=settings.detect_side, min_size=min_size)
        found = found[:max_faces]
        detected = time.perf_counter()
        crops = [framing.crop(image, face) for face in found]
        probabilities = model.predict(crops) if crops else []  # one batch for every face
        classified = time.perf_counter()

        results = []
        for face, probs in zip(found, probabilities, strict=True):
            predictions = ranked(probs, model.card.classes)
            results.append(
                {
                    "box": _clipped_box(face, image.size),
                    "score": round(face.score, 4),
                    "predictions": predictions,
                    "top": next(iter(predictions)),
                }
            )
        timings = {
            "decode": (decoded - started) * 1000,
            "detect": (detected - decoded) * 1000,
            "classify": (classified - detected) * 1000,
        }
        body = {
            "faces": results,
            "image": {"width": image.width, "height": image.height},
            "model": model.card.label,
            "detector": detector.label,
            "timings_ms": {k: round(v, 2) for k, v in timings.items()},
        }
        return body, timings

    async def faces(request: Request) -> JSONResponse:
        max_faces = _int_param(request, "max_faces", MAX_FACES, 1, settings.max_faces)
        min_size = _int_param(request, "min_size", MIN_SIZE, 0, 100_000)
        data = await body_of(request)
        body, timings = await pool.run(classify_photo, request.headers, data, max_faces, min_size)
        request.scope["state"]["log_fields"] = {"faces": len(body["faces"])}
        return JSONResponse(body, headers={"Server-Timing": _server_timing(timings)})

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def health(request: Request) -> JSONResponse:
        card = model.card
        return JSONResponse(
            {
                "status": "ok",
                "model": card.label,
                "classes": list(card.classes),
                "input_size": card.input_size,
                "detector": detector.label,
            }
        )

    routes = [
        Route("/face", face, methods=["POST"]),
        Route("/faces", faces, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
    if settings.static_dir:
        allowed = {route.path: ", ".join(sorted(route.methods or ())) for route in routes}
        routes.append(Mount("/", app=_static_site(settings.static_dir, allowed)))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(logs.AccessLog),
            *(
                [Middleware(OriginCheck, secret=settings.origin_secret)]
                if settings.origin_secret
                else []
            ),
        ],
        exception_handlers={ClientError: _client_error, HTTPException: _http_error},
    )
    # `POST /face/` is a 404, not a redirect to a URL built from the request's Host header.
    app.router.redirect_slashes = False
    return app


def _load_model(path: Path, threads: int) -> EmotionModel:
    if not Path(path).is_file():
        raise ModelFileError(path, "the model file is missing")
    if not Path(path).with_suffix(".json").is_file():
        raise ModelFileError(Path(path).with_suffix(".json"), "the model card is missing")
    try:
        return EmotionModel(path, threads)
    except (ValueError, KeyError, TypeError) as e:  # the card: bad JSON, a missing key
        raise ModelFileError(Path(path).with_suffix(".json"), f"unreadable card ({e})") from None
    except Exception as e:  # ONNX Runtime: not a model, truncated, wrong graph
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ModelFileError(path, f"the model cannot be loaded ({reason})") from None


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # Plain ASCII digits only: int() would also take "５", "1_0", "+5" and " 5".
    value = int(raw) if raw.isascii() and raw.isdigit() else None
    if value is None or not low <= value <= high:
        raise bad_request(
            "bad_parameter", f"'{name}' must be a whole number from {low} to {high}; got {raw!r}."
        )
    return value


def _clipped_box(face: Detection, size: tuple[int, int]) -> dict[str, int]:
    """The box in the image's pixels, kept inside the image (the detector may overhang)."""
    left, top = max(0, round(face.x)), max(0, round(face.y))
    right = min(size[0], round(face.x + face.width))
    bottom = min(size[1], round(face.y + face.height))
    return {"x": left, "y": top, "width": max(0, right - left), "height": max(0, bottom - top)}


def _face_block(face: Detection | None, image: Image.Image, framing: Framing) -> dict:
    """/face's `face`: where the detector saw the face in the crop, and `region`, the part of
    the crop the classifier was given (framed as the card says, or all of it when the crop is
    classified as sent; it may reach past the crop's edges, whose pixels then repeat), so a page
    can show exactly that. When it saw no face: the whole crop with score 0."""
    whole = {"x": 0, "y": 0, "width": image.width, "height": image.height}
    if face is None:
        return {"found": False, "score": 0.0, "box": whole, "region": whole}
    region = whole
    if not framing.keeps(image, face):
        left, top, right, bottom = pixel_box(framing.region(face))
        region = {"x": left, "y": top, "width": right - left, "height": bottom - top}
    return {
        "found": True,
        "score": round(face.score, 4),
        "box": _clipped_box(face, image.size),
        "region": region,
    }


def _server_timing(timings: dict[str, float]) -> str:
    return ", ".join(f"{k};dur={v:.2f}" for k, v in timings.items())


async def _client_error(request: Request, exc: ClientError) -> JSONResponse:
    return JSONResponse(exc.as_json(), status_code=exc.status, headers=exc.headers)


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
