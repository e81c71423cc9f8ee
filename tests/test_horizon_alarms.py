"""The alarm evaluation at another horizon (--alarm-horizon): the models' track is their risk by that horizon, the
thresholds are chosen on it, the result and the table say so, the export stores it and hypo serve scores it; a model
or a dataset without that horizon is refused in one line."""

import json

import numpy as np
import pytest

from hypo.cli.alarm_args import add_alarm_arguments, alarm_config
from hypo.cli.export import main as export_main
from hypo.config import LabelConfig, WindowConfig
from hypo.errors import ConfigError
from hypo.evaluate.alarms.evaluation import AlarmOptions, evaluate_alarms
from hypo.evaluate.alarms.metrics import AlarmConfig
from hypo.evaluate.alarms.replay import Recordings, models_at_horizon, recording_track, replay_split, split_cases
from hypo.evaluate.alarms.result import AlarmResult, format_alarm_table
from hypo.infer.model import ExportedModel
from hypo.runtime import OneLineParser
from hypo.serve.scorer import BedScorer

from demo_experiment import build_demo_dataset, fake_search

HORIZONS = (60, 300, 600, 900)
K600 = HORIZONS.index(600)
FAST = AlarmConfig(stride_s=30)
AT_600 = AlarmConfig(stride_s=30, horizon_s=600)


@pytest.fixture(scope="module")
def hazard(tmp_path_factory):
    root = tmp_path_factory.mktemp("halarm")
    data = str(root / "d")
    build_demo_dataset(data, 12, cfg=WindowConfig(label=LabelConfig(horizons_s=HORIZONS)))
    trials = ({"model": "cnn", "k": 8, "loss": "ce", "gamma": 0.0, "head": "hazard"},)
    exp = fake_search(data, str(root / "exp"), trials=trials, epochs=2)
    export_main([exp, "--out", str(root / "primary.pt"), "--alarm-stride", "30"])
    export_main([exp, "--out", str(root / "h600.pt"), "--alarm-stride", "30", "--alarm-horizon", "600"])
    return {"root": root, "data": data, "exp": exp, "model": ExportedModel.load(str(root / "primary.pt"))}


def test_the_track_is_the_risk_by_the_horizon(hazard):
    model, rec = hazard["model"], Recordings.of(hazard["data"])
    primary = replay_split(rec, "test", {"model": model}, FAST, max_cases=2, log=lambda s: None)
    at_600 = replay_split(rec, "test", {"model": model}, AT_600, max_cases=2, log=lambda s: None)
    assert len(at_600.events) == len(primary.events) > 0
    refs = {str(r["caseid"]): r for r in rec.source.case_refs()}
    for ev, p_track, h_track in zip(at_600.events, primary.tracks["model"], at_600.tracks["model"]):
        case = rec.source.load_case(refs[ev.caseid])
        pred, _ = recording_track(case, model, 30)
        # the primary replay reads the 3-class p(hypotension); at 600 s the risk column computed directly
        assert np.allclose(p_track.score, pred.probs[:, 1], equal_nan=True)
        assert np.allclose(h_track.score, pred.horizon_risk[:, K600], equal_nan=True)
        assert np.isfinite(h_track.score).sum() > 10 and not np.allclose(h_track.score, p_track.score,
                                                                         equal_nan=True)
        assert np.array_equal(h_track.t, p_track.t) and np.array_equal(h_track.u, p_track.u)
    for name in primary.tracks:  # the baselines are unchanged
        if name != "model":
            assert all(np.array_equal(a.score, b.score, equal_nan=True)
                       for a, b in zip(primary.tracks[name], at_600.tracks[name]))


def test_thresholds_are_chosen_on_the_horizon_and_the_table_says_so(hazard):
    def run(cfg):
        opts = AlarmOptions(cfg=cfg, feature_model=None, n_boot=0, max_cases=3)
        return evaluate_alarms({"model": hazard["model"]}, hazard["data"], opts, log=lambda s: None)[0]

    primary, at_600 = run(FAST), run(AT_600)
    assert primary.horizon_s is None and at_600.horizon_s == 600
    t_p, t_h = (r.row("model").thresholds["fa_target"]["threshold"] for r in (primary, at_600))
    assert t_p != t_h
    for name in ("last reading", "cuff MAP < 72"):  # the baselines' rows read the current pressure as before
        assert primary.row(name).thresholds == at_600.row(name).thresholds
    text = format_alarm_table(at_600)
    assert "model rows: their risk of hypotension by 10 min (--alarm-horizon 600)" in text
    assert "(chosen on validation); model rows: risk of hypotension by 10 min:" in text
    assert "by 10 min" not in format_alarm_table(primary)
    back = AlarmResult.from_dict(json.loads(at_600.dumps()), "x")
    assert back.horizon_s == 600 and back.config.horizon_s == 600
    assert "horizon_s" not in json.loads(primary.dumps())["config"]  # results without it stay as they were


def test_export_stores_the_horizon_and_serve_scores_it(hazard):
    root = hazard["root"]
    side = {n: json.loads((root / f"{n}.json").read_text())["alarm_policy"] for n in ("primary", "h600")}
    assert "horizon_s" not in side["primary"] and side["h600"]["horizon_s"] == 600
    assert side["primary"]["threshold"] != side["h600"]["threshold"]
    rng = np.random.default_rng(0)
    from hypo.data.dataset import load_split

    x = load_split(hazard["data"], "val").x[rng.choice(50, 8, replace=False)]
    served = BedScorer(str(root / "h600.pt")).predict_proba(x)
    assert np.allclose(served[:, 1], hazard["model"].predict_horizon_risk(x)[:, K600], atol=1e-6)
    assert np.allclose(served.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(BedScorer(str(root / "primary.pt")).predict_proba(x), hazard["model"].predict_proba(x))
    assert "risk of hypotension by 600 s" in " ".join(BedScorer(str(root / "h600.pt")).notes)


def test_a_model_or_dataset_without_the_horizon_is_refused(hazard):
    from hypo.data.dataset import read_manifest

    model, manifest = hazard["model"], read_manifest(hazard["data"])
    with pytest.raises(ConfigError, match=r"^model: the model has no risk by 120 s: its horizons are 60,300,600,900 "
                                          r"s$"):
        model.at_horizon(120, "model: ")
    with pytest.raises(ConfigError, match=r"--alarm-horizon 120: the dataset is not labelled at 120 s"):
        models_at_horizon({"model": model}, manifest, AlarmConfig(horizon_s=120))
    three_class = ExportedModel(model.module, model.sidecar.model_copy(update={"horizons_s": None}))
    with pytest.raises(ConfigError, match="model: the model gives no risk per horizon .* --head hazard"):
        models_at_horizon({"model": three_class}, manifest, AlarmConfig(horizon_s=600))
    single = manifest.model_copy(update={"horizons": None})
    with pytest.raises(ConfigError, match=r"the dataset D is not labelled at 600 s \(its horizons: 300 s\)"):
        models_at_horizon({"model": model}, single, AlarmConfig(horizon_s=600), "D")
    assert models_at_horizon({"model": three_class}, single, FAST)["model"] is three_class  # no horizon: as it is
    with pytest.raises(ConfigError, match="dataset"):  # before any recording is replayed
        replay_split(Recordings(hazard["data"], single, None), "val", {"model": model}, AT_600)
    assert split_cases(hazard["data"], "val")


def test_hypo_evaluate_refuses_a_horizon_before_any_work(hazard, tmp_path, capsys):
    from hypo.cli.evaluate import main

    other = str(tmp_path / "b")
    build_demo_dataset(other, 8, site="b")  # one horizon: 300 s
    with pytest.raises(SystemExit) as exc:
        main([str(hazard["root"] / "h600.pt"), "--data", other, "--out", str(tmp_path / "e"), "--alarms",
              "--alarm-horizon", "600"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1
    assert f"--alarm-horizon 600: the dataset {other} is not labelled at 600 s (its horizons: 300 s)" in err
    assert not (tmp_path / "e" / "evaluation.json").exists()


def test_leaderboard_test_and_the_validation_board_read_the_horizon(hazard, tmp_path):
    from hypo.cli.leaderboard import main as leaderboard_main

    out = tmp_path / "lb"
    leaderboard_main([hazard["exp"], "--test", "1", "--out", str(out), "--alarm-stride", "60", "--alarm-horizon",
                      "600"])
    saved = json.load(open(out / "test_alarms.json"))
    assert saved["horizon_s"] == 600 and saved["config"]["horizon_s"] == 600
    assert "model rows: their risk of hypotension by 10 min" in open(out / "test_table.md").read()
    res = leaderboard_main([hazard["exp"], "--alarms", "1", "--out", str(tmp_path / "v"), "--alarm-stride", "60",
                            "--alarm-horizon", "600"])
    assert res["alarms"].config.horizon_s == 600 and "risk of hypotension by 10 min" in res["alarms"].note


def test_report_and_test_board_refuse_a_horizon_before_looking_at_test(hazard, tmp_path, capsys):
    from hypo.cli.leaderboard import main as leaderboard_main
    from hypo.cli.report import main as report_main
    from hypo.evaluate.testsplit.looks import read_looks

    looks = len(read_looks(hazard["exp"]))
    for run in (lambda: report_main([hazard["exp"], "--out", str(tmp_path / "r"), "--alarm-horizon", "120"]),
                lambda: leaderboard_main([hazard["exp"], "--test", "1", "--out", str(tmp_path / "t"),
                                          "--alarm-horizon", "120"])):
        with pytest.raises(SystemExit) as exc:
            run()
        err = capsys.readouterr().err.strip()
        assert exc.value.code == 2 and len(err.splitlines()) == 1 and "not labelled at 120 s" in err
    assert len(read_looks(hazard["exp"])) == looks  # no look at the test split spent on a refused setting


def test_the_report_says_which_risk_its_alarm_section_reads(hazard, tmp_path):
    from hypo.cli.report import main as report_main

    res = report_main([hazard["exp"], "--out", str(tmp_path / "r"), "--bootstrap", "10", "--alarm-stride", "60",
                       "--alarm-horizon", "900"])
    assert res["results"]["alarms"]["horizon_s"] == 900
    html = (tmp_path / "r" / "report.html").read_text()
    assert "<b>Model rows</b> read their risk of hypotension by 15 min (--alarm-horizon 900)" in html


def test_a_trial_with_the_class_head_is_refused(hazard, tmp_path):
    import shutil

    from hypo.evaluate.alarms.evaluation import check_trials_at_horizon

    exp = shutil.copytree(hazard["exp"], tmp_path / "exp")
    params = next(exp.glob("train_trial_*/params.json"))
    tid = params.parent.name.removeprefix("train_trial_")
    check_trials_at_horizon(str(exp), [tid], AT_600, hazard["data"])  # the hazard head: fine
    params.write_text(json.dumps({**json.loads(params.read_text()), "head": "class"}))
    with pytest.raises(ConfigError, match=f"--alarm-horizon 600: trial {tid}: its model gives no risk per horizon"):
        check_trials_at_horizon(str(exp), [tid], AT_600, hazard["data"])
    check_trials_at_horizon(str(exp), [tid], FAST, hazard["data"])  # no horizon asked: nothing to refuse


def test_the_flag(tmp_path):
    p = OneLineParser(prog="x")
    add_alarm_arguments(p)
    assert alarm_config(p.parse_args(["--alarm-horizon", "600"])).horizon_s == 600
    assert alarm_config(p.parse_args([])).horizon_s is None
    with pytest.raises(ConfigError, match="--alarm-horizon must be a whole number of seconds >= 1, got 0"):
        alarm_config(p.parse_args(["--alarm-horizon", "0"]))
