"""`python -m bench.ondevice_live --quick`: the on-device live view runs with the detector's
check on, its figures are written, and nothing is sent (the rates are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.browser.conftest import site_build  # noqa: F401 (the fixture: `make site`)

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_reports_the_live_rate_on_the_device(site_build, tmp_path):  # noqa: F811
    out = tmp_path / "ondevice.json"
    # Its own process: Playwright's sync API allows one instance per thread, and the browser
    # tests' may be running in this one.
    command = [sys.executable, "-m", "bench.ondevice_live", "--quick", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["face_requests"] == 0
    assert result["faces_shown"] == 1  # the astronaut, verified by the page's detector
    assert result["predictions_per_second"] > 0
    assert result["first_prediction_s_after_start_warm_cache"] > 0
    times = result["worker_ms_per_crop"]
    assert times["runs"] == 3 and times["classify_p50"] > 0 and times["check_then_classify_p50"] > 0
