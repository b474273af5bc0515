"""API Gateway events as AWS sends them to Lambda: HTTP API (payload 2.0) and REST (1.0)."""

from __future__ import annotations

import base64
import time
import uuid

API_ID = "a1b2c3d4e5"
DOMAIN = f"{API_ID}.execute-api.eu-west-1.amazonaws.com"
SOURCE_IP = "203.0.113.7"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"


def _body(body: bytes | str | None, binary: bool) -> tuple[str | None, bool]:
    if body is None:
        return None, False
    if binary:  # API Gateway base64-encodes bodies it does not treat as text
        raw = body.encode() if isinstance(body, str) else body
        return base64.b64encode(raw).decode(), True
    return (body.decode() if isinstance(body, bytes) else body), False


def http_api_event(
    method: str, path: str, body: bytes | str | None = None,
    content_type: str | None = None, binary: bool = True,
) -> dict:  # fmt: skip
    payload, encoded = _body(body, binary)
    headers = {
        "accept": "*/*",
        "host": DOMAIN,
        "user-agent": USER_AGENT,
        "x-amzn-trace-id": "Root=1-6743a1b2-0123456789abcdef01234567",
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if content_type:
        headers["content-type"] = content_type
    if body is not None:
        headers["content-length"] = str(len(body))
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": API_ID,
            "domainName": DOMAIN,
            "domainPrefix": API_ID,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": USER_AGENT,
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        **({"body": payload} if payload is not None else {}),
        "isBase64Encoded": encoded,
    }


def rest_api_event(
    method: str, path: str, body: bytes | str | None = None,
    content_type: str | None = None, binary: bool = True,
) -> dict:  # fmt: skip
    payload, encoded = _body(body, binary)
    headers = {
        "Accept": "*/*",
        "Host": DOMAIN,
        "User-Agent": USER_AGENT,
        "X-Forwarded-For": SOURCE_IP,
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    if content_type:
        headers["Content-Type"] = content_type
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": API_ID,
            "domainName": DOMAIN,
            "httpMethod": method,
            "identity": {"sourceIp": SOURCE_IP, "userAgent": USER_AGENT},
            "path": f"/prod{path}",
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "resourceId": "abc123",
            "resourcePath": path,
            "stage": "prod",
        },
        "body": payload,
        "isBase64Encoded": encoded,
    }


def through_cloudfront(event: dict, secret: str) -> dict:
    """The event as API Gateway passes on a request that CloudFront forwarded: the viewer's
    headers (the Host is the API's own), plus CloudFront's and the stack's origin header."""
    headers = {
        **event["headers"],
        "via": "2.0 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d.cloudfront.net (CloudFront)",
        "x-amz-cf-id": "Yl0Kq9ZbW1Nq3rU7dGf2eXw8sPq1oVz4tHk6jLm9nBc0aDe5fGh2Ij==",
        "cloudfront-viewer-country": "IE",
        "x-origin-verify": secret,
    }
    if "requestContext" in event and "http" not in event["requestContext"]:  # REST (1.0)
        return {
            **event,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
        }
    return {**event, "headers": headers}


class LambdaContext:
    """The attributes of the context object the Lambda Python runtime passes."""

    function_name = "emotion-face"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:emotion-face"
    memory_limit_in_mb = 2048
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    log_group_name = "/aws/lambda/emotion-face"
    log_stream_name = "2026/11/24/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000
