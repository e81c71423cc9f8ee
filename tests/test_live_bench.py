"""bench/serve.py's smoke test: simulated beds stream to hypo serve (in one process) and the figures come out."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import serve as bench  # noqa: E402


def test_quick_bench_streams_beds_and_measures_delay_cpu_and_memory(capsys):
    res = bench.main(["--quick"])
    out = capsys.readouterr().out
    assert res["messages"] == 3 * 160 and res["predictions"] >= 3 * 10
    assert 0 < res["p50_delay_s"] <= res["p99_delay_s"] < 1.0 and res["held"]
    assert res["server_cores"] > 0 and res["rss_per_bed_mib"] is not None
    assert "beds per core" in out and "p99" in out
