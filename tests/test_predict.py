"""hypo predict on genuine .vital files: demo recordings, a real VitalDB export, gaps, and every one-line refusal."""

import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from hypo.cli.predict import main
from hypo.config import WindowConfig
from hypo.data.pipeline import process_case
from hypo.data.signals import BIS, ECG, MAC, MBP, NIBP, VITALDB_TRACKS
from hypo.data.sources.base import Case
from hypo.data.sources.demo import case_duration_s, simulate_case
from hypo.data.sources.vital import read_vital_case, write_vital_case
from hypo.infer.model import ExportedModel
from hypo.infer.predict import predict_case, predict_file

from demo_experiment import exported_demo_model
from vital_server import SAMPLES, export_to_vital

COLUMNS = ["time_s", "time", "p_normal", "p_hypotension", "p_hypertension", "alarm", "last_reading_s", "last_sbp",
           "last_map", "last_dbp", "outcome_s", "outcome_map", "outcome_sbp", "outcome"]
needs_samples = pytest.mark.usefixtures("real_samples")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An exported model trained on demo cases 1-40 (one epoch: the plumbing, not the skill, is under test)."""
    return exported_demo_model(tmp_path_factory.mktemp("predict"), epochs=1)["model"]


def demo_case(min_s: int, start: int = 41) -> Case:
    """The first demo case after the training cases that lasts at least ``min_s`` seconds."""
    cid = next(i for i in range(start, 10_000) if case_duration_s(i) >= min_s)
    return simulate_case(cid)


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith("hypo predict: error: "), err
    return err.strip()


def test_demo_recording_gives_csv_and_timeline_filled_as_in_training(model, tmp_path):
    case = demo_case(7200)
    path = write_vital_case(case, tmp_path / "demo.vital")
    res = predict_file(str(path), model, 60, out_dir=str(tmp_path / "out"), log=lambda s: None)
    pred = res["prediction"]
    df = pd.read_csv(res["csv"])
    assert list(df.columns) == COLUMNS
    assert len(df) == case.duration_s // 60 and df["time_s"].iloc[0] == 59
    assert df["time"].iloc[1] == "0:01:59"
    assert os.path.getsize(res["png"]) < 300_000
    ok = df[["p_normal", "p_hypotension", "p_hypertension"]].notna().all(axis=1)
    assert ok.sum() == pred.n_predicted > 0.7 * len(df)
    assert np.allclose(df.loc[ok, ["p_normal", "p_hypotension", "p_hypertension"]].sum(axis=1), 1, atol=1e-3)
    assert set(df.loc[ok, "alarm"]) <= {"normal", "hypotension", "hypertension"} and df.loc[~ok, "alarm"].isna().all()

    # The windows the training data would hold for this case get exactly the model's probabilities on them.
    module = ExportedModel.load(model).module
    win, _ = process_case(read_vital_case(path, "x", "x"), WindowConfig())
    with torch.no_grad():
        want = module(torch.from_numpy(win.x)).numpy()
    row = {t: i for i, t in enumerate(pred.t_end)}
    got = pred.probs[[row[t] for t in win.t_end]]
    np.testing.assert_allclose(got, want, atol=1e-6)
    # The outcome columns are the training labels of those windows.
    names = np.array(["normal", "hypotension", "hypertension"])
    assert list(df.set_index("time_s").loc[win.t_end, "outcome"]) == list(names[win.label])
    # The last reading is the one at or before the window end.
    r = df.dropna(subset=["last_reading_s"])
    assert (r["last_reading_s"] <= r["time_s"]).all()


def test_stride_sets_the_number_of_windows(model, tmp_path):
    case = demo_case(3600)
    path = write_vital_case(case, tmp_path / "s.vital")
    res = predict_file(str(path), model, 10, out_dir=str(tmp_path), plot=False, log=lambda s: None)
    assert res["png"] is None
    assert len(pd.read_csv(res["csv"])) == (case.duration_s - 60) // 10 + 1


def test_a_gap_in_the_middle_is_a_gap_not_invented_predictions(model, tmp_path):
    case = demo_case(3 * 3600)
    sig = case.signals.copy()
    g0, g1 = 3600, 3600 + 2400  # 40 minutes without any signal
    sig[g0:g1] = np.nan
    path = write_vital_case(Case(case.caseid, case.subjectid, sig), tmp_path / "gap.vital")
    res = predict_file(str(path), model, 60, out_dir=str(tmp_path), log=lambda s: None)
    df = pd.read_csv(res["csv"])
    has = df["p_hypotension"].notna()
    overlaps = (df["time_s"] >= g0) & (df["time_s"] - 59 < g1)
    assert overlaps.sum() == 40 and not has[overlaps].any()
    assert has[df["time_s"] < g0 - 600].mean() > 0.7
    assert has[df["time_s"] > g1 + 900].mean() > 0.7  # predictions resume once the signals are back
    assert os.path.getsize(res["png"]) > 0


def test_too_short_recording_is_one_line(model, tmp_path, capsys):
    case = demo_case(3600)
    path = write_vital_case(Case("s", "s", case.signals[:900]), tmp_path / "short.vital")
    err = run_cli([str(path), "--model", model, "--out", str(tmp_path)], capsys)
    assert "recording too short: 900 s" in err and "1200 s" in err
    err = run_cli([str(path), "--model", model, "--stride", "0"], capsys)
    assert "--stride must be a positive whole number" in err


def test_missing_track_is_one_line_naming_it(model, tmp_path, capsys):
    tracks = list(VITALDB_TRACKS)
    tracks[MAC] = None
    path = write_vital_case(demo_case(3600), tmp_path / "nomac.vital", tracks=tracks)
    err = run_cli([str(path), "--model", model], capsys)
    assert "missing track" in err and "mac (Primus/MAC)" in err


@pytest.mark.parametrize("signal, scale, needle", [
    (NIBP, 0.133322, "nibp_sbp has median"),  # kPa instead of mmHg
    ((BIS,), 0.01, "bis has median"),  # BIS on a 0-1 scale
    ((ECG,), 1000.0, "ecg has 99th percentile"),  # microvolts
])
def test_wrong_units_is_one_line(model, tmp_path, capsys, signal, scale, needle):
    case = demo_case(3600)
    sig = case.signals.copy()
    sig[:, list(signal)] *= scale
    path = write_vital_case(Case("u", "u", sig), tmp_path / "units.vital")
    err = run_cli([str(path), "--model", model], capsys)
    assert needle in err and "wrong units" in err


def test_a_track_declaring_kpa_is_one_line(model, tmp_path, capsys):
    import vitaldb

    path = write_vital_case(demo_case(3600), tmp_path / "kpa.vital")
    vf = vitaldb.VitalFile(str(path))
    vf.find_track("Solar8000/NIBP_MBP").unit = "kPa"
    vf.to_vital(str(path))
    err = run_cli([str(path), "--model", model], capsys)
    assert "Solar8000/NIBP_MBP (used as nibp_mbp) is in kPa; hypo expects mmHg" in err


def test_missing_model_is_one_line(tmp_path, capsys):
    path = write_vital_case(demo_case(3600), tmp_path / "m.vital")
    err = run_cli([str(path), "--model", str(tmp_path / "none.pt")], capsys)
    assert "no model at" in err


@needs_samples
def test_real_vitaldb_export_lacks_nibp_so_the_answer_is_the_missing_track_line(model, tmp_path, capsys):
    path = tmp_path / "2272.vital"
    export_to_vital(SAMPLES / "case2272_1s_export.csv", path, crop_s=5400)
    err = run_cli([str(path), "--model", model], capsys)
    assert "missing track" in err
    for sig in ("nibp_sbp", "nibp_mbp", "nibp_dbp", "pleth", "mac"):
        assert sig in err
    assert "ecg" not in err.split("file has")[0] and "bis (" not in err  # those two the export does have


@needs_samples
def test_real_export_with_a_track_map_supplying_the_missing_signals_predicts(model, tmp_path, capsys):
    """Real ECG and BIS from the export; cuff, pleth and MAC (absent there) from a demo case, under other names."""
    real = pd.read_csv(SAMPLES / "case2272_1s_export.csv", index_col=0, nrows=5400)
    sim = demo_case(5400).signals[:5400]
    sig = sim.copy()
    sig[:, ECG] = real["SNUADC/ECG_II"].to_numpy(np.float32)
    sig[:, BIS] = real["BIS/BIS"].to_numpy(np.float32)
    names = ["SNUADC/ECG_II", "Intellivue/NIBP_SYS", "Intellivue/NIBP_MEAN", "Intellivue/NIBP_DIA",
             "Intellivue/PLETH", "Datex/MAC", "BIS/BIS"]
    path = write_vital_case(Case("2272", "2272", sig), tmp_path / "2272_mapped.vital", tracks=names)
    err = run_cli([str(path), "--model", model], capsys)
    assert "missing track" in err and "nibp_sbp (Solar8000/NIBP_SBP)" in err
    tmap = tmp_path / "map.json"
    tmap.write_text(json.dumps({"nibp_sbp": ["Solar8000/NIBP_SBP", "Intellivue/NIBP_SYS"],
                                "nibp_mbp": ["Solar8000/NIBP_MBP", "Intellivue/NIBP_MEAN"],
                                "nibp_dbp": ["Solar8000/NIBP_DBP", "Intellivue/NIBP_DIA"],
                                "pleth": ["SNUADC/PLETH", "Intellivue/PLETH"], "mac": ["Primus/MAC", "Datex/MAC"]}))
    res = main([str(path), "--model", model, "--track-map", str(tmap), "--out", str(tmp_path / "out")])
    df = pd.read_csv(res["csv"])
    assert len(df) == 90 and df["p_hypotension"].notna().sum() > 45
    readings = res["prediction"].readings  # the mapped cuff tracks are the readings
    assert len(readings["time"]) > 10 and np.array_equal(readings["map"], sim[readings["time"], MBP])


def test_ten_hour_recording_at_a_ten_second_stride(model, tmp_path):
    """The benchmark's recording (its speed is measured by ``bench/predict.py``, not asserted here)."""
    case = demo_case(36_000, start=1)
    path = write_vital_case(Case("long", "long", case.signals[:36_000]), tmp_path / "ten.vital")
    res = predict_file(str(path), model, 10, out_dir=str(tmp_path), log=lambda s: None)
    pred = res["prediction"]
    assert len(pred.t_end) == 3595 and np.array_equal(np.diff(pred.t_end), np.full(3594, 10))
    assert {"read_s", "clean_s", "predict_s", "csv_s", "total_s"} <= set(res["timings"]), res["timings"]
    df = pd.read_csv(res["csv"])
    assert len(df) == 3595 and df["p_hypotension"].notna().mean() > 0.9


def test_bad_paths_and_files_are_one_line_before_any_work(model, tmp_path, capsys):
    good = write_vital_case(demo_case(3600), tmp_path / "good.vital")
    corrupt = tmp_path / "corrupt.vital"
    corrupt.write_bytes(good.read_bytes()[:5000])  # truncated mid-file
    junk = tmp_path / "junk.vital"
    junk.write_bytes(b"not a vital file at all")
    bad_map = tmp_path / "map.json"
    bad_map.write_text("{not json")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for argv, needle in (
        ([str(tmp_path / "absent.vital"), "--model", model], "absent.vital"),
        ([str(corrupt), "--model", model, "--out", str(tmp_path / "o1")], "corrupt.vital"),
        ([str(junk), "--model", model, "--out", str(tmp_path / "o2")], "junk.vital"),
        ([str(good), "--model", model, "--track-map", str(bad_map)], "map.json"),
        ([str(good), "--model", model, "--track-map", str(tmp_path / "nomap.json")], "nomap.json"),
        ([str(good), "--model", model, "--out", str(a_file)], "is a file, not a folder"),
        ([str(good), "--model", model, "--stride", "abc"], "--stride"),
    ):
        assert needle in run_cli(argv, capsys)
    assert not list(tmp_path.glob("*_predictions.csv")) and not list(tmp_path.glob("o*/*.csv"))


@pytest.mark.parametrize("signal, name", [(MBP, "nibp_mbp"), (BIS, "bis")])
def test_an_all_nan_signal_is_one_line_naming_it(model, tmp_path, capsys, signal, name):
    sig = demo_case(3600).signals.copy()
    sig[:, NIBP if signal == MBP else signal] = np.nan  # no cuff reading at all, or a BIS never connected
    path = write_vital_case(Case("n", "n", sig), tmp_path / "nan.vital")
    err = run_cli([str(path), "--model", model], capsys)
    assert name in err and ("all-NaN" in err or "missing track" in err)


def test_an_idle_bis_sensor_is_not_mistaken_for_wrong_units(model, tmp_path):
    sig = demo_case(3600).signals.copy()
    sig[: int(len(sig) * 0.7), BIS] = 0.0  # BIS reads 0 for most of the case (sensor idle), kept by training too
    path = write_vital_case(Case("b", "b", sig), tmp_path / "bis0.vital")
    res = predict_file(str(path), model, 60, out_dir=str(tmp_path), plot=False, log=lambda s: None)
    assert res["prediction"].n_predicted > 0


def test_a_stride_longer_than_the_recording_gives_its_first_window(model, tmp_path):
    case = demo_case(3600)
    path = write_vital_case(case, tmp_path / "one.vital")
    res = predict_file(str(path), model, 10 ** 6, out_dir=str(tmp_path), plot=False, log=lambda s: None)
    assert res["prediction"].t_end.tolist() == [59]


def test_outcomes_follow_the_models_own_label_rule(model, tmp_path):
    """In hindsight columns, a model trained on the paper's forward-filled labels is judged by that rule."""
    exported = ExportedModel.load(model)
    sidecar = exported.sidecar
    case = demo_case(4 * 3600)
    honest = predict_case(case, exported, 60)
    ffill = predict_case(case, dataclasses.replace(exported, sidecar=sidecar.model_copy(
        update={"label": dataclasses.replace(sidecar.label, mode="ffill")})), 60)
    h_ok, f_ok = honest.outcome["time"] >= 0, ffill.outcome["time"] >= 0
    assert (honest.outcome["time"][h_ok] > honest.t_end[h_ok]).all()  # reading mode: strictly after the window
    assert (ffill.outcome["time"][f_ok] <= ffill.t_end[f_ok]).any()  # ffill: the value may stem from inside it
    assert f_ok.sum() > h_ok.sum()


def test_cuff_lines_break_where_readings_stop():
    from hypo.infer.timeline import _break_at_gaps

    t, y = _break_at_gaps(np.array([0, 180, 2000, 2200]), 900, np.array([90, 85, 70, 75]))
    assert np.isnan(t[2]) and np.isnan(y[2]) and t[[0, 1, 3, 4]].tolist() == [0, 180, 2000, 2200]
    t, y = _break_at_gaps(np.array([0, 180, 360]), 900, np.array([90, 85, 70]))
    assert not np.isnan(t).any() and y.tolist() == [90, 85, 70]
