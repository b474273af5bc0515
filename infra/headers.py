"""site/headers.json -> a CloudFront response-headers policy.

One source of truth: the local server (`make run`) sends the same file's headers on the page,
so the page is tested locally under the exact policy CloudFront will send. CloudFront takes
the well-known security headers as typed settings (it refuses them as custom headers), every
other header as a custom header.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_cloudfront as cloudfront

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADERS_FILE = REPO_ROOT / "site" / "headers.json"

# Headers CloudFront manages as "security headers" (not allowed as custom headers).
SECURITY_HEADERS = {
    "content-security-policy",
    "strict-transport-security",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "x-xss-protection",
}


def load_headers(path: Path = HEADERS_FILE) -> dict[str, str]:
    headers = json.loads(Path(path).read_text())
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ValueError(f"{path}: expected a JSON object of header name -> string value")
    return headers


def parse_hsts(value: str) -> tuple[int, bool, bool]:
    """'max-age=63072000; includeSubDomains; preload' -> (max_age, include_subdomains, preload)."""
    directives = [d.strip() for d in value.split(";") if d.strip()]
    max_age = None
    include_subdomains = preload = False
    for directive in directives:
        key, _, arg = directive.partition("=")
        key = key.strip().lower()
        if key == "max-age" and re.fullmatch(r"\d+", arg.strip()):
            max_age = int(arg.strip())
        elif key == "includesubdomains":
            include_subdomains = True
        elif key == "preload":
            preload = True
        else:
            raise ValueError(f"Strict-Transport-Security: unknown directive {directive!r}")
    if max_age is None:
        raise ValueError(f"Strict-Transport-Security without max-age: {value!r}")
    return max_age, include_subdomains, preload


def _referrer_policy(value: str) -> cloudfront.HeadersReferrerPolicy:
    name = value.strip().upper().replace("-", "_")
    try:
        return getattr(cloudfront.HeadersReferrerPolicy, name)
    except AttributeError:
        raise ValueError(f"Referrer-Policy {value!r} is not one CloudFront supports") from None


def _frame_option(value: str) -> cloudfront.HeadersFrameOption:
    name = value.strip().upper()
    if name not in ("DENY", "SAMEORIGIN"):
        raise ValueError(f"X-Frame-Options {value!r}: CloudFront supports DENY or SAMEORIGIN")
    return getattr(cloudfront.HeadersFrameOption, name)


def response_headers(
    headers: dict[str, str],
) -> tuple[cloudfront.ResponseSecurityHeadersBehavior, cloudfront.ResponseCustomHeadersBehavior]:
    """The policy's two halves. Every header overrides whatever an origin sends."""
    security: dict[str, object] = {}
    custom: list[cloudfront.ResponseCustomHeader] = []
    for name, value in headers.items():
        key = name.lower()
        if key == "content-security-policy":
            security["content_security_policy"] = cloudfront.ResponseHeadersContentSecurityPolicy(
                content_security_policy=value, override=True
            )
        elif key == "strict-transport-security":
            max_age, subdomains, preload = parse_hsts(value)
            security["strict_transport_security"] = (
                cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.seconds(max_age),
                    include_subdomains=subdomains,
                    preload=preload,
                    override=True,
                )
            )
        elif key == "x-content-type-options":
            if value.strip().lower() != "nosniff":
                raise ValueError(f"X-Content-Type-Options {value!r}: only nosniff exists")
            security["content_type_options"] = cloudfront.ResponseHeadersContentTypeOptions(
                override=True
            )
        elif key == "x-frame-options":
            security["frame_options"] = cloudfront.ResponseHeadersFrameOptions(
                frame_option=_frame_option(value), override=True
            )
        elif key == "referrer-policy":
            security["referrer_policy"] = cloudfront.ResponseHeadersReferrerPolicy(
                referrer_policy=_referrer_policy(value), override=True
            )
        elif key == "x-xss-protection":
            raise ValueError("X-XSS-Protection is obsolete; use the Content-Security-Policy")
        else:
            custom.append(cloudfront.ResponseCustomHeader(header=name, value=value, override=True))
    return (
        cloudfront.ResponseSecurityHeadersBehavior(**security),
        cloudfront.ResponseCustomHeadersBehavior(custom_headers=custom),
    )
