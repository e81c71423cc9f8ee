"""hypo report on a real Ray Tune search over the demo cohort; the subject bootstrap and operating point under it."""

import base64
import json
import os
import re
import shutil

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from hypo.cli.report import main
from hypo.config import fingerprint
from hypo.data.dataset import load_split, read_manifest
from hypo.evaluate.bootstrap import bootstrap_scores, curve_metrics, subject_weights, weighted_curves
from hypo.evaluate.testsplit.looks import read_looks
from hypo.evaluate.testsplit.report import ReportRequest, choose_trial, make_report
from hypo.evaluate.testsplit.report_html import ci
from hypo.learn.checkpoint import load_model
from hypo.learn.feature_model import FeatureModel
from hypo.learn.metrics import evaluate_scores
from hypo.learn.models import predict_proba
from hypo.learn.operating_point import alarm_thresholds, confusion, decide, threshold_at_specificity
from hypo.search.leaderboard import leaderboard_frame, load_trials
from hypo.search.record import read_search_record
from hypo.search.tuner import SearchConfig, run_search

from demo_experiment import build_demo_dataset, fake_search

# ------------------------------------------------------------------------------------ bootstrap, thresholds


def test_weighted_curves_match_sklearn_with_ties_and_repeated_windows():
    rng = np.random.default_rng(0)
    y = rng.random(3000) < 0.2
    score = np.round(rng.random(3000) * 0.6 + 0.3 * y, 2)  # many ties
    m = curve_metrics(weighted_curves(y, score, np.ones((1, len(y)))))
    assert np.isclose(m["auroc"][0], roc_auc_score(y, score))
    assert np.isclose(m["auprc"][0], average_precision_score(y, score))
    w = rng.integers(0, 3, len(y))  # integer weights == the data set with each window repeated w times
    idx = np.repeat(np.arange(len(y)), w)
    mw = curve_metrics(weighted_curves(y, score, w[None].astype(float)))
    assert np.isclose(mw["auroc"][0], roc_auc_score(y[idx], score[idx]))
    assert np.isclose(mw["auprc"][0], average_precision_score(y[idx], score[idx]))


def test_bootstrap_draws_whole_subjects():
    subjects = np.repeat(np.array(["a", "b", "c", "d", "e"]), [3, 10, 1, 7, 4])
    for block in subject_weights(subjects, 100, seed=1, chunk=32):
        for row in block:
            per_subject = {s: set(row[subjects == s]) for s in np.unique(subjects)}
            assert all(len(v) == 1 for v in per_subject.values())  # a subject's windows go in together
            assert sum(v.pop() for v in per_subject.values()) == 5  # five subjects drawn per replicate


def test_subject_bootstrap_is_wider_than_a_window_bootstrap_when_windows_cluster():
    rng = np.random.default_rng(0)
    n_subj, per = 30, 40
    subject = np.repeat(np.arange(n_subj), per)
    effect = rng.normal(0, 1.0, n_subj)[subject]  # windows of one subject share their score and label
    y = rng.random(len(subject)) < 1 / (1 + np.exp(-effect))
    probs = np.stack([1 - effect, effect, np.zeros(len(y))], axis=1)
    y3 = y.astype(int)
    by_subject = bootstrap_scores(y3, probs, subject, n_boot=200, seed=0)["hypotension"]["auroc"]
    by_window = bootstrap_scores(y3, probs, np.arange(len(y)), n_boot=200, seed=0)["hypotension"]["auroc"]
    assert by_subject["lo"] <= by_subject["value"] <= by_subject["hi"]
    assert (by_subject["hi"] - by_subject["lo"]) > 1.5 * (by_window["hi"] - by_window["lo"])


def test_a_replicate_that_draws_no_hypertension_is_left_out_not_scored_as_zero():
    """Hypertension in one subject of ten: replicates without it are dropped from the summed-AUPRC interval."""
    subject = np.repeat(np.arange(10), 20)
    y = np.zeros(len(subject), int)
    y[(subject >= 1) & (np.arange(len(subject)) % 4 == 0)] = 1  # hypotension in nine subjects
    y[(subject == 0) & (np.arange(len(subject)) % 2 == 0)] = 2  # hypertension in subject 0 only
    probs = np.eye(3)[y] * 0.9 + 0.05  # perfect ranking: each AUPRC is 1 wherever it is defined
    res = bootstrap_scores(y, probs, subject, n_boot=300, seed=0)
    s = res["sum_auprc"]
    assert s["value"] == pytest.approx(2.0)
    assert 0 < s["n_valid"] < 300  # about a third of the draws miss subject 0 and are left out
    assert s["lo"] == pytest.approx(2.0) and s["hi"] == pytest.approx(2.0)
    assert res["mean_auroc"]["lo"] == pytest.approx(1.0) and res["mean_auroc"]["n_valid"] == s["n_valid"]


def test_a_split_without_a_class_has_no_mean_auroc_and_no_interval():
    """As in evaluation: never a mean over the classes present, which would be another statistic."""
    rng = np.random.default_rng(4)
    subject = np.repeat(np.arange(12), 15)
    y = (rng.random(len(subject)) < 0.3).astype(int)  # normal and hypotension only
    probs = np.stack([1 - y * 0.5, y * 0.5 + 0.1 * rng.random(len(y)), np.full(len(y), 0.05)], axis=1)
    res = bootstrap_scores(y, probs, subject, n_boot=50, seed=0, reference=probs[::-1].copy(),
                           references={"other": probs})
    for key in ("mean_auroc", "sum_auprc"):
        assert np.isnan(res[key]["value"]) and np.isnan(res[key]["lo"]) and res[key]["n_valid"] == 0
    assert np.isfinite(res["hypotension"]["auroc"]["value"])
    assert np.isnan(res["references"]["other"]["mean_auroc"]["value"])


def test_threshold_at_specificity_is_the_lowest_that_keeps_it():
    rng = np.random.default_rng(3)
    pos = rng.random(500) < 0.3
    score = np.round(rng.random(500) + 0.4 * pos, 3)
    t = threshold_at_specificity(pos, score, 0.9)
    assert ((score < t) & ~pos).sum() / (~pos).sum() >= 0.9
    lower = score[score < t].max()
    assert ((score < lower) & ~pos).sum() / (~pos).sum() < 0.9


def test_decide_calls_hypotension_first():
    probs = np.array([[0.2, 0.5, 0.3], [0.2, 0.1, 0.7], [0.9, 0.05, 0.05], [0.1, 0.45, 0.45]])
    got = decide(probs, {"hypotension": 0.4, "hypertension": 0.4})
    assert list(got) == [1, 2, 0, 1]
    assert confusion([1, 2, 0, 0], got).tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert alarm_thresholds([0, 1, 2], probs[:3])["hypotension"] > 0.05


# ------------------------------------------------------------------------------------ the report end to end


@pytest.fixture(scope="module")
def search(ray_local, tmp_path_factory):
    """A genuine Ray Tune search (2 trials x 2 epochs) on 40 demo cases."""
    root = tmp_path_factory.mktemp("report")
    data = str(root / "demo")
    build_demo_dataset(data, n_cases=40)
    cfg = SearchConfig(data=data, storage=str(root / "runs"), name="demo", samples=2, epochs=2, batch_size=512,
                       grace_period=2, max_concurrent=2)
    exp = run_search(cfg, log=lambda s: None)
    return exp


@pytest.mark.slow  # a real Ray Tune search
def test_report_of_the_leaderboards_first_trial(search, tmp_path, capsys):
    out = str(tmp_path / "report")
    looks_before = len(read_looks(search))
    res = main([search, "--out", out, "--bootstrap", "60"])
    printed = capsys.readouterr().out
    meta = read_search_record(search)
    board = leaderboard_frame(load_trials(search), meta.baselines)
    first = board.iloc[0]
    r = res["results"]
    assert r["trial"]["trial"] == first["trial"] and r["trial"]["best_epoch"] == int(first["best_epoch"])
    assert "mean AUROC" in printed and "[simulated data]" in printed

    for name in ("roc_pr.png", "confusion.png", "calibration.png", "report.html", "report.json", "alarm_aoc.png",
                 "alarm_leads.png", "alarm_examples.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    for name in ("roc_pr.png", "confusion.png", "calibration.png"):
        assert os.path.getsize(os.path.join(out, name)) < 300_000
    page = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 6 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert not re.search(r'src="(?!data:)', page)  # self-contained: nothing fetched from elsewhere

    chosen = choose_trial(search)
    manifest = read_manifest(chosen.data_dir)
    _, cfg = load_model(chosen.checkpoint)
    prov = r["provenance"]
    assert prov["dataset_fingerprint"] == manifest.fingerprint == prov["checkpoint_dataset_fingerprint"]
    assert prov["config_fingerprint"] == fingerprint(cfg)
    for fp in (manifest.fingerprint, fingerprint(cfg), prov["checkpoint_sha256"]):
        assert fp in page
    assert "Simulated data" in page and "not from patients" in page
    assert "Operating point:" in page and "90% specificity" in page and "sensitivity at 90% specificity" in page
    assert "0.9198" in page and "CNN*CNN" in page  # the paper's table
    assert "last-reading baseline" in page and "By the class of the last cuff reading" in page
    assert "bootstrap replicates over subjects" in page
    assert "As an alarm: episodes, lead time, false alarms" in page  # the alarm section, by default
    assert r["alarms"]["cases"]["scored"] == manifest.counts["test"].cases and r["alarms"]["rows"]
    # every baseline is a row of the report on the same test windows; the feature model is the search's choice
    assert [b["name"] for b in r["baselines"]] == ["last reading", "feature model"]
    assert "Baselines on the same test windows" in page and "baseline: feature model" in page
    test = load_split(chosen.data_dir, "test", manifest)
    fm = FeatureModel.refit(meta.baselines[1].params, load_split(chosen.data_dir, "train", manifest),
                            load_split(chosen.data_dir, "val", manifest))
    want = evaluate_scores(test.label, fm.scores(test.x), warn=False)
    assert np.isclose(r["baselines"][1]["metrics"]["mean_auroc"], want["mean_auroc"])
    assert np.isclose(r["baselines"][1]["bootstrap"]["mean_auroc"]["value"], want["mean_auroc"])
    assert ci(r["baselines"][1]["bootstrap"]["mean_auroc"]) in page
    assert r["undefined"] == {}  # every class is in this test split

    b = r["bootstrap"]
    assert b["n_boot"] == 60 and b["n_subjects"] == manifest.counts["test"].subjects
    for c in ("hypotension", "hypertension"):
        m = b[c]["auroc"]
        assert m["lo"] <= m["value"] <= m["hi"] and np.isclose(m["value"], r["metrics"][f"auroc_{c}"])
        assert np.isclose(b[c]["auprc"]["value"], r["metrics"][f"auprc_{c}"])
    assert np.isclose(b["reference"]["mean_auroc"]["value"], r["baseline_metrics"]["mean_auroc"])
    cm = np.array(r["operating_point"]["confusion"])
    assert cm.sum() == r["n_windows"] == manifest.counts["test"].windows
    assert json.load(open(os.path.join(out, "report.json")))["trial"] == r["trial"]

    # The alarm thresholds come from the validation split, never from the test windows they are judged on.
    model, _ = load_model(chosen.checkpoint)
    val = load_split(chosen.data_dir, "val", manifest)
    assert r["operating_point"]["thresholds"] == alarm_thresholds(val.label, predict_proba(model, val.x), 0.9)
    assert r["test_looks"]["look"] == looks_before + 1 == len(read_looks(search))
    assert read_looks(search)[-1]["trials"][0]["checkpoint_sha256"] == prov["checkpoint_sha256"]


@pytest.mark.slow  # a real Ray Tune search
def test_report_of_a_named_trial_and_one_line_errors(search, tmp_path, capsys):
    trials = [t.trial_id for t in load_trials(search)]
    first = make_report(ReportRequest(search, trial=trials[0], out=str(tmp_path / "r0"), n_boot=10), log=lambda s: None)
    lines = []
    res = make_report(ReportRequest(search, trial=trials[-1], out=str(tmp_path / "r"), n_boot=10), log=lines.append)
    assert res["results"]["trial"]["trial"] == trials[-1]
    looks = res["results"]["test_looks"]  # a second look at the test split is on the record and in the report
    assert looks["look"] == first["results"]["test_looks"]["look"] + 1 >= 2
    assert trials[0] in looks["note"] and any(looks["note"] in x for x in lines)
    assert "Not the first look at this test split" in open(tmp_path / "r" / "report.html").read()
    for argv, needle in (([search, "--trial", "nope"], "no trial 'nope'"),
                         ([str(tmp_path / "nowhere")], "no experiment folder"),
                         ([search, "--bootstrap", "0"], "--bootstrap must be >= 1")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith("hypo report: error:") and needle in err
        assert err.count("\n") == 1


@pytest.mark.slow  # two demo datasets and a trained run (the fast suite stays under 3 minutes)
def test_report_refuses_a_dataset_rebuilt_since_training(tmp_path, capsys):
    data = str(tmp_path / "demo")
    build_demo_dataset(data, n_cases=30)
    exp = fake_search(data, str(tmp_path / "exp"), trials=({"model": "cnn", "k": 4, "loss": "ce"},), epochs=1)
    shutil.rmtree(data)
    build_demo_dataset(data, n_cases=31)  # same folder, other dataset
    with pytest.raises(SystemExit):
        main([exp, "--bootstrap", "5"])
    err = capsys.readouterr().err
    assert "was trained on dataset" in err and err.count("\n") == 1
