"""Property-based hardening: schemathesis drives the API from its OpenAPI document (bounded
examples) and hypothesis mutates real images (truncated, bit-flipped, huge declared sizes);
nothing may answer 5xx, and no image larger than the pixel limit is ever decoded."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from emotion.app import create_app
from emotion.decode import decode_image
from emotion.errors import ClientError
from emotion.settings import Settings
from face_images import astronaut_face, encode

from .conftest import DETECTOR, MODEL, ROOT

MAX_PIXELS = 1_000_000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# Built at collection (schemathesis parametrizes one test per documented operation); the
# same app the other tests use, with the shipped model and detector.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(
        Settings(MODEL, None, 5_000_000, 16_000_000, 8, threads=0, detector_path=DETECTOR),
    ),
)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_from_its_document_never_5xx(case):
    case.call_and_validate(checks=CHECKS)


def _samples() -> list[bytes]:
    face = astronaut_face().resize((64, 64))
    return [
        encode(face, "PNG"),
        encode(face, "JPEG", quality=85),
        encode(face, "WEBP"),
        encode(face, "GIF"),
        encode(face.convert("L"), "TIFF"),
        encode(face, "BMP"),
    ]


SAMPLES = _samples()


@st.composite
def mutated_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "size"]))
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if kind == "overwrite":  # a run of arbitrary bytes somewhere, often the header
        start = draw(st.integers(0, min(len(data) - 1, 64)))
        chunk = draw(st.binary(min_size=1, max_size=16))
        data[start : start + len(chunk)] = chunk
        return bytes(data)
    # a huge declared size: the first width/height-looking field set to a big number
    start = draw(st.integers(0, min(len(data) - 4, 40)))
    data[start : start + 4] = struct.pack(">HH", draw(st.integers(1, 65535)), 65535)
    return bytes(data)


@given(raw=mutated_images())
@settings(max_examples=150, deadline=None, derandomize=True)
def test_mutated_images_decode_or_are_refused_with_a_4xx(raw):
    try:
        image = decode_image(raw, MAX_PIXELS, 8)
    except ClientError as e:
        assert 400 <= e.status < 500
    else:
        assert image.width * image.height <= MAX_PIXELS
        assert image.mode in ("L", "RGB")


@given(raw=mutated_images(), route=st.sampled_from(["/face", "/faces"]))
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_mutated_images_never_5xx_through_the_api(client, raw, route):
    response = client.post(route, content=raw, headers={"content-type": "image/png"})
    assert response.status_code < 500
    if response.status_code >= 400:
        assert set(response.json()) == {"error", "detail"}


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height and whose data is a small zlib bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * min(height, 64), 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def _gif_declaring(width: int, height: int) -> bytes:
    raw = bytearray(encode(Image.new("L", (16, 16)), "GIF"))
    raw[6:10] = struct.pack("<HH", width, height)  # logical screen
    i = raw.index(b",")  # image descriptor
    raw[i + 5 : i + 9] = struct.pack("<HH", width, height)
    return bytes(raw)


def _bmp_declaring(width: int, height: int) -> bytes:
    raw = bytearray(encode(Image.new("RGB", (16, 16)), "BMP"))
    raw[18:26] = struct.pack("<ii", width, height)
    return bytes(raw)


def _jpeg_declaring(width: int, height: int) -> bytes:
    raw = bytearray(encode(Image.new("L", (16, 16)), "JPEG"))
    i = raw.index(b"\xff\xc0")  # start of frame: length, precision, height, width
    raw[i + 5 : i + 9] = struct.pack(">HH", height, width)
    return bytes(raw)


BOMBS = {
    "png": _png_declaring(60_000, 60_000),
    "png-just-over": _png_declaring(1001, 1000),
    "gif": _gif_declaring(65_535, 65_535),
    "bmp": _bmp_declaring(40_000, 40_000),
    "jpeg": _jpeg_declaring(65_000, 65_000),
}

# Runs in a fresh process so its peak RSS says what decoding these images cost.
PROBE = """
import json, resource, sys
from emotion.app import create_app
from emotion.decode import decode_image
from emotion.errors import ClientError
def peak_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
bombs = json.loads(sys.stdin.read())
before = peak_mb()
answers = {}
for name, hexed in bombs.items():
    try:
        image = decode_image(bytes.fromhex(hexed), %d, 8)
        answers[name] = f"decoded {image.size}"
    except ClientError as e:
        answers[name] = f"{e.status} {e.code}"
print(json.dumps({"answers": answers, "grew_mb": peak_mb() - before}))
"""


def test_huge_declared_sizes_are_refused_before_any_pixel_is_allocated():
    # The child finds `emotion` as pytest does (pyproject's pythonpath), with or without make's
    # PYTHONPATH in the environment.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "function"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", PROBE % MAX_PIXELS],
        env=env,
        input=json.dumps({k: v.hex() for k, v in BOMBS.items()}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    for name, answer in result["answers"].items():
        assert answer.startswith("413") or answer.startswith("400"), (name, answer)
    assert result["answers"]["png"] == "413 image_too_large"
    assert result["answers"]["png-just-over"] == "413 image_too_large"
    # 60000x60000 would be 3.6 GB; the pixel limit allows 1 MB of 8-bit pixels.
    assert result["grew_mb"] < 4 * MAX_PIXELS / 1e6 + 20
