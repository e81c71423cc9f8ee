"""Cases that lack a signal group for their whole length (TIVA: no MAC; no BIS sensor): kept with ``--allow-missing``
with the group NaN, marked and counted; models trained on them take missing groups."""

import dataclasses
import glob
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest

from hypo.cli.train import main as train_main
from hypo.cli.windows import main as windows_main
from hypo.config import WindowConfig, to_dict
from hypo.data.dataset import absent_groups, load_split, read_manifest
from hypo.data.manifest import write_manifest
from hypo.data.pipeline import process_case, run_case
from hypo.data.preprocess import build_windows, make_manifest, summary_lines
from hypo.data.signals import BIS, MAC, N_SIGNALS, SIGNALS, VITALDB_TRACKS
from hypo.data.sources.base import Case
from hypo.data.sources.vital import VitalDirSource, read_vital_case, write_vital_case
from hypo.errors import CaseRejected, ConfigError
from hypo.evaluate.alarms.metrics import AlarmConfig
from hypo.evaluate.alarms.replay import LAST_READING, Recordings, dataset_rules, replay_split
from hypo.infer.predict import window_config
from hypo.learn.feature_model import fit_feature_model
from hypo.learn.metrics import MetricWarning

from fake_sources import synthetic_case
from synthetic_windows import manifest_record

LACKS = {"2": (MAC,), "5": (BIS,), "7": (MAC, BIS), "9": (MAC,)}


def case(cid: str, seconds: int = 3600) -> Case:
    sig = synthetic_case(int(cid), seconds)
    for col in LACKS.get(cid, ()):
        sig[:, col] = np.nan
    return Case(cid, f"s{cid}", sig)


def test_a_tiva_case_is_rejected_by_default_and_kept_with_mac_nan_when_allowed():
    tiva = case("2")
    with pytest.raises(CaseRejected, match="all-NaN signal: case 2: no values for mac"):
        process_case(tiva, WindowConfig())
    win, summary = process_case(tiva, WindowConfig(allow_missing=("mac",)))
    assert len(win) > 20 and summary["absent"] == ["mac"]
    assert np.isnan(win.x[:, :, MAC]).all()
    others = [i for i in range(N_SIGNALS) if i != MAC]
    assert np.isfinite(win.x[:, :, others]).all()
    # The same case with its MAC: every window kept there is kept without it, with the same other signals.
    full, _ = process_case(Case("2", "s2", synthetic_case(2, 3600)), WindowConfig())
    common = np.isin(win.t_end, full.t_end)
    assert set(full.t_end) <= set(win.t_end)
    np.testing.assert_array_equal(win.x[common][:, :, others], full.x[:, :, others])
    np.testing.assert_array_equal(win.label[common], full.label)
    # Allowing MAC does not excuse a missing BIS.
    with pytest.raises(CaseRejected, match="no values for bis"):
        process_case(case("5"), WindowConfig(allow_missing=("mac",)))


class MixedSource:
    name = "mixed"
    allow_missing = ("mac", "bis")

    def case_refs(self):
        return [{"caseid": str(i)} for i in range(1, 13)]

    def load_case(self, ref):
        return case(ref["caseid"])

    def fingerprint(self):
        return "mixed"

    def report(self):
        return {"simulated": True}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("mixed") / "ds")
    cfg = WindowConfig(allow_missing=("mac", "bis"), split=WindowConfig().split)
    src = MixedSource()
    summaries = [run_case(r, src, cfg, out) for r in src.case_refs()]
    manifest = make_manifest(summaries, cfg, src, 0.0)
    write_manifest(out, manifest)
    return out, manifest, summaries


def test_kept_windows_are_marked_and_counted_in_the_manifest(mixed):
    out, m, summaries = mixed
    assert m.cases.ok == 12 and list(m.config.allow_missing) == ["mac", "bis"]
    gone = m.absent_groups
    assert gone.cases == {"mac": 3, "bis": 2}
    by_case = {s["caseid"]: s for s in summaries}
    for g in ("mac", "bis"):
        want = {sp: sum(s["n_windows"] for s in summaries if s["split"] == sp and g in s["absent"])
                for sp in ("train", "val", "test")}
        assert {sp: w[g] for sp, w in gone.windows.items()} == want
    for path in glob.glob(f"{out}/windows/*/*.parquet"):
        t = pq.read_table(path)
        cid = t.column("caseid")[0].as_py()
        marks = set(t.column("absent").to_pylist())
        want = "+".join(g for g, c in (("mac", MAC), ("bis", BIS)) if c in LACKS.get(cid, ()))
        assert marks == {want} and by_case[cid]["absent"] == [g for g in want.split("+") if g]
        x = np.stack(t.column("x").to_numpy(zero_copy_only=False)).reshape(-1, 60, N_SIGNALS)
        for col in (MAC, BIS):
            assert np.isnan(x[:, :, col]).all() == (col in LACKS.get(cid, ()))
    assert absent_groups(read_manifest(out)) == ("mac", "bis")
    assert any(line.startswith("kept without a group (--allow-missing mac,bis): mac 3 cases, bis 2 cases")
               for line in summary_lines(m))


def test_the_train_zscore_leaves_absent_values_out(mixed):
    out, m, _ = mixed
    x = load_split(out, "train").x.reshape(-1, N_SIGNALS).astype(np.float64)
    np.testing.assert_allclose(m.zscore.mean, np.nanmean(x, axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(m.zscore.std, np.nanstd(x, axis=0), rtol=1e-4)
    assert np.isfinite(m.zscore.mean).all()
    n = m.zscore.n_values
    assert isinstance(n, list) and n == np.isfinite(x).sum(axis=0).tolist() and min(n) < n[0] == len(x)


def test_models_trained_on_such_windows_take_missing_groups(mixed, tmp_path, capsys):
    out, _, _ = mixed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        res = train_main(["--data", out, "--model", "cnn", "--k", "8", "--epochs", "1", "--batch-size", "256",
                          "--loss", "ce", "--device", "cpu", "--out", str(tmp_path / "run")])
    assert res["config"]["model"]["mask"] is True and "channel_dropout" not in res["config"]
    assert np.isfinite(res["history"][0]["loss"]) and np.isfinite(res["history"][0]["val_loss"])
    assert "takes missing groups" in capsys.readouterr().out
    # A model that reads neither group needs no mask.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        res = train_main(["--data", out, "--model", "cnn", "--k", "8", "--epochs", "1", "--batch-size", "256",
                          "--loss", "ce", "--device", "cpu", "--signals", "ecg,nibp,pleth",
                          "--out", str(tmp_path / "run2")])
    assert "mask" not in res["config"]["model"] and res["config"]["model"]["signals"] == ["ecg", "nibp", "pleth"]
    fm = fit_feature_model(load_split(out, "train"), load_split(out, "val"))
    assert np.isfinite(fm.scores(load_split(out, "test").x)).all()


def test_alarm_replay_repeats_the_datasets_own_window_rules(mixed):
    # The rules a replay prepares recordings with are the dataset's, --allow-missing and --nibp-merge-s included.
    cfg = WindowConfig(allow_missing=("bis",), nibp_merge_s=0)
    got = window_config(dataset_rules(manifest_record(config=to_dict(cfg))), 30)
    assert dataclasses.replace(got, split=cfg.split) == dataclasses.replace(cfg, stride_s=30)
    # So the cases the build kept without MAC or BIS are scored, not counted as failed.
    out, m, _ = mixed
    scored = []
    for split in ("train", "val", "test"):
        rep = replay_split(Recordings(out, m, MixedSource()), split, {}, AlarmConfig(), log=lambda s: None)
        assert rep.failures == [] and len(rep.tracks[LAST_READING]) == len(rep.events)
        scored += [e.caseid for e in rep.events]
    assert sorted(scored, key=int) == [str(i) for i in range(1, 13)]


def write_tiva_files(folder, n=6):
    """``.vital`` files with VitalDB track names; files 2 and 4 have no MAC track at all (TIVA)."""
    for i in range(1, n + 1):
        tracks = [None if (j == MAC and i in (2, 4)) else t for j, t in enumerate(VITALDB_TRACKS)]
        write_vital_case(Case(f"or{i}", f"s{i}", synthetic_case(i, 2400)), folder / f"or{i}.vital", tracks=tracks)


def test_vital_files_without_a_mac_track(tmp_path):
    write_tiva_files(tmp_path, 2)
    with pytest.raises(CaseRejected) as exc:
        read_vital_case(tmp_path / "or2.vital", "or2", "s2")
    assert exc.value.reason == "missing track" and "mac" in exc.value.detail
    got = read_vital_case(tmp_path / "or2.vital", "or2", "s2", allow_missing=("mac",))
    want = synthetic_case(2, 2400)
    assert np.isnan(got.signals[:, MAC]).all()
    others = [i for i in range(N_SIGNALS) if i != MAC]
    np.testing.assert_array_equal(got.signals[:, others], want[:, others])
    with pytest.raises(ConfigError, match="the source still rejects files without mac"):
        build_windows(VitalDirSource(tmp_path), WindowConfig(allow_missing=("mac",)), str(tmp_path / "out"))


@pytest.mark.slow  # end to end; CI runs it (pytest -m slow)
def test_hypo_windows_keeps_tiva_files_with_allow_missing(ray_local, tmp_path, capsys):
    write_tiva_files(tmp_path / "vital")
    base = ["--source", "vital-dir", "--path", str(tmp_path / "vital"), "--no-progress", "--split", "0.5", "0.25",
            "0.25"]
    m = windows_main([*base, "--out", str(tmp_path / "strict")])
    assert m.rejected_counts == {"missing track": 2}
    m = windows_main([*base, "--out", str(tmp_path / "tiva"), "--allow-missing", "mac"])
    assert m.cases.ok == 6 and m.absent_groups.cases == {"mac": 2}
    assert m.source.report["allow_missing"] == ["mac"]
    printed = capsys.readouterr().out
    assert "kept without a group (--allow-missing mac): mac 2 cases" in printed
    assert SIGNALS[MAC] == "mac"
