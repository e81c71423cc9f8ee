"""``bench/cluster.py``: its arguments, the figures it reads from a search's trials (the run itself needs the
fake autoscaling cluster: ``python bench/cluster.py --quick``), and its object-store figures."""

import os
import sys

import pytest

from hypo.search.leaderboard import TrialRecord

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import cluster as bench  # noqa: E402


def test_arguments():
    args = bench.parse_args([])
    assert (args.samples, args.epochs, args.gpus_per_trial, args.max_workers) == (4, 2, 1.0, 2)
    quick = bench.parse_args(["--quick"])
    assert quick.samples < args.samples and quick.epochs < args.epochs
    for bad in (["--gpus-per-trial", "0"], ["--samples", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)



def test_the_object_store_figures(capsys):
    figures = bench.main(["--object-store", "--quick"])  # 12 shards on a local S3 API server and on the disk, once
    assert figures["shards"] == 12 and figures["mb"] > 5
    for where in ("disk", "s3"):
        assert figures[where]["write_mb_s"] > 0 and figures[where]["read_mb_s"] > 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("store / disk") and lines[-1].endswith("x")


def _trial(tid, created, rows):
    path = f"/x/train_trial_{tid}_1_k=21_{created}"
    return TrialRecord(tid, path, {}, [dict(r, epoch=i) for i, r in enumerate(rows, 1)])


def test_waiting_and_the_first_trial_on_an_autoscaled_node():
    from datetime import datetime

    t0 = datetime(2026, 12, 1, 10, 0, 0).timestamp()
    # a: created at t0, its node's first epoch began at t0 + 20 (reported at 25 after 5 s), last epoch at t0 + 30
    a = _trial("a", "2026-12-01_10-00-00", [{"reported_at": t0 + 25, "time_this_iter_s": 5, "node_id": "w1"},
                                            {"reported_at": t0 + 30, "time_this_iter_s": 5, "node_id": "w1"}])
    # b: created 10 s later, moved from w2 to w1: it counts from its start on w1 (t0 + 40), last epoch t0 + 50
    b = _trial("b", "2026-12-01_10-00-10", [{"reported_at": t0 + 22, "time_this_iter_s": 2, "node_id": "w2"},
                                            {"reported_at": t0 + 45, "time_this_iter_s": 5, "node_id": "w1"},
                                            {"reported_at": t0 + 50, "time_this_iter_s": 5, "node_id": "w1"}])
    never = _trial("c", "2026-12-01_10-00-10", [])
    assert bench.created_at(a) == t0 and bench.began_at(a) == t0 + 20 and bench.began_at(b) == t0 + 40
    w = bench.waiting([a, b, never])
    assert [(r["trial"], r["waited_s"], r["lived_s"]) for r in w["trials"]] == [("a", 20, 30), ("b", 30, 40)]
    assert w["share"] == pytest.approx(50 / 70)
    assert bench.first_on_a_worker([a, b, never], head={"h"}) == t0 + 20
    assert bench.first_on_a_worker([a, b], head={"w1"}) is None  # trials that ended on the head do not count
