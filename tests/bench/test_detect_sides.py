"""`python -m bench.detect_sides --quick`: a row per side, in the JSON and the printed table
(the timings are not checked, only that they are there)."""

from __future__ import annotations

import json

from bench import detect_sides


def test_quick_run_reports_time_and_recall_per_side(tmp_path, capsys):
    out = tmp_path / "sides.json"
    result = detect_sides.main(["--quick", "--sides", "1280", "1024", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["default_side"] == 1024
    printed = capsys.readouterr().out
    for side in ("1280", "1024"):
        row = result["sides"][side]
        assert row["runs"] == 3 and 0 < row["detect_ms_min"] <= row["detect_ms_p50"]
        group = row["group"]
        assert group["faces"] == 8 and len(group["scores"]) == 8
        assert group["weakest_score"] == min(group["scores"])
        assert group["found"] == 8 and group["weakest_score"] > 0.5  # both sides find them all
        assert f"| {group['found']} / 8 |" in printed
    assert "| 1024 (default) |" in printed and "| 1280 |" in printed
