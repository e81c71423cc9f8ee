"""An experiment on cloud storage (as `--storage s3://...` leaves it) read through a local mirror.

No object store is reachable here, so a ``fake://`` scheme stands in: ``hypo.storage`` resolves it to a local
folder through pyarrow's filesystem interface, the same calls it makes for ``s3://``.
"""

import os

import pyarrow.fs as pafs
import pytest

from hypo import storage
from hypo.cli.export import main as export_main
from hypo.errors import HypoError
from hypo.evaluate.testsplit.report import ReportRequest, make_report
from hypo.search.board import show_leaderboard

from demo_experiment import build_demo_dataset, fake_search


@pytest.fixture()
def bucket(tmp_path, monkeypatch):
    root = tmp_path / "bucket"
    real_is_uri, real_resolve = storage.is_uri, storage.resolve

    def is_uri(path):
        return str(path).startswith("fake://") or real_is_uri(path)

    def resolve(path):
        if str(path).startswith("fake://"):
            return pafs.LocalFileSystem(), str(root / str(path)[len("fake://"):])
        return real_resolve(path)

    monkeypatch.setattr(storage, "is_uri", is_uri)
    monkeypatch.setattr(storage, "resolve", resolve)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data = str(tmp_path / "demo")
    build_demo_dataset(data, n_cases=30)
    fake_search(data, str(root / "runs" / "exp"), trials=({"model": "cnn", "k": 4, "loss": "ce"},), epochs=1)
    return root


def test_leaderboard_report_and_export_read_a_cloud_experiment(bucket, tmp_path):
    lines = []
    res = show_leaderboard("fake://runs/exp", log=lines.append)
    mirror = os.path.dirname(res["paths"]["csv"])
    assert mirror.startswith(str(tmp_path / "home" / ".cache" / "hypo" / "experiments"))
    assert "mirrored into" in lines[0] and len(res["frame"]) == 3  # one trial and two baselines
    rep = make_report(ReportRequest("fake://runs/exp", n_boot=5), log=lambda s: None)
    assert rep["paths"]["html"].startswith(mirror)
    side = export_main(["fake://runs/exp", "--out", str(tmp_path / "model.pt")])
    assert side.trial.experiment == mirror
    again = []
    show_leaderboard("fake://runs/exp", log=again.append)
    assert "(0 new or changed files)" in again[0]  # the mirror is refreshed, not copied anew


def test_an_unreadable_cloud_experiment_is_one_error(bucket):
    with pytest.raises(HypoError, match="no experiment folder|holds no trial|cannot read"):
        show_leaderboard("fake://runs/none", log=lambda s: None)
