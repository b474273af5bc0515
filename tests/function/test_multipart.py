"""Multipart uploads as curl sends them: `-F file=@face.png`, `-F image=@face.png`, and
`-F imgBase64=@face.txt` (a file part holding the data URL docs/api.md's example writes)."""

from __future__ import annotations

import base64

import pytest

from face_images import astronaut_face, data_url, encode

PNG = encode(astronaut_face().resize((96, 96)))
JPEG = encode(astronaut_face(), "JPEG", quality=90)


def top(response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["top"]


@pytest.mark.parametrize("field", ["file", "image"])
def test_an_image_file_part(client, field):
    assert top(client.post("/face", files={field: ("face.png", PNG, "image/png")})) == "Happiness"


@pytest.mark.parametrize(
    "text",
    [
        data_url(JPEG, "image/jpeg") + "\n",  # what docs/api.md's python one-liner writes
        data_url(PNG),
        base64.b64encode(PNG).decode() + "\n",  # bare base64
        base64.encodebytes(PNG).decode(),  # base64 wrapped at 76 columns
    ],
    ids=["jpeg data URL", "png data URL", "bare base64", "wrapped base64"],
)
@pytest.mark.parametrize("field", ["imgBase64", "file"])
def test_a_text_file_part_holding_base64(client, field, text):
    files = {field: ("face.txt", text.encode(), "text/plain")}
    assert top(client.post("/face", files=files)) == "Happiness"


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"hello, this is not an image\n", 400, "not_an_image"),
        (b"data:text/plain;base64,aGk=\n", 415, "unsupported_media_type"),
        (b"data:image/png;base64,!!!!\n", 400, "bad_base64"),
        (PNG[:200], 400, "truncated_image"),
    ],
    ids=["text", "data URL of text", "data URL, not base64", "truncated PNG"],
)
def test_a_bad_file_part_gets_its_4xx(client, content, status, code):
    response = client.post("/face", files={"imgBase64": ("face.txt", content, "text/plain")})
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
