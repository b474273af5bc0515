"""`make smoke` against a mocked AWS: moto's CloudFormation holds a stack whose outputs point at
a local server. The real tool (a subprocess, as `make smoke` runs it), not a mocked tool."""

from __future__ import annotations

import http.server
import io
import json
import socket
import uuid

import pytest
from PIL import Image

from infra.headers import load_headers
from infra.smoke import face_crop

CLASSES = ["Happiness", "Neutral", "Surprise", "Sadness", "Anger", "Disgust", "Fear", "Contempt"]
PAGE = b"<!doctype html><html><head><script src='js/app.js'></script></head><body></body></html>"


def stack_name() -> str:
    return f"smoke-{uuid.uuid4().hex[:8]}"


def stub_handler(*, health=200, face=200, headers=True, predictions=None, direct=403):
    """A server that plays the deployed site, with one thing wrong as asked."""
    site_headers = load_headers() if headers else {}
    predictions = predictions or dict(
        zip(CLASSES, [0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.02, 0.01], strict=True)
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in site_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/":
                self.reply(200, PAGE, "text/html; charset=utf-8")
            elif self.path == "/js/app.js":
                self.reply(200, b"// app", "text/javascript")
            elif self.path == "/direct/health":  # the API's own endpoint (ApiUrl)
                body = {"error": "forbidden", "detail": "x"} if direct == 403 else {"status": "ok"}
                self.reply(direct, json.dumps(body).encode(), "application/json")
            elif self.path == "/health":
                body = {"status": "ok", "model": "stub"} if health == 200 else {"message": "boom"}
                self.reply(health, json.dumps(body).encode(), "application/json")
            else:
                self.reply(404, b"{}", "application/json")

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/face" and face == 200:
                body = json.dumps({"predictions": predictions}).encode()
            else:
                body = b'{"message": "Internal Server Error"}'
            self.reply(face if self.path == "/face" else 404, body, "application/json")

    return Handler


def test_smoke_passes_against_the_real_app_via_make(
    make_stack, local_server, local_api_endpoint, smoke
):
    stack = make_stack(stack_name(), {"SiteUrl": local_server, "ApiUrl": local_api_endpoint})
    result = smoke(stack, via_make=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 4 checks passed" in result.stdout
    assert "8 sorted probabilities" in result.stdout
    assert "security headers" in result.stdout
    assert "403 forbidden" in result.stdout


def test_an_api_that_answers_direct_calls_fails(make_stack, stub_server, smoke):
    url = stub_server(stub_handler(direct=200))
    stack = make_stack(stack_name(), {"SiteUrl": url, "ApiUrl": url + "direct/"})
    result = smoke(stack, "--attempts", "1")
    assert result.returncode == 1
    assert "FAIL direct call refused" in result.stderr and "expected 403" in result.stderr


def test_smoke_passes_against_a_healthy_stub(make_stack, stub_server, smoke):
    url = stub_server(stub_handler())
    stack = make_stack(stack_name(), {"SiteUrl": url, "ApiUrl": url + "direct/", "Other": "x"})
    result = smoke(stack, "--attempts", "1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_output_fails_clearly(make_stack, stub_server, smoke):
    url = stub_server(stub_handler())
    stack = make_stack(stack_name(), {"SiteUrl": url})
    result = smoke(stack, "--attempts", "1")
    assert result.returncode == 2
    assert f"stack '{stack}' has no output ApiUrl" in result.stderr
    assert "its outputs: SiteUrl" in result.stderr


def test_unknown_stack_fails_clearly(smoke):
    result = smoke("no-such-stack", "--attempts", "1")
    assert result.returncode == 2
    assert "cannot read stack 'no-such-stack'" in result.stderr


def test_server_errors_fail_clearly(make_stack, stub_server, smoke):
    url = stub_server(stub_handler(health=500, face=502))
    stack = make_stack(stack_name(), {"SiteUrl": url, "ApiUrl": url + "direct/"})
    result = smoke(stack, "--attempts", "2", "--timeout", "5")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL health" in result.stderr and "HTTP 500, expected 200" in result.stderr
    assert "FAIL face" in result.stderr and "HTTP 502, expected 200" in result.stderr
    assert "ok   page" in result.stdout  # the page itself was fine
    assert "2 of 4 checks failed" in result.stderr


def test_missing_security_headers_fail(make_stack, stub_server, smoke):
    url = stub_server(stub_handler(headers=False))
    stack = make_stack(stack_name(), {"SiteUrl": url, "ApiUrl": url + "direct/"})
    result = smoke(stack, "--attempts", "1")
    assert result.returncode == 1
    assert "FAIL page" in result.stderr
    assert "Content-Security-Policy missing" in result.stderr
    assert "Permissions-Policy missing" in result.stderr


@pytest.mark.parametrize(
    ("predictions", "message"),
    [
        (
            dict(zip(CLASSES, [0.1, 0.5, 0.1, 0.1, 0.1, 0.05, 0.03, 0.02], strict=True)),
            "not sorted",
        ),
        (dict(zip(CLASSES[:7], [0.5, 0.2, 0.1, 0.1, 0.05, 0.03, 0.02], strict=True)), "classes"),
        (dict(zip(CLASSES, [0.9, 0.2, 0.1, 0.1, 0.05, 0.03, 0.02, 0.01], strict=True)), "sum to"),
    ],
    ids=["unsorted", "seven-classes", "not-normalised"],
)
def test_bad_predictions_fail(make_stack, stub_server, smoke, predictions, message):
    url = stub_server(stub_handler(predictions=predictions))
    stack = make_stack(stack_name(), {"SiteUrl": url, "ApiUrl": url + "direct/"})
    result = smoke(stack, "--attempts", "1")
    assert result.returncode == 1
    assert "FAIL face" in result.stderr and message in result.stderr


def test_unreachable_site_fails(make_stack, smoke):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"  # nothing listens once closed
    stack = make_stack(stack_name(), {"SiteUrl": url, "ApiUrl": url})
    result = smoke(stack, "--attempts", "1", "--timeout", "3")
    assert result.returncode == 1
    assert "no answer after 1 attempt(s)" in result.stderr
    assert "4 of 4 checks failed" in result.stderr


def test_face_crop_is_a_generated_face():
    image = Image.open(io.BytesIO(face_crop()))
    assert image.format == "PNG" and image.mode == "L" and image.size == (96, 96)
    assert len(set(image.getdata())) > 10  # a drawing, not a blank square
