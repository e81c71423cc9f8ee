"""The baselines beside every result: window features, the feature model against sklearn by hand, the last ART
minute, the rows of the leaderboard, and the search's refusal of a validation split that lacks a class."""

import dataclasses
import json
import math
import os

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from hypo.cli.search import main as search_main
from hypo.data.dataset import load_split, read_manifest
from hypo.errors import HypoError
from hypo.evaluate.testsplit.top_trials import study_table
from hypo.learn.baseline import baseline_metrics, label_config, last_reading_scores, train_prior
from hypo.learn.baselines import (
    FEATURE_MODEL,
    LAST_ART,
    LAST_READING,
    baseline_list,
    baseline_records,
    feature_model_for,
    split_baselines,
)
from hypo.learn.feature_model import FeatureModel, FeatureModelConfig, fit_feature_model
from hypo.learn.features import feature_names, window_features
from hypo.learn.metrics import evaluate_scores
from hypo.search.leaderboard import (
    TrialRecord,
    baseline_notes,
    format_markdown,
    format_table,
    leaderboard_frame,
    write_leaderboard,
)
from hypo.search.tuner import SearchConfig, run_search

from synthetic_windows import write_synthetic_dataset

SMALL = FeatureModelConfig(learning_rates=(0.05, 0.2), max_iters=(20, 60))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("baselines") / "windows")
    write_synthetic_dataset(d, n_train=800, n_val=400, n_test=400, seed=11)
    manifest = read_manifest(d)
    return {"dir": d, "manifest": manifest, **{s: load_split(d, s, manifest) for s in ("train", "val", "test")}}


# ----------------------------------------------------------------------------------------------------- features


def test_window_features_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(80, 10, (5, 60, 7)).astype(np.float32)
    f = window_features(x)
    assert f.shape == (5, 42) and len(feature_names()) == 42
    names = feature_names()
    t = np.arange(60)
    for i in range(5):
        for s, sig in enumerate(("ecg", "nibp_sbp", "nibp_mbp", "nibp_dbp", "pleth", "mac", "bis")):
            v = x[i, :, s].astype(np.float64)
            want = {"mean": v.mean(), "std": v.std(), "min": v.min(), "max": v.max(), "last": v[-1],
                    "slope": np.polyfit(t, v, 1)[0]}
            for stat, value in want.items():
                assert np.isclose(f[i, names.index(f"{sig}_{stat}")], value), (sig, stat)
    ramp = np.broadcast_to(np.arange(60, dtype=np.float32)[None, :, None] * 0.5, (1, 60, 7))
    assert np.allclose(window_features(ramp)[0, 5::6], 0.5)  # the slope is per second


# ------------------------------------------------------------------------------------------------ feature model


def _by_hand(train, val, test, cfg: FeatureModelConfig):
    """The feature model's selection redone with sklearn directly, features computed independently."""
    def feats(x):
        x = x.astype(np.float64)
        t = np.arange(x.shape[1]) - (x.shape[1] - 1) / 2
        slope = np.einsum("t,nts->ns", t, x) / np.sum(t * t)
        return np.stack([x.mean(1), x.std(1), x.min(1), x.max(1), x[:, -1], slope], axis=2).reshape(len(x), -1)

    ft, fv, fs = feats(train.x), feats(val.x), feats(test.x)
    tried = [make_pipeline(StandardScaler(), LogisticRegression(C=cfg.logreg_c, max_iter=2000))]
    tried += [HistGradientBoostingClassifier(learning_rate=lr, max_iter=it, early_stopping=False,
                                             random_state=cfg.seed)
              for lr in cfg.learning_rates for it in cfg.max_iters]
    best, best_auc = None, -1.0
    with threadpool_limits(1, user_api="openmp"):  # as the feature model does (speed only: results agree)
        for est in tried:
            est.fit(ft, train.label)
            auc = roc_auc_score(val.label, est.predict_proba(fv), multi_class="ovr", average="macro")
            if auc > best_auc:
                best, best_auc = est, auc
        return best, best_auc, best.predict_proba(fs)


def test_feature_model_equals_sklearn_fitted_by_hand(data):
    fm = fit_feature_model(data["train"], data["val"], SMALL)
    est, val_auc, test_probs = _by_hand(data["train"], data["val"], data["test"], SMALL)
    assert type(fm.estimator).__name__ == type(est).__name__
    assert math.isclose(max(e["val_mean_auroc"] for e in fm.selection), val_auc)
    assert len(fm.selection) == 1 + 2 * 2
    np.testing.assert_allclose(fm.scores(data["test"].x), test_probs, rtol=1e-9, atol=1e-12)
    got = evaluate_scores(data["test"].label, fm.scores(data["test"].x), warn=False)
    want = evaluate_scores(data["test"].label, test_probs, warn=False)
    assert math.isclose(got["mean_auroc"], want["mean_auroc"]) and math.isclose(got["sum_auprc"], want["sum_auprc"])
    assert got["mean_auroc"] > 0.8  # the planted drift is in the window statistics
    assert "all 800 training windows" in fm.description and "validation mean AUROC" in fm.description


def test_feature_model_refits_its_choice_and_subsamples_big_train_splits(data):
    fm = fit_feature_model(data["train"], data["val"], SMALL)
    params = json.loads(json.dumps(fm.params))  # as hypo_search.json stores it
    again = FeatureModel.refit(params, data["train"], data["val"])
    np.testing.assert_array_equal(again.scores(data["test"].x), fm.scores(data["test"].x))
    assert again.description == fm.description  # the record of the grid is kept
    sub = fit_feature_model(data["train"], data["val"], dataclasses.replace(SMALL, max_train=300, seed=4))
    assert sub.n_used == 300 and sub.n_train == 800
    assert "a seeded subsample of 300 of 800 training windows" in sub.description
    same = fit_feature_model(data["train"], data["val"], dataclasses.replace(SMALL, max_train=300, seed=4))
    np.testing.assert_array_equal(same.scores(data["val"].x), sub.scores(data["val"].x))  # deterministic
    # An experiment without a recorded choice (an older search) chooses anew, the same way.
    anew = feature_model_for((), data["train"], data["val"])
    assert anew.config == FeatureModelConfig()
    recorded = baseline_list([{"name": FEATURE_MODEL, "params": params}])
    np.testing.assert_array_equal(feature_model_for(recorded, data["train"], data["val"]).scores(data["val"].x),
                                  fm.scores(data["val"].x))


def test_feature_model_refuses_a_single_class_train_split(data):
    one = dataclasses.replace(data["train"], label=np.zeros_like(data["train"].label))
    with pytest.raises(HypoError, match="fewer than two classes"):
        fit_feature_model(one, data["val"], SMALL)


# ---------------------------------------------------------------------------------------------- last ART minute


def _with_art(split, art_map, art_sbp):
    """A split as the arterial-line datasets carry it (the columns the data layer adds)."""
    out = dataclasses.replace(split)
    out.art_last_map, out.art_last_sbp = art_map, art_sbp
    return out


def test_last_art_minute_row_only_when_the_columns_hold_values(data):
    val, manifest = data["val"], data["manifest"]
    names = [b.name for b in split_baselines(val, manifest)]
    assert names == [LAST_READING]  # no ART columns: no row
    rng = np.random.default_rng(1)
    # the invasive MAP follows the label closely (it is measured continuously), with gaps where no line was
    art_map = np.where(val.label == 1, 60.0, 85.0) + rng.normal(0, 3, len(val))
    art_sbp = np.where(val.label == 2, 168.0, 120.0) + rng.normal(0, 4, len(val))
    art_map[::7] = np.nan
    art_sbp[::7] = np.nan
    nan = np.full(len(val), np.nan, np.float32)
    assert [b.name for b in split_baselines(_with_art(val, nan, nan), manifest)] == [LAST_READING]
    with_art = _with_art(val, art_map.astype(np.float32), art_sbp.astype(np.float32))
    got = split_baselines(with_art, manifest)
    assert [b.name for b in got] == [LAST_READING, LAST_ART] and got[1].model == "last-art"
    want = last_reading_scores(art_map.astype(np.float32), art_sbp.astype(np.float32), label_config(manifest),
                               train_prior(manifest))
    np.testing.assert_array_equal(got[1].scores, want)
    np.testing.assert_allclose(got[1].scores[::7], np.tile(train_prior(manifest), (len(art_map[::7]), 1)))
    # a dict of arrays works as well as WindowArrays; the same windows, stratified by the last cuff reading
    as_dict = {k: getattr(with_art, k) for k in ("x", "label", "last_map", "last_sbp", "art_last_map",
                                                "art_last_sbp")}
    rows = baseline_records(as_dict, manifest, prefix="val_")
    assert [r["name"] for r in rows] == [LAST_READING, LAST_ART]
    want = {f"val_{k}": v for k, v in baseline_metrics(val, manifest, warn=False).items()}
    assert rows[0]["metrics"].keys() == want.keys()
    assert all(np.isclose(rows[0]["metrics"][k], v, equal_nan=True) for k, v in want.items())
    assert rows[1]["metrics"]["val_n"] == len(val) and rows[1]["metrics"]["val_mean_auroc"] > \
        rows[0]["metrics"]["val_mean_auroc"]


# ------------------------------------------------------------------------------------------------- leaderboard

TRIAL = TrialRecord("t1", "/nonexistent", {"model": "cnn", "k": 8, "loss": "ce"},
                    [{"epoch": 1, "val_mean_auroc": 0.8, "val_sum_auprc": 0.7, "val_n": 400.0,
                      "val_prevalence_normal": 0.7, "val_prevalence_hypotension": 0.15,
                      "val_prevalence_hypertension": 0.15}])


def test_leaderboard_rows_for_every_baseline_and_nan_with_its_reason(data):
    fm = fit_feature_model(data["train"], data["val"], SMALL)
    rows = baseline_records(data["val"], data["manifest"], fm, prefix="val_")
    df = leaderboard_frame([TRIAL], rows)
    assert list(df["trial"]) == ["t1", "baseline: last reading", "baseline: feature model"]
    assert df.iloc[2]["model"] == fm.model_name and pd.isna(df.iloc[2]["rank"])
    assert math.isclose(df.iloc[2]["val_mean_auroc"], rows[1]["metrics"]["val_mean_auroc"])
    assert not any(df["note"])
    notes = baseline_notes(rows)
    assert notes[1].startswith("baseline: feature model = ") and "window statistics" in notes[1]

    # A split without hypertension (an older experiment): n/a with the reason, never a mean over two classes.
    keep = data["val"].label != 2
    val2 = dataclasses.replace(data["val"], **{k: getattr(data["val"], k)[keep]
                                               for k in ("x", "label", "last_map", "last_sbp")})
    rows2 = baseline_records(val2, data["manifest"], fm, prefix="val_")
    assert all(math.isnan(r["metrics"]["val_mean_auroc"]) for r in rows2)
    df2 = leaderboard_frame([TRIAL], json.loads(json.dumps(rows2).replace("NaN", "null")))
    assert list(df2["note"]) == [""] + ["mean AUROC and sum AUPRC n/a: no hypertension window in this split"] * 2
    table = format_table(df2)
    assert "n/a" in table and "no hypertension window in this split" in table
    assert "no hypertension window in this split" in format_markdown(df2)


def test_all_three_baselines_are_rows_of_the_leaderboard_files(data, tmp_path):
    val = data["val"]
    art = _with_art(val, np.where(val.label == 1, 60.0, 85.0).astype(np.float32),
                    np.where(val.label == 2, 170.0, 120.0).astype(np.float32))
    fm = fit_feature_model(data["train"], val, SMALL)
    rows = baseline_records(art, data["manifest"], fm, prefix="val_")
    df = leaderboard_frame([TRIAL], rows)
    paths = write_leaderboard(df, str(tmp_path), "t", simulated=True, notes=baseline_notes(rows))
    md = open(paths["md"]).read()
    for name in ("last reading", "feature model", "last ART minute"):
        assert f"| baseline: {name} |" in md and f"- baseline: {name} = " in md
    assert os.path.getsize(paths["png"]) > 0


def test_the_test_table_shows_n_a_with_the_reason():
    row = {"test_n": 50.0, "test_prevalence_normal": 0.8, "test_prevalence_hypotension": 0.2,
           "test_prevalence_hypertension": 0.0, "test_mean_auroc": math.nan, "test_sum_auprc": math.nan,
           "test_auprc_hypotension": 0.5, "test_auprc_hypertension": math.nan}
    df = pd.DataFrame([{"rank": 1, "trial": "t1", "model": "cnn_cnn", "loss": "ce", **row},
                       {"trial": "baseline: feature model", "model": "features+hgb", **row}])
    table = study_table(df)
    assert "| #1 t1 | cnn_cnn | n/a | n/a | 0.5000 | n/a |" in table
    assert "| baseline: feature model | features+hgb | n/a | n/a | 0.5000 | n/a |" in table
    assert table.count("n/a: no hypertension window in the test split") == 1
    assert "nan" not in table


def test_an_older_search_with_one_baseline_still_reads(data):
    old = {"baseline": {"val_mean_auroc": 0.75, "val_sum_auprc": 0.6, "val_n": 400.0}}
    (row,) = baseline_list(old["baseline"])
    assert row.name == LAST_READING and row.model == "last-reading"
    df = leaderboard_frame([TRIAL], old["baseline"])  # the dict an older search stored
    assert list(df["trial"]) == ["t1", "baseline: last reading"] and df.iloc[1]["val_mean_auroc"] == 0.75


# ----------------------------------------------------------------------------------- the search refuses NaN


@pytest.fixture(scope="module")
def no_hyper_in_val(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("nohyper") / "windows")
    write_synthetic_dataset(d, n_train=200, n_val=120, n_test=80, seed=2, priors={"val": (0.8, 0.2, 0.0)})
    assert read_manifest(d).counts["val"].hypertension == 0
    return d


def test_the_search_refuses_a_validation_split_without_a_class(no_hyper_in_val, tmp_path):
    cfg = SearchConfig(data=no_hyper_in_val, storage=str(tmp_path), name="s", samples=1, epochs=1)
    with pytest.raises(HypoError) as exc:
        run_search(cfg, log=lambda s: None)
    msg = str(exc.value)
    assert "validation split has no hypertension window" in msg and "\n" not in msg
    assert "ASHA and Optuna" in msg
    assert not os.path.exists(os.path.join(tmp_path, "s"))  # refused before anything was written or started


def test_hypo_search_refuses_it_in_one_line_before_ray_starts(no_hyper_in_val, tmp_path, capsys):
    import ray

    with pytest.raises(SystemExit) as exc:
        search_main(["--data", no_hyper_in_val, "--storage", str(tmp_path), "--name", "s"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("hypo search: error:") and err.count("\n") == 1
    assert "no hypertension window" in err
    assert not ray.is_initialized()
