"""The Mangum handler with API Gateway events shaped as AWS sends them."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from urllib.parse import urlencode

import pytest
from lambda_events import LambdaContext, http_api_event, rest_api_event, through_cloudfront

from emotion.card import CLASSES
from face_images import astronaut_face, data_url, encode

EVENTS = [http_api_event, rest_api_event]
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def handler():
    from emotion.handler import handler

    return handler


def invoke_like_lambda(handler, event) -> dict:
    """The Lambda runtime calls the handler with no event loop running. Other tests in this
    process (Playwright's sync API) may leave one running here, so use a clean thread."""

    def run() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            results.append(handler(event, LambdaContext()))
        finally:
            asyncio.get_event_loop().close()

    results: list[dict] = []
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert results, "the handler raised (see the thread's traceback above)"
    return results[0]


def call(handler, event) -> tuple[int, dict, dict]:
    result = invoke_like_lambda(handler, event)
    body = result["body"]
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    return result["statusCode"], json.loads(body), headers


def assert_sorted_predictions(body: dict) -> None:
    values = list(body["predictions"].values())
    assert sorted(body["predictions"]) == sorted(CLASSES)
    assert values == sorted(values, reverse=True)
    assert sum(values) == pytest.approx(1, abs=1e-4)


@pytest.mark.parametrize("make_event", EVENTS, ids=["http-api-2.0", "rest-1.0"])
def test_seed_form_base64_encoded_by_api_gateway(handler, make_event):
    form = urlencode({"imgBase64": data_url(encode(astronaut_face()))})
    status, body, headers = call(handler, make_event("POST", "/face", form, FORM, binary=True))
    assert status == 200
    assert_sorted_predictions(body)
    assert headers["content-type"] == "application/json"
    assert "infer;dur=" in headers["server-timing"]


@pytest.mark.parametrize("make_event", EVENTS, ids=["http-api-2.0", "rest-1.0"])
def test_raw_jpeg_body(handler, make_event):
    raw = encode(astronaut_face().convert("RGB"), "JPEG")
    status, body, _ = call(handler, make_event("POST", "/face", raw, "image/jpeg", binary=True))
    assert status == 200
    assert_sorted_predictions(body)


@pytest.mark.parametrize("make_event", EVENTS, ids=["http-api-2.0", "rest-1.0"])
def test_json_body_as_text(handler, make_event):
    doc = json.dumps({"imgBase64": data_url(encode(astronaut_face()))})
    event = make_event("POST", "/face", doc, "application/json", binary=False)
    status, body, _ = call(handler, event)
    assert status == 200
    assert_sorted_predictions(body)


@pytest.mark.parametrize("make_event", EVENTS, ids=["http-api-2.0", "rest-1.0"])
def test_health(handler, make_event):
    status, body, _ = call(handler, make_event("GET", "/health"))
    assert status == 200 and body["status"] == "ok"


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "code"),
    [
        ("POST", "/face", b"imgBase64=%%%", FORM, 400, "bad_base64"),
        ("POST", "/face", b"not an image", "image/png", 400, "not_an_image"),
        ("POST", "/face", b"hello", "text/plain", 415, "unsupported_media_type"),
        ("GET", "/face", None, None, 405, "method_not_allowed"),
    ],
)
@pytest.mark.parametrize("make_event", EVENTS, ids=["http-api-2.0", "rest-1.0"])
def test_errors_through_the_handler(handler, make_event, method, path, body, content_type, status, code):  # fmt: skip
    got_status, got, _ = call(handler, make_event(method, path, body, content_type))
    assert (got_status, got["error"]) == (status, code)


def test_lambda_never_serves_files(handler):
    status, body, _ = call(handler, http_api_event("GET", "/index.html"))
    assert status == 404 and body["error"] == "not_found"


def test_whole_photo_through_an_http_api_event(handler):
    """POST /faces with a 1280x720 group photo, base64-encoded by API Gateway, a query string
    as the HTTP API passes it, and the answer through Mangum."""
    from face_scenes import group_photo, matches

    photo, truth = group_photo()
    event = http_api_event("POST", "/faces", encode(photo, "JPEG", quality=90), "image/jpeg")
    event["rawQueryString"] = "max_faces=20&min_size=24"
    event["queryStringParameters"] = {"max_faces": "20", "min_size": "24"}
    status, body, headers = call(handler, event)
    assert status == 200, body
    assert body["image"] == {"width": 1280, "height": 720}
    assert len(body["faces"]) == len(truth)
    for face in truth:
        assert any(matches(f["box"], face) for f in body["faces"])
    for face in body["faces"]:
        assert_sorted_predictions(face)
    assert "detect;dur=" in headers["server-timing"]


@pytest.mark.parametrize(
    ("query", "method", "status", "code"),
    [("max_faces=0", "POST", 400, "bad_parameter"), ("", "GET", 405, "method_not_allowed")],
)
def test_faces_errors_through_the_handler(handler, query, method, status, code):
    event = http_api_event(method, "/faces", b"x" if method == "POST" else None, "image/jpeg")
    event["rawQueryString"] = query
    got_status, got, _ = call(handler, event)
    assert (got_status, got["error"]) == (status, code)


SECRET = "s3cr3t-0f-th1s-d3pl0y"


@pytest.fixture(scope="module")
def guarded(settings, model, detector):
    """The handler as the stack deploys it: EMOTION_ORIGIN_SECRET set."""
    from dataclasses import replace

    from mangum import Mangum

    from emotion.app import create_app

    return Mangum(
        create_app(replace(settings, origin_secret=SECRET), model, detector), lifespan="off"
    )


@pytest.mark.parametrize("path", ["/face", "/faces", "/health"])
def test_a_direct_call_to_the_api_endpoint_is_refused(guarded, path):
    face = encode(astronaut_face())
    method = "GET" if path == "/health" else "POST"
    event = http_api_event(method, path, None if method == "GET" else face, "image/png")
    status, body, _ = call(guarded, event)
    assert status == 403 and body["error"] == "forbidden" and body["detail"]
    wrong = through_cloudfront(event, SECRET[:-1] + "X")  # a guess at the header
    assert call(guarded, wrong)[0] == 403


@pytest.mark.parametrize("make_event", EVENTS)
def test_a_call_through_cloudfront_is_served(guarded, make_event):
    face = encode(astronaut_face())
    event = through_cloudfront(make_event("POST", "/face", face, "image/png"), SECRET)
    status, body, _ = call(guarded, event)
    assert status == 200, body
    assert_sorted_predictions(body)
    assert call(guarded, through_cloudfront(make_event("GET", "/health"), SECRET))[0] == 200
