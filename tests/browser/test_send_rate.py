"""The live page's send rate, which the AWS stack is sized for (infra/config.py reads the same
number from site/js/rate.js), its calm "busy, retrying" state on HTTP 429, 503 and 504, and
its timeout on a server that never answers."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from node_script import run_node
from playwright.sync_api import expect

from infra.config import PAGE_SEND_RATE

ROOT = Path(__file__).resolve().parents[2]
MEASURE_SECONDS = 4.0
FACE = re.compile(r".*/face$")
THROTTLED = json.dumps({"error": "rate_limited", "detail": "Too many requests."})


def face_requests(page) -> list[float]:
    """Times (monotonic) at which the page sent POST /face."""
    sent: list[float] = []
    page.on(
        "request",
        lambda r: r.method == "POST" and r.url.endswith("/face") and sent.append(time.monotonic()),
    )
    return sent


def start_live(page, server: str) -> None:
    page.goto(server)
    page.get_by_role("button", name="Start camera").click()
    expect(page.locator("#faces")).to_have_attribute("data-value", "1", timeout=45_000)


def test_rate_limiter_in_node():
    """site/js/rate.js on its own: never more than the cap, whatever the call pattern."""
    script = """
    import { MAX_REQUESTS_PER_SECOND, SendRate } from './site/js/rate.js';
    const limiter = new SendRate();
    let sent = 0;
    for (let t = 0; t <= 10000; t += 1) if (limiter.take(t)) sent += 1;  // asked every ms
    const slow = new SendRate({ perSecond: 2 });
    const times = [];
    for (let t = 0; t <= 2000; t += 100) if (slow.take(t)) times.push(t);
    console.log(JSON.stringify({ cap: MAX_REQUESTS_PER_SECOND, sent, times }));
    """
    out = run_node(script, timeout=30)
    assert out["cap"] == PAGE_SEND_RATE  # the number the stack is sized from
    assert out["sent"] == 10 * PAGE_SEND_RATE + 1  # 10 s at the cap, plus the first at t=0
    assert out["times"] == [0, 500, 1000, 1500, 2000]


def measure_send_rate(page, server: str, cap: int) -> float:
    """Requests/s the live view sends for the fake camera's one face, answered at once (the
    first real answer, replayed), so that only the page's cap bounds the rate; checks that no
    second holds more than `cap` requests."""
    answer: dict = {}

    def instant(route) -> None:
        if not answer:
            response = route.fetch()
            # Replay an answer that found a face: a crop of something else (tracking.js also
            # proposes clutter) would make the page set its box aside and send less.
            if response.status == 200 and response.json().get("face", {}).get("found"):
                answer["body"] = response.body()
            route.fulfill(response=response)
        else:
            route.fulfill(status=200, content_type="application/json", body=answer["body"])

    page.route(FACE, instant)
    sent = face_requests(page)
    start_live(page, server)
    before = len(sent)
    started = time.monotonic()
    page.wait_for_timeout(MEASURE_SECONDS * 1000)
    elapsed = time.monotonic() - started
    rate = (len(sent) - before) / elapsed
    print(f"\nlive page sent {rate:.1f} requests/s (cap {cap}/s)")
    # At most the cap (one extra for the window's edges); and it does keep sending.
    assert len(sent) - before <= cap * elapsed + 1, f"{rate:.1f} requests/s over a cap of {cap}"
    window = [t for t in sent if t >= started]
    for i, t in enumerate(window):
        assert len([u for u in window[i:] if u < t + 1.0]) <= cap + 1
    return rate


def test_live_view_sends_no_faster_than_the_cap(page, console, server):
    rate = measure_send_rate(page, server, PAGE_SEND_RATE)
    assert rate >= 5, f"only {rate:.1f} requests/s: the live view stalled"
    assert console.errors == []


def test_live_view_applies_the_cap_in_rate_js(page, console, server):
    """The page's own speed here is above 4/s: a cap of 4 served in rate.js must bind."""
    source = (ROOT / "site" / "js" / "rate.js").read_text()
    low = source.replace(
        f"MAX_REQUESTS_PER_SECOND = {PAGE_SEND_RATE};", "MAX_REQUESTS_PER_SECOND = 4;"
    )
    assert low != source
    page.route(
        re.compile(r".*/js/rate\.js$"),
        lambda route: route.fulfill(status=200, content_type="text/javascript", body=low),
    )
    rate = measure_send_rate(page, server, 4)
    assert rate >= 2.5, f"only {rate:.1f} requests/s: the live view stalled"
    assert console.errors == []


def answering(status: int, body: str = THROTTLED):
    def fulfil(route) -> None:
        route.fulfill(status=status, content_type="application/json", body=body)

    return fulfil


def test_busy_statuses_show_busy_retrying_not_an_error(page, server):
    """429 (throttled), 503 (the server's full queue), 504 (a gateway timeout) and API
    Gateway's own 500 for a throttled Lambda all read as "Busy, retrying", never as "The
    server had a problem"."""
    sent = face_requests(page)
    start_live(page, server)
    lambda_throttled = json.dumps({"message": "Internal Server Error"})  # API Gateway's body
    for status, body in (
        (429, THROTTLED),
        (503, THROTTLED),
        (504, THROTTLED),
        (500, lambda_throttled),
    ):
        throttle = answering(status, body)
        page.route(FACE, throttle)
        expect(page.locator("#status")).to_have_text("Busy, retrying…", timeout=10_000)
        expect(page.locator("#status")).not_to_have_class(re.compile("warning"))
        assert page.text_content("#alert") == "", f"a {status} raised an error alert"
        # It backs off while throttled: far fewer than the cap.
        before = len(sent)
        page.wait_for_timeout(3000)
        assert len(sent) - before <= 6, f"{len(sent) - before} requests in 3 s while {status}"
        assert page.text_content("#alert") == ""

        page.unroute(FACE, throttle)
        expect(page.locator("#status")).to_have_text("Camera on.", timeout=15_000)
        assert page.text_content("#alert") == ""


def test_a_hung_server_times_out_and_says_so(page, server):
    """A request the server never answers is given up after site/js/api.js's timeout, and the
    page says so (then recovers on its own)."""
    start_live(page, server)
    timeout_s = int(re.search(r"face: (\d+)_000", (ROOT / "site/js/api.js").read_text())[1])
    page.route(FACE, lambda route: None)  # never answered
    expect(page.locator("#alert")).to_contain_text(
        f"did not answer within {timeout_s} s", timeout=(timeout_s + 30) * 1000
    )
    page.unroute(FACE)
    expect(page.locator("#alert")).to_have_text("", timeout=30_000)
