"""/openapi.json is a valid OpenAPI 3.1 document, and real responses (every documented status
of every operation) validate against it."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import anyio
import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from PIL import Image
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from skimage import data as skdata
from starlette.testclient import TestClient

from emotion.app import create_app
from face_images import astronaut_face, data_url, encode
from face_scenes import group_photo

from .conftest import HeldModel

SPEC_FILE = Path(__file__).resolve().parents[2] / "function" / "emotion" / "openapi.json"
SPEC = json.loads(SPEC_FILE.read_text())
_REGISTRY = Registry().with_resource(
    "urn:openapi", Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
PNG = {"content-type": "image/png"}
JPEG = {"content-type": "image/jpeg"}
TEXT = {"content-type": "text/plain"}


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def validate(path: str, method: str, response) -> None:
    """The response's status is documented for the operation and its JSON body fits."""
    documented = SPEC["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method.upper()} {path} answered undocumented {status}"
    assert response.headers["content-type"].startswith("application/json")
    pointer = _pointer("paths", path, method, "responses", status, "content", "application/json")
    schema = {"$ref": f"urn:openapi#/{pointer}/schema"}
    Draft202012Validator(schema, registry=_REGISTRY).validate(response.json())


def test_the_document_is_valid_openapi_3_1():
    validate_spec(SPEC)
    assert SPEC["openapi"].startswith("3.1")
    assert {"/face", "/faces", "/health"} <= set(SPEC["paths"])


def test_it_is_served_as_is(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == SPEC
    validate("/openapi.json", "get", response)


def _requests(client) -> list[tuple[str, str, object]]:
    """(path, method, response) for every documented status of every operation."""
    face = encode(astronaut_face())
    photo = encode(group_photo()[0], "JPEG")
    huge = encode(Image.new("L", (5000, 4000)))  # over the 16 M pixel limit
    gif = encode(Image.new("L", (20, 20)), "GIF")
    ico = encode(Image.new("L", (32, 32)), "ICO")
    no_face = encode(Image.fromarray(skdata.coffee()))
    cases = [
        ("/health", "get", client.get("/health")),
        ("/openapi.json", "get", client.get("/openapi.json")),
    ]
    for path in ("/face", "/faces"):
        cases += [
            (path, "post", client.post(path, data={"imgBase64": data_url(face)})),
            (path, "post", client.post(path, content=photo, headers=JPEG)),
            (path, "post", client.post(path, content=no_face, headers=PNG)),
            (path, "post", client.post(path, json={"imgBase64": data_url(gif, "image/gif")})),
            (path, "post", client.post(path, content=b"", headers=PNG)),
            (path, "post", client.post(path, content=b"junk", headers=PNG)),
            (path, "post", client.post(path, content=face[:200], headers=PNG)),
            (path, "post", client.post(path, content=huge, headers=PNG)),
            (path, "post", client.post(path, content=b"x" * 5_000_001, headers=PNG)),
            (path, "post", client.post(path, content=b"hello", headers=TEXT)),
            (path, "post", client.post(path, content=ico, headers=PNG)),
        ]
    cases += [("/faces", "post", client.post("/faces?max_faces=99", content=photo, headers=JPEG))]
    return cases


def _busy_and_slow(settings, model, detector) -> list[tuple[str, str, object]]:
    """503 from a server whose one worker is held, 408 from a body that comes too slowly."""
    held = HeldModel(model)
    limits = replace(settings, workers=1, queue=0, body_timeout=0.2)
    face = encode(astronaut_face())

    async def slow_post(app, path: str):
        async def slow_body():
            yield face[:100]
            await anyio.sleep(1)  # over the 0.2 s body timeout
            yield face[100:]

        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(path, content=slow_body(), headers=PNG)

    cases = []
    app = create_app(limits, held, detector)
    with TestClient(app) as client:
        first = threading.Thread(
            target=client.post, args=("/face",), kwargs={"content": face, "headers": PNG}
        )
        first.start()
        assert held.entered.wait(30)
        for path in ("/face", "/faces"):
            cases.append((path, "post", client.post(path, content=face, headers=PNG)))
        held.gate.set()
        first.join(30)
    # In a thread of its own: in the whole suite, Playwright's sync API (a session fixture of
    # the browser tests) keeps an event loop running in the main thread.
    with ThreadPoolExecutor(1) as own_thread:
        for path in ("/face", "/faces"):
            answer = own_thread.submit(anyio.run, slow_post, app, path).result()
            cases.append((path, "post", answer))
    return cases


@pytest.fixture(scope="module")
def responses(client, settings, model, detector):
    return _requests(client) + _busy_and_slow(settings, model, detector)


def test_real_responses_match_the_document(responses):
    for path, method, response in responses:
        validate(path, method, response)


def test_every_documented_status_was_exercised(responses):
    documented = {
        (path, method, status)
        for path, item in SPEC["paths"].items()
        for method, operation in item.items()
        for status in operation["responses"]
    }
    seen = {(path, method, str(r.status_code)) for path, method, r in responses}
    assert documented == seen


def test_the_documented_error_codes_are_the_ones_answered(responses):
    answered = {
        (path, str(r.status_code), r.json()["error"])
        for path, _, r in responses
        if r.status_code >= 400
    }
    for path, status, code in answered:
        description = SPEC["paths"][path]["post"]["responses"][status]["description"]
        assert f"`{code}`" in description, (path, status, code)
