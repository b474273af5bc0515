"""The deployment's knobs: CDK context values (`cdk deploy -c key=value`, or `context` in
cdk.json), each with a default, parsed and checked once.

Values given with `-c` arrive as strings, values in cdk.json as JSON types; both work.
infra/README.md documents every knob; a test checks that it names all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

ARCHITECTURES = ("arm64", "x86_64")
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


def _concurrency(raw: Any) -> int | None:
    if raw is None or str(raw).strip().lower() in ("none", "off", ""):
        return None
    return _int("reservedConcurrency", 1, 1000)(raw)


def _retention(raw: Any) -> int:
    value = _int("logRetentionDays", 1, 3653)(raw)
    if value not in LOG_RETENTION_DAYS:
        allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
        raise ConfigError(f"context logRetentionDays={value}: CloudWatch accepts {allowed}")
    return value


def _stack_name(raw: Any) -> str:
    value = str(raw).strip()
    ok = value[:1].isalpha() and all(c.isalnum() or c == "-" for c in value)
    if not ok or len(value) > 128:
        raise ConfigError(
            f"context stackName={raw!r}: letters, digits and hyphens, starting with a letter"
        )
    return value


@dataclass(frozen=True)
class Config:
    """Defaults are the production-minded choices; `removalPolicy=destroy` is for dev stacks."""

    stack_name: str = "EmotionEvaluator"
    architecture: str = "arm64"  # arm64 (Graviton: ~20% cheaper per GB-s) or x86_64
    memory_size: int = 2048  # MB; Lambda's CPU share grows with it (1 vCPU at 1769 MB)
    timeout_seconds: int = 10  # the function; API Gateway's own limit is 30 s
    reserved_concurrency: int | None = 10  # cost guard: at most this many at once; None: off
    log_retention_days: int = 14
    throttle_rate_limit: int = 20  # steady requests per second, whole API stage
    throttle_burst_limit: int = 40  # bucket size for bursts
    removal_policy: str = "retain"  # retain: the bucket and logs outlive the stack
    price_class: str = "100"  # CloudFront edge locations: 100 (cheapest), 200, All

    @classmethod
    def from_context(cls, context: Mapping[str, Any] | Callable[[str], Any]) -> Config:
        """Build from context values; `context` is a mapping or `node.try_get_context`."""
        get = context.get if isinstance(context, Mapping) else context
        values = {}
        for field in fields(cls):
            raw = get(CONTEXT_KEYS[field.name])
            if raw is not None:
                values[field.name] = PARSERS[field.name](raw)
        config = cls(**values)
        if config.throttle_burst_limit < 1 or config.throttle_rate_limit < 1:
            raise ConfigError("throttle limits must be at least 1")
        return config


# field name -> context key (camelCase, as CDK context keys usually are)
CONTEXT_KEYS = {
    "stack_name": "stackName",
    "architecture": "architecture",
    "memory_size": "memorySize",
    "timeout_seconds": "timeoutSeconds",
    "reserved_concurrency": "reservedConcurrency",
    "log_retention_days": "logRetentionDays",
    "throttle_rate_limit": "throttleRateLimit",
    "throttle_burst_limit": "throttleBurstLimit",
    "removal_policy": "removalPolicy",
    "price_class": "priceClass",
}

PARSERS: dict[str, Callable[[Any], Any]] = {
    "stack_name": _stack_name,
    "architecture": _choice("architecture", ARCHITECTURES),
    "memory_size": _int("memorySize", 128, 10240),
    "timeout_seconds": _int("timeoutSeconds", 1, 29),
    "reserved_concurrency": _concurrency,
    "log_retention_days": _retention,
    "throttle_rate_limit": _int("throttleRateLimit", 1, 10000),
    "throttle_burst_limit": _int("throttleBurstLimit", 1, 5000),
    "removal_policy": _choice("removalPolicy", REMOVAL_POLICIES),
    "price_class": _choice("priceClass", PRICE_CLASSES),
}
