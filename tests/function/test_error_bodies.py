"""Every error body is `{"error", "detail"}` with one plain sentence: never a traceback, a
newline, a file path or an exception's repr, on either route, for every bad-input case."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .test_bad_input import CASES

ROOT = Path(__file__).resolve().parents[2]
PHOTO_CASES = [
    ("bad max_faces", "POST", "/faces?max_faces=abc", "image/png", b"x", 400, "bad_parameter"),
    ("bad min_size", "POST", "/faces?min_size=-1", "image/png", b"x", 400, "bad_parameter"),
]
# Every /face case again on /faces (same input handling), then the /faces-only ones.
ALL = [(f"/face: {c[0]}", *c[1:]) for c in CASES]
ALL += [(f"/faces: {c[0]}", c[1], "/faces", *c[3:]) for c in CASES if c[2] == "/face"]
ALL += [(f"/faces: {c[0]}", *c[1:]) for c in PHOTO_CASES]
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|line \d+|site-packages|/usr/|/home/|/tmp/|/var/|/work/"
    r"|Error\(|Exception\b|<[\w.]+ object at 0x|\braise |\w\("  # a source line, a repr
)


def assert_plain(body: dict) -> None:
    assert set(body) == {"error", "detail"}
    detail = body["detail"]
    assert isinstance(detail, str) and 0 < len(detail) <= 300, detail
    assert "\n" not in detail and "\r" not in detail, detail
    assert str(ROOT) not in detail, detail
    assert not LEAKS.search(detail), detail


@pytest.mark.parametrize(
    ("method", "path", "content_type", "body", "status"),
    [case[1:6] for case in ALL],
    ids=[case[0] for case in ALL],
)
def test_no_error_body_holds_a_traceback_a_newline_or_a_path(
    client, method, path, content_type, body, status
):
    headers = {"content-type": content_type} if content_type else {}
    response = client.request(method, path, content=body, headers=headers)
    assert response.status_code == status
    assert_plain(response.json())
