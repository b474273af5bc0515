"""One fresh process per design: import the Lambda handler, answer one API Gateway event
(the cold start), then optionally answer N more (the warm Lambda path, in-process).

    python -m bench.worker DESIGN BODY_FILE N

Prints one JSON line after the first answer, and one more with the warm timings if N > 0.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

_started = time.perf_counter()

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from lambda_events import LambdaContext, http_api_event  # noqa: E402

HANDLERS = {"ours": "emotion.handler", "seed": "bench.seed_handler"}
FORM = "application/x-www-form-urlencoded"


def answer(handler, body: bytes) -> tuple[int, float]:
    event = http_api_event("POST", "/face", body, FORM)  # base64-encoded, as API Gateway does
    started = time.perf_counter()
    result = handler(event, LambdaContext())
    return result["statusCode"], (time.perf_counter() - started) * 1000


def main(design: str, body_file: str, warm_runs: int) -> None:
    body = Path(body_file).read_bytes()
    before_import = time.perf_counter()
    handler = importlib.import_module(HANDLERS[design]).handler
    imported = time.perf_counter()
    status, first_ms = answer(handler, body)
    cold = {
        "status": status,
        "import_s": imported - before_import,
        "first_request_s": first_ms / 1000,
        "in_process_s": time.perf_counter() - _started,
    }
    print("BENCH " + json.dumps(cold), flush=True)
    if warm_runs:
        answers = [answer(handler, body) for _ in range(warm_runs)]
        warm = {"ms": [ms for _, ms in answers], "errors": sum(s != 200 for s, _ in answers)}
        print("BENCH " + json.dumps(warm), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
