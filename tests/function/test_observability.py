"""Structured logs and CloudWatch metrics (Powertools): what the function prints on stdout for
real API Gateway events through the Mangum handler, and locally under the ASGI app.

Each runs in a fresh process, as Lambda (and `make run`) would, and reads its stdout."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
from lambda_events import LambdaContext, http_api_event

from emotion.logs import NAMESPACE, SERVICE, _error_code, _route, record_faces
from face_images import astronaut_face, data_url, encode

ROOT = Path(__file__).resolve().parents[2]
FORM = "application/x-www-form-urlencoded"

LAMBDA = """
import asyncio, json, sys
from emotion.handler import handler
class Context:
    aws_request_id = sys.argv[1]
    def get_remaining_time_in_millis(self): return 10_000
for event in json.load(sys.stdin):
    asyncio.set_event_loop(asyncio.new_event_loop())
    handler(event, Context())
"""

LOCAL = """
import io, sys
from skimage import data
from PIL import Image
from starlette.testclient import TestClient
from emotion.app import create_app
photo = io.BytesIO()
Image.fromarray(data.astronaut()).save(photo, "PNG")
client = TestClient(create_app())
client.get("/health")
client.post("/faces", content=photo.getvalue(), headers={"content-type": "image/png"})
"""


def run(code: str, *args: str, stdin: str = "") -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "function"), str(ROOT)])}
    for key in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every stdout line is JSON
    assert all(isinstance(p, dict) for p in parsed)
    return parsed


def emf(lines: list[dict]) -> list[dict]:
    return [line for line in lines if "_aws" in line]


def logs(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line.get("message") == "request"]


@pytest.fixture(scope="module")
def lambda_lines() -> list[dict]:
    face = data_url(encode(astronaut_face()))
    events = [
        http_api_event("POST", "/face", urlencode({"imgBase64": face}), FORM),
        http_api_event("POST", "/face", urlencode({"imgBase64": "data:image/png;base64,@@"}), FORM),
        http_api_event("GET", "/face"),
        http_api_event("GET", "/health"),
    ]
    return run(LAMBDA, LambdaContext.aws_request_id, stdin=json.dumps(events))


def test_lambda_log_lines_carry_the_request_id_and_no_image_data(lambda_lines):
    lines = logs(lambda_lines)
    assert [(line["route"], line["status"]) for line in lines] == [
        ("/face", 200),
        ("/face", 400),
        ("/face", 405),
        ("/health", 200),
    ]
    for line in lines:
        assert line["request_id"] == LambdaContext.aws_request_id
        assert line["service"] == SERVICE and line["level"] in ("INFO", "ERROR")
        assert line["ms"] > 0
    assert lines[0]["top"] and "error" not in lines[0]
    assert lines[1]["error"] == "bad_base64" and lines[2]["error"] == "method_not_allowed"
    everything = json.dumps(lambda_lines)
    face = base64.b64encode(encode(astronaut_face())).decode()
    assert face[40:80] not in everything and "base64," not in everything
    assert max(len(json.dumps(line)) for line in lambda_lines) < 2000


def test_lambda_metrics_in_embedded_metric_format(lambda_lines):
    blobs = emf(lambda_lines)
    requests = [b for b in blobs if "Requests" in b]
    errors = [b for b in blobs if "Errors" in b]
    assert len(requests) == 4 and len(errors) == 2
    for blob in blobs:
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        assert blob["service"] == SERVICE
    first = requests[0]
    names = {m["Name"]: m["Unit"] for m in first["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {"Requests": "Count", "Latency": "Milliseconds"}
    assert first["route"] == "/face" and first["Requests"] == [1.0] and first["Latency"][0] > 0
    assert [(b["route"], b["error"]) for b in errors] == [
        ("/face", "bad_base64"),
        ("/face", "method_not_allowed"),
    ]
    assert errors[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["route", "error", "service"]
    ]


def test_local_app_prints_the_same_json_lines_with_faces_per_photo():
    lines = run(LOCAL)
    (health, photo) = logs(lines)
    assert health["route"] == "/health" and len(health["request_id"]) == 32  # a fresh uuid
    assert photo["route"] == "/faces" and photo["status"] == 200, photo
    assert photo["faces"] >= 1  # the astronaut
    (faces,) = [b for b in emf(lines) if "Faces" in b]
    assert faces["Faces"] == [float(photo["faces"])] and faces["route"] == "/faces"


def test_record_faces_is_what_the_middleware_reports():
    scope: dict = {}
    record_faces(scope, 2)
    assert scope["state"]["log_fields"]["faces"] == 2


def test_route_dimension_is_a_fixed_set_and_error_codes_are_safe():
    assert _route("/face") == "/face" and _route("/wp-admin/x.php") == "other"
    assert _error_code(200, b"") is None
    assert _error_code(413, b'{"error": "body_too_large", "detail": "x"}') == "body_too_large"
    assert _error_code(502, b"<html>Bad gateway</html>") == "internal_error"
    assert _error_code(404, b'{"error": "a b c <script>"}') == "http_404"
