"""`make bench` (part): POST /faces and the /face face check, on `make run`'s server.

    python -m bench.faces_load [--clients 64] [--seconds 60] [--quick]

1. /face p50 with the face check (default) and without it (EMOTION_CROP_DETECT_SIDE=0):
   what verifying each crop costs.
2. /faces p50 on a 1280x720 JPEG with 3 faces (tests/face_scenes.py's trio).
3. Load: N concurrent clients for S seconds, each alternating /face and /faces; errors (a 503
   `busy` with Retry-After is the documented answer of a full queue: counted apart, and the
   client waits as told), p50/p99 per route, GET /health's p50/p99/max from a prober asking
   every 50 ms throughout (it must never wait for the workers), and the server's peak RSS
   (VmHWM). Target (issue 23): 64 clients x 60 s, 0 errors but 503s, /health p99 <= 100 ms,
   peak RSS <= 600 MB.

Writes bench/results/faces-load.json and prints a markdown table. A benchmark, not a test:
run it on an idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from bench.http_load import HOST, _wait_for_port, connect, free_port, server_env

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from face_images import data_url, encode  # noqa: E402
from face_scenes import trio_photo  # noqa: E402

RESULTS = ROOT / "bench" / "results"


@contextlib.contextmanager
def server(env: dict[str, str], log: Path) -> Iterator[tuple[int, int]]:
    """`make run`'s server (uvicorn, one worker); yields (port, pid)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "emotion.app:create_app", "--factory"]
    command += ["--host", HOST, "--port", str(port), *serve_args()]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=server_env(env), stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(proc, port, 300.0, log)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_args() -> list[str]:
    """The Makefile's SERVE_ARGS: the flags `make run` gives uvicorn."""
    match = re.search(r"^SERVE_ARGS := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    return shlex.split(match[1]) if match else ["--no-access-log"]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def requests() -> dict[str, tuple[str, bytes, str]]:
    """route name -> (path, body, content type)."""
    photo, _ = trio_photo()
    crop = photo.crop((195, 265, 325, 395)).convert("L").resize((96, 96))  # as the page sends
    form = urlencode({"imgBase64": data_url(encode(crop, "JPEG", quality=90), "image/jpeg")})
    return {
        "face": ("/face", form.encode(), "application/x-www-form-urlencoded"),
        "faces": ("/faces", encode(photo, "JPEG", quality=90), "image/jpeg"),
    }


def call(conn: http.client.HTTPConnection, request: tuple[str, bytes, str]):
    path, body, content_type = request
    started = time.perf_counter()
    conn.request("POST", path, body, {"Content-Type": content_type})
    response = conn.getresponse()
    data = response.read()
    return response.status, (time.perf_counter() - started) * 1000, data


def pct(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50": None, "p99": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"n": len(values), "p50": round(float(p50), 2), "p99": round(float(p99), 2)}


def sequential(port: int, request, n: int) -> dict:
    conn = connect(port)
    times, errors, last = [], 0, b""
    for i in range(n + 5):
        status, ms, last = call(conn, request)
        if status != 200:
            errors += 1
        elif i >= 5:  # the first few warm the connection and caches
            times.append(ms)
    conn.close()
    return {**pct(times), "errors": errors, "last": json.loads(last)}


def load(port: int, reqs: dict, clients: int, seconds: float) -> dict:
    times: dict[str, list[float]] = {name: [] for name in reqs}
    errors: list[str] = []
    busy = [0]
    health: list[float] = []
    lock = threading.Lock()
    deadline = [0.0]

    def client(i: int) -> None:
        conn = connect(port)
        names = list(reqs)
        turn = i % len(names)
        barrier.wait()
        while time.perf_counter() < deadline[0]:
            name = names[turn]
            turn = (turn + 1) % len(names)
            try:
                status, ms, _ = call(conn, reqs[name])
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    errors.append(f"{name}: {type(e).__name__}")
                conn.close()
                conn = connect(port)
                continue
            with lock:
                if status == 200:
                    times[name].append(ms)
                elif status == 503:
                    busy[0] += 1
                else:
                    errors.append(f"{name}: {status}")
            if status == 503:
                time.sleep(1.0)  # Retry-After: 1
        conn.close()

    def prober() -> None:
        conn = connect(port)
        barrier.wait()
        while time.perf_counter() < deadline[0]:
            started = time.perf_counter()
            conn.request("GET", "/health")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                with lock:
                    errors.append(f"health: {response.status}")
            health.append((time.perf_counter() - started) * 1000)
            time.sleep(0.05)
        conn.close()

    barrier = threading.Barrier(clients + 2)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    threads.append(threading.Thread(target=prober))
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline[0] = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "errors": len(errors),
        "error_samples": errors[:10],
        "busy_503": busy[0],
        "requests_per_s": round(sum(len(v) for v in times.values()) / elapsed, 1),
        **{name: pct(v) for name, v in times.items()},
        "health": {**pct(health), "max": round(max(health), 2) if health else None},
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--n", type=int, default=100, help="sequential requests per latency figure")
    p.add_argument("--quick", action="store_true", help="a smoke run: 4 clients, 3 s, n=10")
    p.add_argument("--out", type=Path, default=RESULTS / "faces-load.json")
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.seconds, args.n = 4, 3.0, 10
    reqs = requests()
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / "faces-load-server.log"
    result: dict = {"loadavg_start": list(__import__("os").getloadavg())}
    with server({"EMOTION_CROP_DETECT_SIDE": "0"}, log) as (port, _):
        result["face_without_check"] = sequential(port, reqs["face"], args.n)
    with server({}, log) as (port, pid):
        result["face_with_check"] = sequential(port, reqs["face"], args.n)
        result["faces_trio_1280x720"] = sequential(port, reqs["faces"], args.n)
        result["load"] = load(port, reqs, args.clients, args.seconds)
        result["peak_rss_mb"] = round(peak_rss_mb(pid), 1)
    found = len(result["faces_trio_1280x720"].pop("last")["faces"])
    checked = result["face_with_check"].pop("last")["face"]["found"]
    result["face_without_check"].pop("last")
    result["faces_found_in_trio"] = found
    result["face_check_found"] = checked
    result["face_check_cost_p50_ms"] = round(
        result["face_with_check"]["p50"] - result["face_without_check"]["p50"], 2
    )
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return result


def table(r: dict) -> str:
    load_ = r["load"]
    rows = [
        "| measure | value |",
        "|---|---|",
        f"| /face p50, face check off / on | {r['face_without_check']['p50']} / "
        f"{r['face_with_check']['p50']} ms (+{r['face_check_cost_p50_ms']} ms) |",
        f"| /faces p50 / p99, 1280x720 JPEG, 3 faces ({r['faces_found_in_trio']} found) | "
        f"{r['faces_trio_1280x720']['p50']} / {r['faces_trio_1280x720']['p99']} ms |",
        f"| load: {load_['clients']} clients, {load_['seconds']} s, mixed | "
        f"{load_['requests_per_s']} req/s, {load_['errors']} errors, "
        f"{load_['busy_503']} answered 503 busy |",
        f"| load /face p50 / p99 | {load_['face']['p50']} / {load_['face']['p99']} ms |",
        f"| load /faces p50 / p99 | {load_['faces']['p50']} / {load_['faces']['p99']} ms |",
        f"| load GET /health p50 / p99 / max (every 50 ms) | {load_['health']['p50']} / "
        f"{load_['health']['p99']} / {load_['health']['max']} ms |",
        f"| server peak RSS | {r['peak_rss_mb']} MB |",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    main()
