"""Every bad request gets its documented 4xx JSON error; none gets a 5xx."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from emotion.app import create_app
from face_images import astronaut_face, encode

ROOT = Path(__file__).resolve().parents[2]
FORM = "application/x-www-form-urlencoded"


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny (wrong) data chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


FACE = astronaut_face().resize((96, 96))
PNG = encode(FACE)
JPEG = encode(FACE.convert("RGB"), "JPEG", quality=90)
BOMB = encode(Image.new("L", (4100, 4100)))  # 16.8 Mpx of zeros: a few KB compressed
PPM = encode(FACE.convert("RGB"), "PPM")
MULTIPART = "multipart/form-data; boundary=XyZ"


def multipart(*parts: str) -> bytes:
    return ("".join(f"--XyZ\r\n{p}\r\n" for p in parts) + "--XyZ--\r\n").encode()


# (case, method, path, content type, body, status, error code)
CASES = [
    ("empty body", "POST", "/face", FORM, b"", 400, "empty_body"),
    ("empty raw image", "POST", "/face", "image/jpeg", b"", 400, "empty_body"),
    ("form without the field", "POST", "/face", FORM, b"other=1", 400, "missing_image"),
    ("empty field", "POST", "/face", FORM, b"imgBase64=", 400, "missing_image"),
    ("not base64", "POST", "/face", FORM, b"imgBase64=%21%21%40%40", 400, "bad_base64"),
    ("padding inside", "POST", "/face", FORM, b"imgBase64=QU=JD", 400, "bad_base64"),
    ("base64 of text", "POST", "/face", FORM, b"imgBase64=" + b64(b"hello world, no image").encode(), 400, "not_an_image"),
    ("data URL of text", "POST", "/face", FORM, f"imgBase64=data:text/plain;base64,{b64(b'hi')}".encode(), 415, "unsupported_media_type"),
    ("data URL of SVG", "POST", "/face", FORM, f"imgBase64=data:image/svg%2Bxml;base64,{b64(b'<svg/>')}".encode(), 415, "unsupported_media_type"),
    ("data URL not base64", "POST", "/face", FORM, b"imgBase64=data:image/png,abc", 400, "bad_base64"),
    ("truncated PNG", "POST", "/face", "image/png", PNG[: len(PNG) * 2 // 3], 400, "truncated_image"),
    ("truncated JPEG", "POST", "/face", "image/jpeg", JPEG[: len(JPEG) // 2], 400, "truncated_image"),
    ("JPEG header only", "POST", "/face", "image/jpeg", JPEG[:20], 400, "not_an_image"),
    ("0x0 PNG", "POST", "/face", "image/png", png_header(0, 0), 400, "not_an_image"),
    ("1x1 PNG", "POST", "/face", "image/png", encode(Image.new("L", (1, 1))), 400, "image_too_small"),
    ("1000x3 PNG", "POST", "/face", "image/png", encode(Image.new("L", (1000, 3))), 400, "image_too_small"),
    ("header claims 60000x60000", "POST", "/face", "image/png", png_header(60000, 60000), 413, "image_too_large"),
    ("header claims 5000x5000", "POST", "/face", "image/png", png_header(5000, 5000), 413, "image_too_large"),
    ("compressed bomb", "POST", "/face", "image/png", BOMB, 413, "image_too_large"),
    ("PPM image", "POST", "/face", "image/png", PPM, 415, "unsupported_image_format"),
    ("text as image/png", "POST", "/face", "image/png", b"just text", 400, "not_an_image"),
    ("text/plain", "POST", "/face", "text/plain", b"hello", 415, "unsupported_media_type"),
    ("application/xml", "POST", "/face", "application/xml", b"<a/>", 415, "unsupported_media_type"),
    ("image/gif raw body", "POST", "/face", "image/gif", encode(FACE, "GIF"), 415, "unsupported_media_type"),
    ("no content type", "POST", "/face", None, PNG, 415, "unsupported_media_type"),
    ("malformed JSON", "POST", "/face", "application/json", b"{imgBase64:", 400, "malformed_json"),
    ("JSON array", "POST", "/face", "application/json", b"[1, 2]", 400, "missing_image"),
    ("JSON number field", "POST", "/face", "application/json", b'{"imgBase64": 5}', 400, "missing_image"),
    ("JSON without field", "POST", "/face", "application/json", b'{"image": "abc"}', 400, "missing_image"),
    ("multipart, bad boundary", "POST", "/face", MULTIPART, b"--other\r\nnonsense", 400, "malformed_form"),
    ("multipart, no field", "POST", "/face", MULTIPART, multipart('Content-Disposition: form-data; name="x"\r\n\r\n1'), 400, "missing_image"),
    ("multipart, two files", "POST", "/face", MULTIPART, multipart(
        'Content-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\nAAAA',
        'Content-Disposition: form-data; name="file"; filename="b.png"\r\nContent-Type: image/png\r\n\r\nAAAA',
    ), 400, "malformed_form"),
    ("body over the limit", "POST", "/face", "image/jpeg", b"\xff" * 5_000_001, 413, "body_too_large"),
    ("GET /face", "GET", "/face", None, None, 405, "method_not_allowed"),
    ("PUT /face", "PUT", "/face", "image/png", PNG, 405, "method_not_allowed"),
    ("DELETE /face", "DELETE", "/face", None, None, 405, "method_not_allowed"),
    ("POST /health", "POST", "/health", FORM, b"a=1", 405, "method_not_allowed"),
    ("unknown path", "GET", "/nowhere", None, None, 404, "not_found"),
    ("trailing slash, no redirect", "POST", "/face/", "image/png", PNG, 404, "not_found"),
    ("JSON nested 1,000 deep", "POST", "/face", "application/json", b"[" * 1000, 400, "malformed_json"),
    ("JSON nested 100,000 deep", "POST", "/face", "application/json", b'{"a":' * 100_000, 400, "malformed_json"),
    ("a 1 MB form of &", "POST", "/face", FORM, b"&" * 1_000_000, 400, "missing_image"),
    ("10,000 multipart parts", "POST", "/face", MULTIPART, multipart(*['Content-Disposition: form-data; name="x"\r\n\r\n1'] * 10_000), 400, "malformed_form"),
    ("max_faces in full-width digits", "POST", "/faces?max_faces=%EF%BC%95", "image/png", PNG, 400, "bad_parameter"),
    ("max_faces with an underscore", "POST", "/faces?max_faces=1_0", "image/png", PNG, 400, "bad_parameter"),
    ("max_faces with a plus", "POST", "/faces?max_faces=%2B5", "image/png", PNG, 400, "bad_parameter"),
    ("min_size with a space", "POST", "/faces?min_size=%205", "image/png", PNG, 400, "bad_parameter"),
]  # fmt: skip
# Documented errors that need a slow client or a busy server: test_slow_clients.py, test_pool.py.
# A call that skipped CloudFront: test_lambda_handler.py.
ELSEWHERE = {(403, "forbidden"), (408, "body_timeout"), (503, "busy")}


@pytest.mark.parametrize(
    ("method", "path", "content_type", "body", "status", "code"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_gets_its_4xx(client, method, path, content_type, body, status, code):
    headers = {"content-type": content_type} if content_type else {}
    response = client.request(method, path, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert payload["error"] == code
    assert isinstance(payload["detail"], str) and payload["detail"]


def documented_error_table() -> set[tuple[int, str]]:
    """(status, code) pairs of docs/api.md's error table: `| 400 | `a`, `b` | when |`."""
    text = (ROOT / "docs" / "api.md").read_text()
    table = text[text.index("| status | `error` | when |") :].split("\n\n")[0]
    pairs = set()
    for status, codes in re.findall(r"^\| (\d{3}) \| ([^|]+) \|", table, re.M):
        pairs |= {(int(status), code) for code in re.findall(r"`(\w+)`", codes)}
    return pairs


def test_every_documented_error_is_in_the_table_and_nothing_else():
    documented = documented_error_table()
    assert len(documented) >= 10  # the table in docs/api.md was found and read
    answered = {(case[5], case[6]) for case in CASES} - {(400, "bad_parameter")}
    assert answered | ELSEWHERE == documented


def test_errors_never_echo_the_image(client):
    text = b64(b"hello world, no image")
    response = client.post("/face", content=f"imgBase64={text}", headers={"content-type": FORM})
    assert response.status_code == 400
    assert text not in response.text


def test_declared_length_over_limit_is_refused_before_reading(client):
    response = client.post(
        "/face",
        content=b"short",
        headers={"content-type": "image/png", "content-length": "9999999999"},
    )
    assert response.status_code == 413


def test_limits_are_configurable(settings, model):
    strict = TestClient(create_app(replace(settings, max_body_bytes=4000, max_pixels=2500), model))

    def post(image: Image.Image, fmt: str = "JPEG") -> str:
        raw = encode(image, fmt)
        response = strict.post("/face", content=raw, headers={"content-type": f"image/{fmt}"})
        return response.json().get("error", "ok")

    face = astronaut_face()
    assert post(face.resize((120, 120)), "PNG") == "body_too_large"
    assert post(face.resize((60, 60))) == "image_too_large"
    assert post(face.resize((40, 40))) == "ok"
