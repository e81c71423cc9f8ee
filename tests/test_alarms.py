"""The alarm evaluation end to end on demo datasets: replayed recordings, exported model vs checkpoint, thresholds
from validation, failures counted, the report section and the leaderboard's --alarms and --test."""

import base64
import json
import os
import re
import shutil

import numpy as np
import pytest

from hypo.cli.leaderboard import main as leaderboard_main
from hypo.cli.report import main as report_main
from hypo.config import LabelConfig, WindowConfig
from hypo.data.dataset import read_manifest
from hypo.data.manifest import write_manifest
from hypo.data.pipeline import usable_arterial_line
from hypo.data.sources.demo import DemoSource, simulate_case
from hypo.errors import CaseRejected, ConfigError, HypoError
from hypo.evaluate.alarms.evaluation import AlarmOptions, alarm_evaluation, choose_on_validation, evaluate_alarms
from hypo.evaluate.alarms.events import merge_episodes
from hypo.evaluate.alarms.metrics import AlarmConfig
from hypo.evaluate.alarms.replay import (
    FEATURE_MODEL,
    FREQUENT_CUFF,
    LAST_ART,
    LAST_READING,
    Recordings,
    replay_case,
    replay_split,
    split_cases,
    subsample,
)
from hypo.evaluate.alarms.result import AlarmResult, format_alarm_table
from hypo.evaluate.export_trial import trial_model
from hypo.evaluate.testsplit.looks import read_looks
from hypo.infer.model import ExportedModel
from hypo.infer.predict import predict_case
from hypo.learn.feature_model import FeatureModelConfig

from demo_experiment import build_demo_dataset, exported_demo_model, fake_search

TRIAL = ({"model": "cnn_cnn", "k": 8, "loss": "ce", "gamma": 0.0},)
N_BOOT = 50
FAST = AlarmConfig(stride_s=30)  # fewer predictions per recording: the same code, a third of the work


@pytest.fixture(scope="module")
def cuff(tmp_path_factory):
    root = tmp_path_factory.mktemp("alarms")
    # The search's full feature-model grid: an exported model's evaluation chooses among the same candidates anew.
    return {**exported_demo_model(root, epochs=2, trials=TRIAL, feature_model=FeatureModelConfig()), "root": root}


@pytest.fixture(scope="module")
def cuff_result(cuff):
    return alarm_evaluation(cuff["exp"], cuff["data"], AlarmOptions(cfg=FAST, n_boot=N_BOOT), log=lambda s: None)


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    root = tmp_path_factory.mktemp("alarms_art")
    data = str(root / "demo-art")
    build_demo_dataset(data, n_cases=40, cfg=WindowConfig(label=LabelConfig(source="art")))
    exp = fake_search(data, str(root / "exp"), trials=TRIAL, epochs=1)
    return {"data": data, "exp": exp}


def test_an_exported_model_and_the_runs_checkpoint_score_the_same(cuff, cuff_result):
    exported = alarm_evaluation(cuff["model"], cuff["data"], AlarmOptions(cfg=FAST, n_boot=N_BOOT),
                                log=lambda s: None)
    assert [r.name for r in cuff_result.rows] == ["model", LAST_READING, FEATURE_MODEL]
    for a, b in zip(cuff_result.rows, exported.rows):
        assert a.thresholds == b.thresholds
        assert a.operating_points == b.operating_points
    assert cuff_result.cases.scored == len(split_cases(cuff["data"], "test")) > 0
    assert cuff_result.cases.failed == 0 and cuff_result.simulated
    text = format_alarm_table(cuff_result)
    assert "SIMULATED" in text and "baseline: feature model" in text and "false alarms/h" in text


def test_replay_scores_each_recording_with_the_deployed_predict_case(cuff):
    manifest = read_manifest(cuff["data"])
    pred = ExportedModel.load(cuff["model"])
    info = split_cases(cuff["data"], "test")[0]
    case = simulate_case(int(info["caseid"]), 0, arterial=False)
    cfg = AlarmConfig(stride_s=30)
    events, tracks = replay_case(case, info, {"model": pred}, manifest, cfg)
    direct = predict_case(case, pred, 30)
    np.testing.assert_array_equal(tracks["model"].t, direct.t_end)
    np.testing.assert_array_equal(tracks["model"].score, direct.probs[:, 1].astype(np.float64))
    assert np.isnan(tracks["model"].score).sum() == len(direct.t_end) - direct.n_predicted
    # cuff events are runs of low readings among the recording's own cleaned readings
    low = direct.readings["map"] < 65
    assert set(events.onsets) <= set(direct.readings["time"][low])
    assert events.span == (59, case.duration_s) and tracks[LAST_READING].kind == "reading"


def test_thresholds_come_from_the_validation_split(cuff, cuff_result):
    manifest = read_manifest(cuff["data"])
    pred = trial_model(cuff["exp"])[0]
    from hypo.evaluate.alarms.evaluation import fit_default_feature_model
    from hypo.search.record import read_search_record

    fm = fit_default_feature_model(cuff["data"], manifest, read_search_record(cuff["exp"]))
    val = replay_split(Recordings.of(cuff["data"], manifest), "val", {"model": pred}, FAST, fm, log=lambda s: None)
    chosen = choose_on_validation(val, FAST, manifest)
    for row in cuff_result.rows:
        for op in ("fa_target", "sens_target"):
            assert row.thresholds[op]["threshold"] == chosen[row.name]["thresholds"][op]["threshold"]
            assert row.operating_points[op]["threshold"] == row.thresholds[op]["threshold"]
    assert cuff_result.thresholds_from.startswith("the validation split")
    with pytest.raises(ConfigError, match="cannot be judged on it"):
        evaluate_alarms({"model": pred}, cuff["data"], AlarmOptions(split="val", thresholds_from="val"))
    # thresholds given instead: the rows take them, and the test split is judged at them
    given = {"model": {"fa_target": 0.5, "sens_target": 0.2}}
    res, _ = evaluate_alarms({"model": pred}, cuff["data"], AlarmOptions(thresholds_from=given, cfg=FAST,
                                                                         feature_model=None, n_boot=0),
                             log=lambda s: None)
    assert res.rows[0].operating_points["fa_target"]["threshold"] == 0.5
    assert res.rows[1].operating_points == {}  # the last reading got no threshold: its curve only
    assert res.rows[1].curve["sensitivity"]


def test_a_case_that_fails_is_counted_not_fatal(cuff, monkeypatch):
    bad = split_cases(cuff["data"], "test")[0]["caseid"]
    real = DemoSource.load_case

    def load(self, ref):
        if ref["caseid"] == bad:
            raise CaseRejected("corrupt file", f"case {bad}: planted")
        return real(self, ref)

    monkeypatch.setattr(DemoSource, "load_case", load)
    lines = []
    res = alarm_evaluation(cuff["model"], cuff["data"], AlarmOptions(cfg=AlarmConfig(stride_s=60), feature_model=None,
                                                                     n_boot=0), log=lines.append)
    assert res.cases.failed == 1 and res.cases.failures[0].caseid == bad
    assert res.cases.failures[0].reason == "corrupt file"
    assert res.cases.scored == len(split_cases(cuff["data"], "test")) - 1
    assert any("could not be scored" in x for x in lines)
    assert f"case {bad}: corrupt file" in format_alarm_table(res)


def test_a_source_that_changed_is_refused(cuff, tmp_path):
    data = str(tmp_path / "copy")
    shutil.copytree(cuff["data"], data)
    manifest = read_manifest(data)
    spec = manifest.source.spec.model_copy(update={"seed": 7})  # the simulator would now yield other recordings
    write_manifest(data, manifest.model_copy(update={"source": manifest.source.model_copy(update={"spec": spec})}))
    with pytest.raises(HypoError, match="no longer yields the recordings"):
        alarm_evaluation(cuff["model"], data, AlarmOptions(feature_model=None, n_boot=0))
    fake = spec.model_copy(update={"name": "fake"})
    write_manifest(data, manifest.model_copy(update={"source": manifest.source.model_copy(update={"spec": fake})}))
    with pytest.raises(HypoError, match="cannot replay"):
        alarm_evaluation(cuff["model"], data, AlarmOptions(feature_model=None, n_boot=0))


def test_a_subsample_of_cases_is_deterministic_and_said():
    cases = [{"caseid": str(i)} for i in range(1, 30)]
    a, b = subsample(cases, 10), subsample(list(reversed(cases)), 10)
    assert len(a) == 10 and {c["caseid"] for c in a} == {c["caseid"] for c in b}
    assert subsample(cases, None) == cases


def test_art_labels_score_art_events_with_every_baseline(art):
    res, detail = evaluate_alarms({"model": trial_model(art["exp"])[0]}, art["data"],
                                  AlarmOptions(cfg=FAST, n_boot=N_BOOT), log=lambda s: None)
    names = [r.name for r in res.rows]
    assert names == ["model", LAST_READING, FEATURE_MODEL, LAST_ART, FREQUENT_CUFF]
    assert res.label_source == "art" and "arterial-line MAP" in res.events
    cuff_row = res.rows[-1]
    assert all(s["threshold"] == 65.0 and s["fixed"] for s in cuff_row.thresholds.values())
    # the events of a recording are its line's episodes under the label rule, merged when < 5 min apart
    from hypo.data.art import hypotension_episodes
    from hypo.learn.baseline import label_config

    ev = detail.replay.events[0]
    case = simulate_case(int(ev.caseid), 0, arterial=True)
    line = usable_arterial_line(case)[0]
    want = merge_episodes(hypotension_episodes(line, case.duration_s, label_config(read_manifest(art["data"]))), 300)
    np.testing.assert_array_equal(ev.episodes, want)
    assert ev.span[0] >= int(line.time[0]) and ev.span[1] <= case.duration_s
    # the simulated cuff reads the ART MAP every 2.5 min
    t = detail.replay.tracks[FREQUENT_CUFF][0].t
    assert len(t) > 1 and set(np.diff(t)) == {150}


@pytest.mark.slow  # end to end; CI runs it (pytest -m slow)
def test_report_has_the_alarm_section(cuff, tmp_path, capsys):
    out = str(tmp_path / "report")
    res = report_main([cuff["exp"], "--out", out, "--bootstrap", "30", "--alarm-stride", "60"])
    printed = capsys.readouterr().out
    alarms = res["results"]["alarms"]
    assert alarms["config"]["stride_s"] == 60 and [r["name"] for r in alarms["rows"]][0] == "model"
    assert "as an alarm" in printed and "baseline: last reading" in printed
    page = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert "As an alarm: episodes, lead time, false alarms" in page and "chosen on the validation split" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 6 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    for name in ("alarm_aoc.png", "alarm_leads.png", "alarm_examples.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    saved = json.load(open(os.path.join(out, "report.json")))
    assert saved["alarms"]["rows"][0]["thresholds"] == alarms["rows"][0]["thresholds"]
    res = report_main([cuff["exp"], "--out", str(tmp_path / "r2"), "--bootstrap", "10", "--no-alarms"])
    assert "alarms" not in res["results"]


def test_leaderboard_alarms_read_validation_only(cuff, tmp_path, capsys):
    looks = len(read_looks(cuff["exp"]))
    res = leaderboard_main([cuff["exp"], "--alarms", "1", "--out", str(tmp_path / "lb"), "--alarm-stride", "60"])
    assert len(read_looks(cuff["exp"])) == looks  # no look at the test split
    board = res["frame"]
    first = board[board["rank"] == 1].iloc[0]
    assert 0 <= first["val_alarm_sensitivity"] <= 1
    assert res["alarms"].cases.scored == len(split_cases(cuff["data"], "val"))
    md = open(tmp_path / "lb" / "leaderboard.md").read()
    assert "alarm_sens(val)*" in md and "selection-biased" in md
    assert "selection-biased" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        leaderboard_main([cuff["exp"], "--alarms", "5"])
    assert "--alarms must be between 1" in capsys.readouterr().err


def test_leaderboard_test_includes_the_alarm_table_in_its_one_look(cuff, tmp_path, capsys):
    looks = len(read_looks(cuff["exp"]))
    out = tmp_path / "lbt"
    leaderboard_main([cuff["exp"], "--test", "1", "--out", str(out), "--alarm-stride", "60"])
    assert len(read_looks(cuff["exp"])) == looks + 1  # one look, as before
    table = open(out / "test_table.md").read()
    assert "alarm evaluation, test split" in table and "chosen on the validation split" in table
    saved = json.load(open(out / "test_alarms.json"))
    assert [r["role"] for r in saved["rows"]][:1] == ["model"] and saved["split"] == "test"
    assert "false alarms/h" in capsys.readouterr().out


def test_the_result_is_a_record_written_and_read_back(cuff_result, tmp_path):
    path = cuff_result.write(str(tmp_path / "alarms.json"), indent=1)
    assert AlarmResult.read(path) == cuff_result
    on_disk = json.load(open(path))
    assert on_disk["format"] == "hypo-alarms/1" and list(on_disk)[:3] == ["format", "created", "data"]
    on_disk["rows"][0]["role"] = "oracle"
    (tmp_path / "bad.json").write_text(json.dumps(on_disk))
    with pytest.raises(HypoError) as exc:
        AlarmResult.read(str(tmp_path / "bad.json"))
    msg = str(exc.value)
    assert msg.startswith(f"{tmp_path / 'bad.json'}: field rows.0.role: ") and "\n" not in msg


def test_the_comparators_are_alarm_rows_beside_the_baselines(cuff_result):
    names = [r.name for r in cuff_result.comparators]
    assert names == ["cuff MAP < 72", "cuff MAP < 73", "MAP extrapolation", "last DBP"]
    assert [r.reads for r in cuff_result.rows] == ["model inputs", "cuff", "model inputs"]
    assert all(r.reads == "cuff" and r.kind == "reading" for r in cuff_result.comparators)
    fixed = cuff_result.row("cuff MAP < 72")
    assert all(s["threshold"] == 72.0 and s["fixed"] for s in fixed.thresholds.values())
    for r in (*cuff_result.rows, *cuff_result.comparators):
        for p in r.operating_points.values():
            assert p["ppv"]["value"] is None or 0 <= p["ppv"]["value"] <= 1
        assert set(r.strata) == set(r.operating_points)
    assert cuff_result.cases.hypotension_min_per_h > 0
    text = format_alarm_table(cuff_result)
    assert "PPV" in text and "hypotension burden" in text and "censored: an alarm starting" in text
    assert "cuff episodes: consecutive readings with MAP < 65" in text and "by the last cuff MAP" in text
    assert "DBP<" in text and "MAP<72.0 (fixed)" in text


def test_art_cases_replay_the_comparators_on_the_line_every_2_5_min(art):
    manifest = read_manifest(art["data"])
    info = split_cases(art["data"], "test")[0]
    case = simulate_case(int(info["caseid"]), 0, arterial=True)
    _, tracks = replay_case(case, info, {}, manifest, AlarmConfig(stride_s=60))
    for name in ("ART MAP < 72 every 2.5 min", "ART MAP extrapolation every 2.5 min", "last ART DBP every 2.5 min"):
        assert tracks[name].kind == "reading" and set(np.diff(tracks[name].t)) == {150}
    np.testing.assert_array_equal(tracks["ART MAP < 72 every 2.5 min"].score, tracks[FREQUENT_CUFF].score)
