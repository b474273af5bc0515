"""The deployment's knobs: CDK context values (`cdk deploy -c key=value`, or `context` in
cdk.json), each with a default, parsed and checked once.

Values given with `-c` arrive as strings, values in cdk.json as JSON types; both work.
infra/README.md documents every knob; a test checks that it names all of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

RATE_JS = Path(__file__).resolve().parents[1] / "site" / "js" / "rate.js"
LIMITS_JS = RATE_JS.with_name("limits.js")


def page_constant(path: Path, name: str) -> int:
    """`export const NAME = <n>;` from the page's code: the stack and the page share it."""
    match = re.search(rf"^export const {name} = ([\d_]+);", path.read_text(), re.M)
    if not match:
        raise ValueError(f"{path}: no `export const {name} = <n>;`")
    return int(match[1])


def page_send_rate(path: Path = RATE_JS) -> int:
    """The live page's cap on /face requests per second (all faces together), read from the
    page's own code, so the stack's throttle and the page cannot drift apart."""
    match = re.search(r"export const MAX_REQUESTS_PER_SECOND = (\d+);", path.read_text())
    if not match:
        raise ValueError(f"{path}: no `export const MAX_REQUESTS_PER_SECOND = <n>;`")
    return int(match.group(1))


# The page sends at most this many requests per second while its camera runs.
PAGE_SEND_RATE = page_send_rate()
# Pages one client address may run at once (two tabs, or people behind one NAT) before WAF's
# per-client rule answers 429.
PAGES_PER_CLIENT = 2
# API Gateway base64-encodes a binary body into the Lambda event, which must stay under
# Lambda's 6 MB invocation payload, headers and request context included. Bodies over this
# limit get the function's own 413 (EMOTION_MAX_BODY_BYTES); larger ones never reach it.
LAMBDA_PAYLOAD_BYTES = 6_000_000
EVENT_OVERHEAD_BYTES = 64_000  # headers (HTTP API allows 10 KB) + request context, generously
MAX_BODY_BYTES = page_constant(LIMITS_JS, "MAX_UPLOAD_BYTES")  # the page's, the server's
assert 4 * -(-MAX_BODY_BYTES // 3) + EVENT_OVERHEAD_BYTES < LAMBDA_PAYLOAD_BYTES

# What one call costs through the Lambda handler (Mangum, a real HTTP API v2 event, warm), p50,
# measured with `python -m bench.handler_timing` on the project's 2-core x86_64 machine while
# it was busy (load ~12; 2026-12-06): /face 28.8 ms (p90 56 ms); /faces 204 ms for a 1024 px
# photo as the page sends it, 526 ms (p90 765 ms) for a 4032x3024 one from another client.
# The concurrency the stage lets in is its rates x these durations (infra/README.md).
FACE_CALL_S = 0.03
FACES_CALL_S = 0.53
# Photos one viewer uploads per second at most (one every 5 s): /faces's own stage limit is
# concurrent_viewers x this, as a photo costs FACES_CALL_S / FACE_CALL_S ~ 18 crops.
PHOTOS_PER_VIEWER_PER_S = 0.2

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

ARCHITECTURES = ("arm64", "x86_64")
# The classifier the function serves (EMOTION_MODEL, relative to the image's task root, where
# function/Dockerfile copies both): the ResNet34, or the device's smaller student (about 2.5x
# faster a /face call; figures in docs/benchmarks.md).
MODEL_FILES = {"resnet34": "models/emotion.onnx", "student": "models/emotion-student.onnx"}
REMOVAL_POLICIES = ("retain", "destroy")
PRICE_CLASSES = ("100", "200", "All")


class ConfigError(ValueError):
    """A context value that cannot be used; the message names the knob and what it accepts."""


def _int(name: str, low: int, high: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ConfigError(f"context {name}={raw!r}: expected an integer") from None
        if not low <= value <= high:
            raise ConfigError(f"context {name}={value}: expected {low}..{high}")
        return value

    return parse


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = str(raw).strip()
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
        raise ConfigError(f"context {name}={raw!r}: expected one of {', '.join(choices)}")

    return parse


def _off(raw: Any) -> bool:
    return raw is None or str(raw).strip().lower() in ("none", "off", "")


def _concurrency(raw: Any) -> int | None:
    if _off(raw):
        return None
    return _int("reservedConcurrency", 1, 1000)(raw)


def _per_client(raw: Any) -> int | None:
    if _off(raw):
        return None
    return _int("perClientLimit", 10, 2_000_000_000)(raw)  # AWS WAF's rate-rule bounds


def _email(raw: Any) -> str | None:
    value = "" if raw is None else str(raw).strip()
    if not value:
        return None
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise ConfigError(f"context alarmEmail={raw!r}: expected an e-mail address")
    return value


def _retention(raw: Any) -> int:
    value = _int("logRetentionDays", 1, 3653)(raw)
    if value not in LOG_RETENTION_DAYS:
        allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
        raise ConfigError(f"context logRetentionDays={value}: CloudWatch accepts {allowed}")
    return value


# CloudFront's names carry the stack and the region (`<stack>-<region>-<suffix>`, infra/stack.py).
# The origin access control's, `<stack>-<region>-site`, has the tightest limit: 64 characters
# (the response headers policy's and the web ACL's are 128).
NAME_LIMIT = 64
LONGEST_REGION = "ap-southeast-5"  # 14 characters: the longest AWS region name today
OAC_SUFFIX = "site"
MAX_STACK_NAME = NAME_LIMIT - len(LONGEST_REGION) - len(OAC_SUFFIX) - 2  # 44


def _stack_name(raw: Any) -> str:
    value = str(raw).strip()
    ok = value[:1].isalpha() and all(c.isalnum() or c == "-" for c in value)
    if not ok:
        raise ConfigError(
            f"context stackName={raw!r}: letters, digits and hyphens, starting with a letter"
        )
    if len(value) > MAX_STACK_NAME:
        raise ConfigError(
            f"context stackName={raw!r}: {len(value)} characters; at most {MAX_STACK_NAME}, so "
            f"CloudFront's origin access control name (<stack>-<region>-{OAC_SUFFIX}) fits its "
            f"{NAME_LIMIT}"
        )
    return value


@dataclass(frozen=True)
class Config:
    """Defaults are the production-minded choices; `removalPolicy=destroy` is for dev stacks.

    Sizing (infra/README.md): the stage allows concurrent_viewers x PAGE_SEND_RATE requests/s
    (burst twice that), and one client address PAGES_PER_CLIENT x PAGE_SEND_RATE x 60 per
    minute; a None limit is derived from those in __post_init__."""

    stack_name: str = "EmotionEvaluator"
    architecture: str = "arm64"  # arm64 (Graviton: ~20% cheaper per GB-s) or x86_64
    memory_size: int = 2048  # MB; Lambda's CPU share grows with it (1 vCPU at 1769 MB)
    timeout_seconds: int = 10  # the function; API Gateway's own limit is 30 s
    # Off: a new account's concurrency quota can be 10, and AWS keeps 10 unreserved, so any
    # reservation fails there. The stage throttle bounds concurrency instead (README).
    reserved_concurrency: int | None = None
    log_retention_days: int = 14
    concurrent_viewers: int = 10  # live pages; 10 x 20/s x D fits a quota of 10 (README)
    throttle_rate_limit: int | None = None  # steady requests/s, whole stage; None: derived
    throttle_burst_limit: int | None = None  # bucket size for bursts; None: 2 x rate
    faces_rate_limit: int | None = None  # POST /faces requests/s; None: derived (photos)
    faces_burst_limit: int | None = None  # None: 2 x the /faces rate
    per_client_limit: int | None = None  # WAF: requests per client IP per minute; None: derived
    per_client_limit_enabled: bool = True  # perClientLimit=none: no WAF web ACL
    alarm_email: str | None = None  # also send alarms here (SNS e-mail subscription)
    removal_policy: str = "retain"  # retain: the bucket and logs outlive the stack
    price_class: str = "100"  # CloudFront edge locations: 100 (cheapest), 200, All
    model: str = "resnet34"  # the served classifier: resnet34 or student (MODEL_FILES)

    @classmethod
    def from_context(cls, context: Mapping[str, Any] | Callable[[str], Any]) -> Config:
        """Build from context values; `context` is a mapping or `node.try_get_context`."""
        get = context.get if isinstance(context, Mapping) else context
        values = {}
        for field in fields(cls):
            raw = get(CONTEXT_KEYS[field.name])
            if raw is not None:
                values[field.name] = PARSERS[field.name](raw)
        return cls(**values)

    def __post_init__(self) -> None:
        derived = {
            "throttle_rate_limit": self.concurrent_viewers * PAGE_SEND_RATE,
            "per_client_limit": PAGES_PER_CLIENT * PAGE_SEND_RATE * 60,
        }
        for name, value in derived.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.throttle_burst_limit is None:
            object.__setattr__(self, "throttle_burst_limit", 2 * self.throttle_rate_limit)
        if self.faces_rate_limit is None:
            photos = max(1, round(self.concurrent_viewers * PHOTOS_PER_VIEWER_PER_S))
            object.__setattr__(self, "faces_rate_limit", min(photos, self.throttle_rate_limit))
        if self.faces_burst_limit is None:
            object.__setattr__(self, "faces_burst_limit", 2 * self.faces_rate_limit)
        if not self.per_client_limit_enabled:
            object.__setattr__(self, "per_client_limit", None)

    @property
    def concurrency_needed(self) -> float:
        """Lambda instances busy at once with both limits reached (infra/README.md)."""
        return self.throttle_rate_limit * FACE_CALL_S + self.faces_rate_limit * FACES_CALL_S


# field name -> context key (camelCase, as CDK context keys usually are)
CONTEXT_KEYS = {
    "stack_name": "stackName",
    "architecture": "architecture",
    "memory_size": "memorySize",
    "timeout_seconds": "timeoutSeconds",
    "reserved_concurrency": "reservedConcurrency",
    "log_retention_days": "logRetentionDays",
    "concurrent_viewers": "concurrentViewers",
    "throttle_rate_limit": "throttleRateLimit",
    "throttle_burst_limit": "throttleBurstLimit",
    "faces_rate_limit": "facesRateLimit",
    "faces_burst_limit": "facesBurstLimit",
    "per_client_limit": "perClientLimit",
    "per_client_limit_enabled": "perClientLimit",
    "alarm_email": "alarmEmail",
    "removal_policy": "removalPolicy",
    "price_class": "priceClass",
    "model": "model",
}

PARSERS: dict[str, Callable[[Any], Any]] = {
    "stack_name": _stack_name,
    "architecture": _choice("architecture", ARCHITECTURES),
    "memory_size": _int("memorySize", 128, 10240),
    "timeout_seconds": _int("timeoutSeconds", 1, 29),
    "reserved_concurrency": _concurrency,
    "log_retention_days": _retention,
    "concurrent_viewers": _int("concurrentViewers", 1, 1000),
    "throttle_rate_limit": _int("throttleRateLimit", 1, 10000),
    "throttle_burst_limit": _int("throttleBurstLimit", 1, 5000),
    "faces_rate_limit": _int("facesRateLimit", 1, 10000),
    "faces_burst_limit": _int("facesBurstLimit", 1, 5000),
    "per_client_limit": _per_client,
    "per_client_limit_enabled": lambda raw: not _off(raw),
    "alarm_email": _email,
    "removal_policy": _choice("removalPolicy", REMOVAL_POLICIES),
    "price_class": _choice("priceClass", PRICE_CLASSES),
    "model": _choice("model", tuple(MODEL_FILES)),
}
