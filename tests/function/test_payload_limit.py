"""Raw bodies on Lambda: with the body limit the stack sets (infra/config.py), every body API
Gateway can still pass to the function (base64 in a 6 MB event) gets the function's own
answer, and a body over the limit gets our 413 JSON, not a gateway error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lambda_events import http_api_event

from infra.config import LAMBDA_PAYLOAD_BYTES, MAX_BODY_BYTES

ROOT = Path(__file__).resolve().parents[2]

INVOKE = """
import asyncio, json, sys
from emotion.handler import handler
class Context:
    aws_request_id = "payload-test"
    def get_remaining_time_in_millis(self): return 10_000
out = []
for event in json.load(sys.stdin):
    asyncio.set_event_loop(asyncio.new_event_loop())
    result = handler(event, Context())
    out.append([result["statusCode"], json.loads(result["body"])])
print("RESULT " + json.dumps(out))
"""


def test_bodies_at_and_over_the_stack_limit():
    at_limit = http_api_event("POST", "/face", b"\xff" * MAX_BODY_BYTES, "image/jpeg")
    over = http_api_event("POST", "/face", b"\xff" * (MAX_BODY_BYTES + 1), "image/jpeg")
    # API Gateway passes both: base64 (4/3) plus the event's headers and context fit 6 MB.
    assert at_limit["isBase64Encoded"] and over["isBase64Encoded"]
    assert len(json.dumps(over)) < LAMBDA_PAYLOAD_BYTES
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "function"), str(ROOT)]),
        "EMOTION_MAX_BODY_BYTES": str(MAX_BODY_BYTES),  # as the stack sets it
    }
    done = subprocess.run(
        [sys.executable, "-c", INVOKE],
        input=json.dumps([at_limit, over]),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    (status_at, body_at), (status_over, body_over) = json.loads(line[7:])
    assert status_at == 400 and body_at["error"] in ("not_an_image", "truncated_image")
    assert status_over == 413 and body_over["error"] == "body_too_large"
    assert body_over["detail"]
