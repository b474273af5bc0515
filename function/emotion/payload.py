"""An HTTP request -> the image bytes it carries (form, JSON, or raw body).

Sizes are enforced while reading, before anything is decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import AsyncIterator

import anyio
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from emotion.errors import bad_request, disconnected, timed_out, too_large, unsupported

FIELD = "imgBase64"  # the seed client's form field
FILE_FIELDS = ("image", "file")  # multipart uploads of the image itself
RAW_IMAGE_TYPES = {"image/jpeg", "image/png", "image/webp"}
DATA_URL_TYPES = RAW_IMAGE_TYPES | {"image/jpg", "image/gif", "image/bmp", "image/tiff"}
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?),", re.I)
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=_-]")


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body, on the event loop: at most `limit` bytes within `timeout` seconds."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _body_too_large(limit)
    chunks, size = [], 0
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _body_too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise timed_out(f"The request body did not arrive within {timeout:g} s.") from None
    except ClientDisconnect:
        raise disconnected() from None
    return b"".join(chunks)


def image_bytes(headers: Headers, body: bytes, max_body: int) -> bytes:
    """The image a body carries. CPU work (a form can be megabytes of fields): run it in the
    worker pool, never on the event loop."""
    media_type = content_type(headers)
    if not body:
        raise bad_request("empty_body", f"The request has no body; send the image in '{FIELD}'.")
    if media_type == "application/x-www-form-urlencoded":
        return _from_form(FormParser(headers, _once(body), max_part_size=max_body))
    if media_type == "multipart/form-data":
        parser = MultiPartParser(
            headers, _once(body), max_files=1, max_fields=8, max_part_size=max_body
        )
        # Every part stays in memory (the body limit bounds it): a face is never written to
        # disk, as Starlette's default (a temporary file past 1 MB) would.
        parser.spool_max_size = max_body + 1
        return _from_form(parser)
    if media_type == "application/json":
        return _from_json(body)
    if media_type in RAW_IMAGE_TYPES:
        return body
    shown = media_type or "none"
    raise unsupported(
        "unsupported_media_type",
        f"Content-Type {shown!r} is not accepted: send a form, JSON, or an image/jpeg, "
        "image/png or image/webp body.",
    )


def _body_too_large(limit: int):
    return too_large("body_too_large", f"The request body is over the {limit:,}-byte limit.")


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _from_form(parser: FormParser | MultiPartParser) -> bytes:
    # Starlette's parsers are coroutines that here never wait (the body and every part are in
    # memory): step one through to its end on this worker thread. asyncio.run took 0.4 ms of
    # /face's 9 (a new loop each time, and a task whose repr formats the whole body).
    steps = _form_image(parser)
    try:
        steps.send(None)
    except StopIteration as done:
        return done.value
    steps.close()
    raise RuntimeError("the form parser waited, with the whole body in memory")


async def _form_image(parser: FormParser | MultiPartParser) -> bytes:
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise bad_request("malformed_form", f"The form could not be parsed: {e.message}") from None
    try:
        for name in FILE_FIELDS:
            value = form.get(name)
            if isinstance(value, UploadFile):
                return _file_part(await value.read())
        value = form.get(FIELD)
        if isinstance(value, UploadFile):
            return _file_part(await value.read())
        if not value:
            raise bad_request("missing_image", f"The form has no '{FIELD}' field.")
        return decode_base64(value)
    finally:
        await form.close()


def _file_part(content: bytes) -> bytes:
    """A file part holds the image itself or, as `curl -F imgBase64=@face.txt` sends it, a
    text file with a data URL or base64. Every image format starts with bytes outside the
    base64 alphabet, so the two cannot be mistaken for each other."""
    text = content.strip()
    if text.startswith(b"data:") or (text and not _NOT_BASE64.search(re.sub(rb"\s", b"", text))):
        return decode_base64(text.decode("ascii", "replace"))
    return content


def _from_json(body: bytes) -> bytes:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("malformed_json", "The body is not valid JSON.") from None
    except RecursionError:  # nesting deeper than the parser's stack: `[[[[...`
        raise bad_request("malformed_json", "The JSON is nested too deeply.") from None
    value = document.get(FIELD) if isinstance(document, dict) else None
    if not isinstance(value, str) or not value:
        raise bad_request("missing_image", f"The JSON object has no '{FIELD}' string.")
    return decode_base64(value)


def decode_base64(text: str) -> bytes:
    """A data URL or bare base64; tolerant of line breaks, the URL-safe alphabet and
    missing padding, and of '+' turned into ' ' by a client that forgot to URL-encode."""
    text = text.strip()
    if match := _DATA_URL.match(text):
        declared = (match["type"] or "").lower()
        if declared and declared not in DATA_URL_TYPES:
            raise unsupported(
                "unsupported_media_type",
                f"The data URL holds {declared!r}; send PNG, JPEG, WebP, GIF, BMP or TIFF.",
            )
        if ";base64" not in match["params"].lower():
            raise bad_request("bad_base64", "The data URL is not base64-encoded.")
        text = text[match.end() :]
    raw = re.sub(rb"[\r\n\t]", b"", text.encode("ascii", "replace")).replace(b" ", b"+")
    if not raw or _NOT_BASE64.search(raw):
        raise bad_request("bad_base64", f"'{FIELD}' is not base64.")
    raw = raw.rstrip(b"=").replace(b"-", b"+").replace(b"_", b"/")
    try:
        return base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise bad_request("bad_base64", f"'{FIELD}' is not valid base64.") from None


def content_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()
