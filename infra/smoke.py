"""Smoke test of a deployed stack: `make smoke STACK=<name>` (python -m infra.smoke --stack NAME).

Reads the stack's outputs from CloudFormation (boto3; the usual AWS credential chain, region
and AWS_ENDPOINT_URL), then, through the site URL (the one public origin):
  1. the page loads, with the security headers of site/headers.json, and so do its scripts;
  2. GET /health answers {"status": "ok", ...};
  3. POST /face with a generated face crop returns the 8 classes, sorted, summing to 1;
and that the API's own URL refuses a direct call (403: only CloudFront gets through). Exit 0
when all pass, 1 when a check fails, 2 when the stack or its outputs cannot be read; each
problem is one line on stderr.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HEADERS_FILE = Path(__file__).resolve().parents[1] / "site" / "headers.json"
CLASSES = {"Anger", "Disgust", "Surprise", "Sadness", "Happiness", "Neutral", "Contempt", "Fear"}
REQUIRED_OUTPUTS = ("SiteUrl", "ApiUrl")
USER_AGENT = "emotion-evaluator-smoke/1"


class SmokeError(Exception):
    """A failed check; the message says what was expected and what came back."""


class StackError(Exception):
    """The stack or its outputs cannot be read."""


@dataclass
class Response:
    url: str
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> dict:
        try:
            data = json.loads(self.body)
        except ValueError:
            raise SmokeError(f"{self.url}: expected JSON, got {self.body[:120]!r}") from None
        if not isinstance(data, dict):
            raise SmokeError(f"{self.url}: expected a JSON object, got {data!r:.120}")
        return data


# --- AWS -------------------------------------------------------------------------------------
def stack_outputs(stack: str, region: str | None = None) -> dict[str, str]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client("cloudformation", region_name=region)
        stacks = client.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        raise StackError(f"cannot read stack {stack!r}: {exc}") from None
    except BotoCoreError as exc:  # no credentials, no region, endpoint unreachable...
        raise StackError(f"cannot reach CloudFormation for stack {stack!r}: {exc}") from None
    if not stacks:
        raise StackError(f"stack {stack!r} not found")
    description = stacks[0]
    status = description.get("StackStatus", "")
    if not status.endswith("_COMPLETE") or "ROLLBACK" in status or "DELETE" in status:
        raise StackError(f"stack {stack!r} is {status}, not deployed")
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in description.get("Outputs", [])}
    missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
    if missing:
        have = ", ".join(sorted(outputs)) or "none"
        raise StackError(
            f"stack {stack!r} has no output {', '.join(missing)} (its outputs: {have}); "
            "was it deployed from this repository's infra/?"
        )
    for key in REQUIRED_OUTPUTS:
        scheme = urllib.parse.urlsplit(outputs[key]).scheme
        if scheme not in ("http", "https"):
            raise StackError(f"stack {stack!r} output {key}={outputs[key]!r} is not a URL")
    return outputs


# --- HTTP ------------------------------------------------------------------------------------
def fetch(
    url: str,
    *,
    data: bytes | None = None,
    content_type: str | None = None,
    timeout: float = 30.0,
    attempts: int = 3,
    delay: float = 2.0,
) -> Response:
    """One request; retried on connection errors and 5xx (a cold start, a fresh deploy)."""
    headers = {"User-Agent": USER_AGENT}
    if content_type:
        headers["Content-Type"] = content_type
    last: Response | str = ""
    for attempt in range(max(1, attempts)):
        if attempt:
            time.sleep(delay * attempt)
        request = urllib.request.Request(url, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                return Response(url, reply.status, _lower(reply.headers), reply.read())
        except urllib.error.HTTPError as exc:
            last = Response(url, exc.code, _lower(exc.headers), exc.read())
            if exc.code < 500:
                return last
        except (urllib.error.URLError, OSError) as exc:
            last = f"{url}: {getattr(exc, 'reason', exc)}"
    if isinstance(last, Response):
        return last
    raise SmokeError(f"no answer after {attempts} attempt(s): {last}")


def _lower(headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def expect_status(response: Response, status: int = 200) -> None:
    if response.status != status:
        body = response.body[:200].decode("utf-8", "replace")
        raise SmokeError(f"{response.url}: HTTP {response.status}, expected {status}: {body}")


# --- the checks --------------------------------------------------------------------------------
def _normalise(value: str) -> str:
    return re.sub(r"\s*([;,])\s*", r"\1 ", value.strip()).strip().lower()


def check_page(site: str, expected_headers: dict[str, str], **http) -> str:
    page = fetch(site, **http)
    expect_status(page)
    if "text/html" not in page.headers.get("content-type", ""):
        raise SmokeError(f"{site}: Content-Type {page.headers.get('content-type')!r}, not HTML")
    problems = []
    https = urllib.parse.urlsplit(site).scheme == "https"
    checked = 0
    for name, value in expected_headers.items():
        if name.lower() == "strict-transport-security" and not https:
            continue  # HSTS means nothing on plain http (a local server): not expected there
        checked += 1
        got = page.headers.get(name.lower())
        if got is None:
            problems.append(f"{name} missing")
        elif _normalise(got) != _normalise(value):
            problems.append(f"{name} is {got!r}, expected {value!r}")
    if problems:
        raise SmokeError(f"{site}: security headers: {'; '.join(problems)}")
    # Every script the page loads from its own origin must be there too (vendor/ included).
    html = page.body.decode("utf-8", "replace")
    scripts = re.findall(r"<script[^>]*\bsrc=[\"']([^\"']+)[\"']", html, flags=re.I)
    local = [s for s in scripts if not urllib.parse.urlsplit(s).netloc]
    for src in local:
        expect_status(fetch(urllib.parse.urljoin(site, src), **http))
    return f"{site}: page, {checked} security headers and {len(local)} scripts as expected"


def check_health(base: str, **http) -> str:
    url = urllib.parse.urljoin(base, "health")
    response = fetch(url, **http)
    expect_status(response)
    data = response.json()
    if data.get("status") != "ok":
        raise SmokeError(f"{url}: status {data.get('status')!r}, expected 'ok'")
    return f"{url}: ok, model {data.get('model')!r}"


def check_direct_refused(api: str, **http) -> str:
    """The API's own endpoint, called without CloudFront's origin header: 403 `forbidden`."""
    url = urllib.parse.urljoin(api, "health")
    response = fetch(url, **http)
    expect_status(response, 403)
    if response.json().get("error") != "forbidden":
        raise SmokeError(f"{url}: 403 without the error 'forbidden': {response.body[:120]!r}")
    return f"{url}: 403 forbidden (only CloudFront gets through)"


def face_crop(size: int = 96) -> bytes:
    """A drawn grayscale face (oval, eyes, brows, nose, smile) as PNG: no data set needed."""
    from PIL import Image, ImageDraw, ImageFilter

    s = size / 96
    image = Image.new("L", (size, size), 40)
    draw = ImageDraw.Draw(image)
    draw.ellipse([14 * s, 6 * s, 82 * s, 94 * s], fill=190)  # face
    for x in (30, 56):
        draw.ellipse([x * s, 34 * s, (x + 10) * s, 41 * s], fill=250)  # eye whites
        draw.ellipse([(x + 3) * s, 35 * s, (x + 7) * s, 40 * s], fill=20)  # pupils
        draw.line([(x - 2) * s, 29 * s, (x + 12) * s, 27 * s], fill=60, width=max(1, int(2 * s)))
    draw.polygon([(48 * s, 44 * s), (43 * s, 60 * s), (53 * s, 60 * s)], fill=160)  # nose
    draw.arc([32 * s, 56 * s, 64 * s, 78 * s], 15, 165, fill=70, width=max(1, int(3 * s)))
    image = image.filter(ImageFilter.GaussianBlur(0.8 * s))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def check_face(site: str, **http) -> str:
    url = urllib.parse.urljoin(site, "face")
    data_url = "data:image/png;base64," + base64.b64encode(face_crop()).decode()
    body = urllib.parse.urlencode({"imgBase64": data_url}).encode()
    response = fetch(url, data=body, content_type="application/x-www-form-urlencoded", **http)
    expect_status(response)
    predictions = response.json().get("predictions")
    if not isinstance(predictions, dict):
        raise SmokeError(f"{url}: no 'predictions' object in {response.body[:200]!r}")
    if set(predictions) != CLASSES:
        raise SmokeError(f"{url}: classes {sorted(predictions)}, expected {sorted(CLASSES)}")
    values = list(predictions.values())
    if not all(isinstance(v, int | float) and 0 <= v <= 1 for v in values):
        raise SmokeError(f"{url}: probabilities outside [0, 1]: {predictions}")
    if values != sorted(values, reverse=True):
        raise SmokeError(f"{url}: predictions not sorted by probability: {predictions}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-3):
        raise SmokeError(f"{url}: probabilities sum to {sum(values):.4f}, not 1")
    top = next(iter(predictions))
    return f"{url}: 8 sorted probabilities, top {top} {predictions[top]:.2f}"


def run(stack: str, *, region: str | None, headers_file: Path, **http) -> int:
    try:
        outputs = stack_outputs(stack, region)
    except StackError as exc:
        print(f"smoke: FAIL: {exc}", file=sys.stderr)
        return 2
    site, api = outputs["SiteUrl"], outputs["ApiUrl"]
    site = site if site.endswith("/") else site + "/"
    api = api if api.endswith("/") else api + "/"
    print(f"smoke: stack {stack}: site {site}, API {api}")
    expected = json.loads(Path(headers_file).read_text())
    checks = [
        ("page", lambda: check_page(site, expected, **http)),
        ("health", lambda: check_health(site, **http)),
        ("face", lambda: check_face(site, **http)),
        ("direct call refused", lambda: check_direct_refused(api, **http)),
    ]
    failed = 0
    for name, check in checks:
        try:
            print(f"smoke: ok   {name}: {check()}")
        except SmokeError as exc:
            failed += 1
            print(f"smoke: FAIL {name}: {exc}", file=sys.stderr)
    if failed:
        print(f"smoke: {failed} of {len(checks)} checks failed", file=sys.stderr)
        return 1
    print(f"smoke: all {len(checks)} checks passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.smoke", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stack", required=True, help="CloudFormation stack name")
    parser.add_argument("--region", help="AWS region (default: the usual AWS configuration)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--attempts", type=int, default=3, help="tries per request on 5xx")
    parser.add_argument("--headers", type=Path, default=HEADERS_FILE, help="expected headers")
    args = parser.parse_args(argv)
    if not args.stack.strip():
        parser.error("--stack is empty: make smoke STACK=<name>")
    return run(
        args.stack,
        region=args.region,
        headers_file=args.headers,
        timeout=args.timeout,
        attempts=args.attempts,
    )


if __name__ == "__main__":
    sys.exit(main())
