"""Client errors: a status, a short machine code and a sentence for a person."""

from __future__ import annotations


class ClientError(Exception):
    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}

    def as_json(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}


def bad_request(code: str, detail: str) -> ClientError:
    return ClientError(400, code, detail)


def too_large(code: str, detail: str) -> ClientError:
    return ClientError(413, code, detail)


def unsupported(code: str, detail: str) -> ClientError:
    return ClientError(415, code, detail)


def timed_out(detail: str) -> ClientError:
    # Connection: close: what is left of a slow body is not read.
    return ClientError(408, "body_timeout", detail, headers={"Connection": "close"})


def disconnected() -> ClientError:
    # nginx's 499: never seen by the client, only in the log line (not a 500, no traceback).
    return ClientError(499, "client_disconnected", "The client closed the connection.")


class ModelFileError(Exception):
    """A model or card file that is missing or corrupt: the process must not start."""

    def __init__(self, path, reason: str):
        super().__init__(f"cannot start: {path}: {reason}")
        self.path = path
