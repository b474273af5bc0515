"""Slow and vanishing clients against `make run`'s server (uvicorn with the flags the Makefile
gives it): a request head or body that trickles in is cut with a 408 and the connection closed,
an idle keep-alive connection is closed, and a client that hangs up mid-body is logged as a
disconnect, not as a 500 with a traceback. The bounds are shortened here (1 s) to keep the
test fast; the Makefile documents the served ones."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOUND_S = 1  # head, body and keep-alive bounds under test
WAIT_S = 20  # what a socket read may take before the test calls the bound missing


def serve_args() -> list[str]:
    """The Makefile's SERVE_ARGS: the flags `make run` starts uvicorn with."""
    match = re.search(r"^SERVE_ARGS := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "the Makefile has no SERVE_ARGS line"
    return shlex.split(match[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "function"), str(ROOT)]),
        "EMOTION_HEAD_TIMEOUT": str(BOUND_S),
        "EMOTION_BODY_TIMEOUT": str(BOUND_S),
    }
    log_path = tmp_path_factory.mktemp("server") / "uvicorn.log"  # a file: a pipe could fill
    command = [sys.executable, "-m", "uvicorn", "emotion.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), *serve_args()]
    command += ["--timeout-keep-alive", str(BOUND_S)]  # the last one wins
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while b"200 OK" not in _exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"):
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        yield port, log_path
    finally:
        process.terminate()
        process.wait(10)


def _exchange(port: int, data: bytes) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(data)
            return sock.recv(4096)
    except OSError:
        return b""


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    sock.settimeout(WAIT_S)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def _json_body(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


def test_a_slow_request_head_gets_408_and_the_connection_closed(server):
    port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /face HTTP/1.1\r\nHost: x\r\n")  # and then nothing
        response = _read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 408 ")
    assert _json_body(response)["error"] == "head_timeout"


def test_a_connection_that_sends_nothing_is_closed(server):
    port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_a_slow_body_gets_408_and_the_connection_closed(server):
    port, _ = server
    head = (
        b"POST /face HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + b"\x89PNG")  # 996 bytes short
        response = _read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 408 ")
    assert _json_body(response)["error"] == "body_timeout"


def test_an_idle_keep_alive_connection_is_closed(server):
    port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        response = _read_until_closed(sock)  # one answer, then the server hangs up
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.count(b"HTTP/1.1") == 1


def test_a_disconnect_mid_body_is_logged_as_a_disconnect(server):
    port, log_path = server
    head = b"POST /faces HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 50000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + b"\xff\xd8" * 100)
        time.sleep(0.2)  # the app is reading the body
    deadline = time.monotonic() + WAIT_S
    while "client_disconnected" not in log_path.read_text():
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    gone = [line for line in lines if line.get("error") == "client_disconnected"]
    assert gone[0]["status"] == 499 and gone[0]["route"] == "/faces"
    text = log_path.read_text()
    assert "Traceback" not in text and "Exception in ASGI application" not in text
    assert not [line for line in lines if line.get("status", 0) >= 500]
