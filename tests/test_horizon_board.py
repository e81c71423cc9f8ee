"""The horizon table on the leaderboard and in --test: models and baselines by each horizon, with a figure."""

import os

import numpy as np
import pandas as pd
import pytest

from hypo.config import LabelConfig, WindowConfig
from hypo.evaluate.board import LeaderboardRequest, leaderboard

from demo_experiment import build_demo_dataset, fake_search

HORIZONS = (60, 180, 300, 600, 900)
TRIALS = ({"model": "cnn", "k": 8, "loss": "ce", "gamma": 0.0, "head": "hazard"},
          {"model": "cnn", "k": 8, "loss": "ce", "gamma": 0.0})


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    root = tmp_path_factory.mktemp("hb")
    data = str(root / "d")
    build_demo_dataset(data, 16, cfg=WindowConfig(label=LabelConfig(horizons_s=HORIZONS)))
    exp = fake_search(data, str(root / "exp"), trials=TRIALS, epochs=2)
    lines = []
    res = leaderboard(LeaderboardRequest(exp, out_dir=str(root / "out"), test=2, test_alarms=False),
                      log=lines.append)
    return root / "out", res, "\n".join(map(str, lines))


def test_validation_and_test_tables_hold_every_row_at_every_horizon(board):
    out, res, text = board
    assert "Hypotension by each horizon (val split SIMULATED" in text
    assert "Hypotension by each horizon (test split SIMULATED" in (out / "test_table.md").read_text()
    for split, n_models in (("val", 1), ("test", 2)):
        df = pd.read_csv(out / f"horizons_{split}.csv")
        rows = list(dict.fromkeys(df["row"]))
        assert sum(r.startswith("#") for r in rows) == n_models
        assert {"last reading", "cuff MAP < 72", "cuff MAP < 73", "MAP extrapolation", "last DBP"} <= set(rows)
        assert ("feature model" in rows) == (split == "test")  # fitted for --test, not for the validation board
        assert sorted(df["horizon_s"].unique()) == list(HORIZONS)
        assert len(df) == len(rows) * len(HORIZONS)
        finite = df[np.isfinite(df["auroc"])]
        assert len(finite) > len(df) / 2 and finite["auroc"].between(0, 1).all()
        ci = finite[np.isfinite(finite["auroc_lo"])]
        assert len(ci) and (ci["auroc_lo"] <= ci["auroc_hi"] + 1e-12).all()
        assert (ci["auroc_hi"] - ci["auroc_lo"] > 0.01).any()  # several subjects: the intervals have a width
        assert os.path.getsize(out / f"horizons_{split}.png") > 10_000
        # the last reading does not change with the horizon; its AUROC does (the targets do)
        lr = df[df["row"] == "last reading"].set_index("horizon_s")
        assert lr["n"].loc[900] < lr["n"].loc[300]  # fewer windows have a label 15 min on



def test_report_shows_the_horizon_table_and_figure(board, tmp_path):
    from hypo.evaluate.testsplit.report import ReportRequest, make_report

    exp = str(board[0].parent / "exp")
    rep = make_report(ReportRequest(exp, out=str(tmp_path / "r"), n_boot=20, alarms=None), log=lambda s: None)
    rows = rep["results"]["horizons"]
    assert {r["horizon_s"] for r in rows} == set(HORIZONS)
    assert any(r["row"].startswith("cnn") for r in rows) and any(r["row"] == "last reading" for r in rows)
    html = open(rep["paths"]["html"]).read()
    assert "<h2>Hypotension by each horizon</h2>" in html and "by 15 min" in html
    assert os.path.getsize(rep["paths"]["horizons"]) > 10_000


def test_horizon_records_score_hypotension_by_each_horizon_on_the_known_windows():
    from types import SimpleNamespace

    from sklearn.metrics import average_precision_score, roc_auc_score

    from hypo.evaluate.horizons import HorizonRow, horizon_records

    rng = np.random.default_rng(0)
    n = 400
    labels = rng.choice([-1, 0, 1, 2], size=(n, 3), p=[0.2, 0.5, 0.2, 0.1])
    split = SimpleNamespace(horizon_labels=labels, subjectid=np.repeat(np.arange(40), 10).astype(str))
    by = np.maximum.accumulate(labels == 1, axis=1)  # hypotension by each horizon
    score = rng.random((n, 3)) + 0.4 * by  # informative, not perfect
    df = horizon_records(split, SimpleNamespace(horizons_s=(60, 300, 900)), [HorizonRow("m", "x", score)], 50)
    for k, h in enumerate((60, 300, 900)):
        known = by[:, k] | (labels[:, k] >= 0)
        r = df[df["horizon_s"] == h].iloc[0]
        assert r["n"] == known.sum()
        assert np.isclose(r["auroc"], roc_auc_score(by[known, k], score[known, k]))
        assert np.isclose(r["auprc"], average_precision_score(by[known, k], score[known, k]))
        assert r["auroc_lo"] < r["auroc"] < r["auroc_hi"]
