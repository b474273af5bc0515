"""The context knobs: parsing, checking, and that infra/README.md documents every one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.config import (
    CONTEXT_KEYS,
    PAGE_SEND_RATE,
    PAGES_PER_CLIENT,
    PARSERS,
    Config,
    ConfigError,
)
from infra.headers import parse_hsts, response_headers

README = Path(__file__).resolve().parents[2] / "infra" / "README.md"


def test_defaults():
    config = Config.from_context({})
    assert config == Config()
    assert config.architecture == "arm64"
    assert config.memory_size == 2048
    assert config.timeout_seconds == 10
    assert config.reserved_concurrency is None  # new accounts cannot reserve any
    assert config.throttle_rate_limit == config.concurrent_viewers * PAGE_SEND_RATE
    assert config.throttle_burst_limit == 2 * config.throttle_rate_limit
    assert config.per_client_limit == PAGES_PER_CLIENT * PAGE_SEND_RATE * 60
    assert config.alarm_email is None
    assert config.removal_policy == "retain"
    assert config.model == "resnet34"  # the student serves only when asked (-c model=student)


def test_every_field_has_a_context_key_and_parser():
    fields = set(Config.__dataclass_fields__)
    assert set(CONTEXT_KEYS) == fields == set(PARSERS)


def test_cli_strings_and_json_values_both_parse():
    from_cli = Config.from_context(
        {"memorySize": "1024", "reservedConcurrency": "none", "architecture": "X86_64"}
    )
    from_json = Config.from_context(
        {"memorySize": 1024, "reservedConcurrency": None, "architecture": "x86_64"}
    )
    assert from_cli.memory_size == from_json.memory_size == 1024
    assert from_cli.reserved_concurrency is None
    assert from_json.reserved_concurrency is None
    assert from_cli.architecture == from_json.architecture == "x86_64"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("architecture", "sparc", "arm64, x86_64"),
        ("memorySize", "64", "128..10240"),
        ("memorySize", "lots", "expected an integer"),
        ("timeoutSeconds", "60", "1..29"),
        ("reservedConcurrency", "0", "1..1000"),
        ("logRetentionDays", "10", "CloudWatch accepts"),
        ("removalPolicy", "keep", "retain, destroy"),
        ("priceClass", "300", "100, 200, All"),
        ("throttleRateLimit", "0", "1..10000"),
        ("stackName", "1bad name", "letters, digits and hyphens"),
        ("stackName", "E" * 45, "at most 44"),  # would pass synth, fail at deploy (OAC name)
        ("facesRateLimit", "0", "1..10000"),
        ("perClientLimit", "5", "10..2000000000"),
        ("concurrentViewers", "0", "1..1000"),
        ("alarmEmail", "not-an-address", "e-mail address"),
        ("model", "vgg13", "resnet34, student"),
    ],
)
def test_bad_values_are_refused_with_the_knob_named(key, value, message):
    with pytest.raises(ConfigError) as error:
        Config.from_context({key: value})
    assert key in str(error.value) and message in str(error.value)


def test_readme_documents_every_knob():
    text = README.read_text()
    for key in CONTEXT_KEYS.values():
        assert re.search(rf"`{key}`", text), f"infra/README.md does not document `{key}`"
    for command in ("make synth", "make deploy", "make smoke STACK=", "cdk bootstrap", "destroy"):
        assert command in text


def test_hsts_parsing():
    assert parse_hsts("max-age=63072000; includeSubDomains") == (63072000, True, False)
    assert parse_hsts("max-age=1;preload") == (1, False, True)
    with pytest.raises(ValueError):
        parse_hsts("includeSubDomains")
    with pytest.raises(ValueError):
        parse_hsts("max-age=1; bogus")


def test_header_file_problems_are_refused():
    with pytest.raises(ValueError, match="Referrer-Policy"):
        response_headers({"Referrer-Policy": "sometimes"})
    with pytest.raises(ValueError, match="X-Frame-Options"):
        response_headers({"X-Frame-Options": "ALLOW-FROM https://example.com"})
    _security, custom = response_headers({"X-Custom": "1"})
    assert [h.header for h in custom.custom_headers] == ["X-Custom"]


def test_the_longest_accepted_stack_name_fits_cloudfronts_names():
    from infra.config import LONGEST_REGION, MAX_STACK_NAME, NAME_LIMIT, OAC_SUFFIX

    name = Config.from_context({"stackName": "E" * MAX_STACK_NAME}).stack_name
    assert len(f"{name}-{LONGEST_REGION}-{OAC_SUFFIX}") == NAME_LIMIT == 64


def test_faces_has_its_own_lower_limit_and_the_default_fits_a_new_account():
    """/faces costs ~20 crops (infra/config.py's handler timings): its own limit, a fraction
    of the stage's; with both full, a new account's concurrency quota of 10 still holds."""
    config = Config()
    assert config.faces_rate_limit == 2 and config.faces_burst_limit == 4
    assert config.faces_rate_limit < config.throttle_rate_limit / 20
    assert config.concurrency_needed < 10
    assert Config(concurrent_viewers=1).faces_rate_limit == 1  # never 0
