"""A server in a subprocess on a free port, and plain HTTP clients (stdlib http.client,
keep-alive, one connection per client thread) that measure it."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emotion.pool import RETRY_AFTER_S

HOST = "127.0.0.1"
FORM = "application/x-www-form-urlencoded"
TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def uvicorn_server(
    app: str, env: dict[str, str], log: Path, ready_s: float = 300.0
) -> Iterator[int]:
    """`uvicorn APP --factory` (one worker, as `make run`), yielding its port once it
    accepts connections (uvicorn builds the app before it binds)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--factory"]
    command += ["--host", HOST, "--port", str(port), "--no-access-log"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(proc, port, ready_s, log)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_port(proc: subprocess.Popen, port: int, ready_s: float, log: Path) -> None:
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} within {ready_s:.0f} s")


def connect(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(HOST, port, timeout=TIMEOUT_S)


BUSY_WAIT_S = RETRY_AFTER_S  # the server's Retry-After on a 503 `busy`


def post_face(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, float, str, bytes]:
    """One POST /face: status, milliseconds, Server-Timing header, response body."""
    started = time.perf_counter()
    conn.request("POST", "/face", body, {"Content-Type": FORM})
    response = conn.getresponse()
    data = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    return response.status, elapsed, response.getheader("Server-Timing", ""), data


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


def server_timing(header: str) -> dict[str, float]:
    """'decode;dur=1.20, infer;dur=4.50' -> {'decode': 1.2, 'infer': 4.5}."""
    timings = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if name and dur:
            timings[name] = float(dur)
    return timings


def warm_up(port: int, body: bytes, n: int) -> bytes:
    """n requests, not measured; returns the last response body (checked by the caller)."""
    conn = connect(port)
    data = b""
    for _ in range(n):
        status, _, _, data = post_face(conn, body)
        if status != 200:
            raise RuntimeError(f"warm-up request answered {status}: {data[:300]!r}")
    conn.close()
    return data


def sequential(port: int, body: bytes, n: int) -> dict:
    """n requests one after another on one keep-alive connection."""
    conn = connect(port)
    times, errors = [], 0
    stages: dict[str, list[float]] = {}
    for _ in range(n):
        status, ms, timing, _ = post_face(conn, body)
        if status != 200:
            errors += 1
            continue
        times.append(ms)
        for name, dur in server_timing(timing).items():
            stages.setdefault(name, []).append(dur)
    conn.close()
    figures = {"n": n, "errors": errors, **percentiles(times)}
    figures["server_timing_p50_ms"] = {k: float(np.median(v)) for k, v in stages.items()}
    return figures


def throughput(port: int, body: bytes, concurrency: int, seconds: float) -> dict:
    """`concurrency` clients, each sending back to back until the time is up; faces/s is
    the successful answers over the wall time until the last client finished. A 503 `busy`
    (the server's bounded queue is full: documented back-pressure, not an error) is counted
    apart, and that client waits as its Retry-After says, as the page does."""
    ok: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    busy = [0] * concurrency
    barrier = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def client(i: int) -> None:
        conn = connect(port)
        barrier.wait()
        while time.perf_counter() < deadline[0]:
            try:
                status, ms, _, _ = post_face(conn, body)
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = connect(port)
                continue
            if status == 200:
                ok[i].append(ms)
            elif status == 503:
                busy[i] += 1
                time.sleep(max(0.0, min(BUSY_WAIT_S, deadline[0] - time.perf_counter())))
            else:
                errors[i] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline[0] = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    answered = [ms for times in ok for ms in times]
    return {
        "concurrency": concurrency,
        "seconds": elapsed,
        "ok": len(answered),
        "errors": sum(errors),
        "busy": sum(busy),
        "faces_per_s": len(answered) / elapsed,
        "latency_p50_ms": percentiles(answered)["p50"],
    }


def server_env(extra: dict[str, str]) -> dict[str, str]:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root / 'function'}{os.pathsep}{root}"}
    return {**env, **extra}
