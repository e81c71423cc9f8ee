"""Missing channels: models that take missing signal groups (availability mask, channel dropout), scoring under
channel loss, and exports that say which groups may be NaN (a channel-dropout model predicts on a recording
without MAC; older exports predict as before)."""

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from hypo.cli.predict import main as predict_main
from hypo.config import from_dict, to_dict
from hypo.data.signals import BIS, GROUP_NAMES, GROUPS, MAC, N_SIGNALS, NIBP, VITALDB_TRACKS
from hypo.data.sources.demo import case_duration_s, simulate_case
from hypo.data.sources.vital import write_vital_case
from hypo.errors import ConfigError, DatasetError
from hypo.evaluate.testsplit.channel_loss import CONDITIONS, model_channel_loss, without_group
from hypo.infer.export import load_exported
from hypo.infer.predict import predict_file
from hypo.learn.metrics import MetricWarning, evaluate_scores
from hypo.learn.models import MODELS, ModelConfig, build_model, count_parameters, predict_proba
from hypo.learn.train import TrainingData, drop_channels, dropout_groups, fit_arrays
from hypo.learn.train_config import TrainConfig

from demo_experiment import build_demo_dataset, plain_and_dropout_exports, write_legacy_export
from param_counts import MEAN, STD, conv, dense, lstm
from synthetic_windows import make_windows, manifest_record

torch.set_num_threads(2)


def windows(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.tensor(MEAN) + torch.tensor(STD) * torch.randn(n, 60, 7, generator=g)


def mask_params(name, k, n_in):
    """Parameters of a model whose body takes ``n_in`` channels (test_models pins n_in = 7)."""
    if name == "lstm":
        return lstm(n_in, k) + dense(k, 3)
    if name == "cnn":
        return conv(n_in, k) + dense(k, 7) + dense(7, 3)
    if name == "cnn_cnn":
        c1, c2, d = k, round(1.5 * k), round(50 * k / 42)
        return conv(n_in, c1) + conv(c1, c2) + dense(c2 * 3, d) + dense(d, 3)
    return conv(n_in, 21) + lstm(21, k) + dense(k, 3)


@pytest.mark.parametrize("name", MODELS)
def test_the_mask_adds_one_input_channel_per_group_and_defaults_keep_their_shapes(name):
    assert count_parameters(build_model(ModelConfig(name, 10), MEAN, STD)) == mask_params(name, 10, N_SIGNALS)
    masked = build_model(ModelConfig(name, 10, mask=True), MEAN, STD)
    assert count_parameters(masked) == mask_params(name, 10, N_SIGNALS + len(GROUP_NAMES))
    subset = build_model(ModelConfig(name, 10, signals=("nibp", "mac")), MEAN, STD)
    assert count_parameters(subset) == mask_params(name, 10, 4)
    both = build_model(ModelConfig(name, 10, signals=("nibp", "mac"), mask=True), MEAN, STD)
    assert count_parameters(both) == mask_params(name, 10, 6)
    # The state_dict keys of a default model are unchanged (older checkpoints load).
    assert set(build_model(ModelConfig(name, 10), MEAN, STD).state_dict()) == set(masked.state_dict())


def test_a_mask_model_feeds_absent_groups_as_zero_with_their_availability():
    torch.manual_seed(0)
    model = build_model(ModelConfig("cnn_cnn", 8, mask=True), MEAN, STD).eval()
    x = windows(6)
    x[:3, :, MAC] = float("nan")  # MAC absent from three windows
    x[1, 10:20, NIBP[1]] = float("nan")  # one cuff value missing for 10 s: the whole cuff group there
    z = (x - torch.tensor(MEAN)) / torch.tensor(STD)
    avail = torch.ones(6, 60, len(GROUP_NAMES))
    avail[:3, :, GROUP_NAMES.index("mac")] = 0
    avail[1, 10:20, GROUP_NAMES.index("nibp")] = 0
    z[:3, :, MAC] = 0
    z[1, 10:20, list(NIBP)] = 0
    with torch.no_grad():
        want = model.body(torch.cat([z, avail], dim=2))
        got = model(x)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want)
    plain = build_model(ModelConfig("cnn_cnn", 8), MEAN, STD).eval()
    with torch.no_grad():
        assert torch.isnan(plain(x)[:3]).all() and torch.isfinite(plain(x)[3:]).all()  # NaN in, NaN out, as before


def test_model_and_train_configs_keep_their_dicts_and_check_channel_dropout():
    cfg = TrainConfig(model=ModelConfig("cnn", 8))
    d = to_dict(cfg)
    assert "channel_dropout" not in d and set(d["model"]) == {"name", "k", "window_s"}
    assert from_dict(TrainConfig, d) == cfg
    masked = TrainConfig(model=ModelConfig("cnn", 8, mask=True, signals=["mac", "ecg"]), channel_dropout=0.2)
    d = to_dict(masked)
    assert d["channel_dropout"] == 0.2 and d["model"]["mask"] is True and d["model"]["signals"] == ["ecg", "mac"]
    assert from_dict(TrainConfig, d) == masked
    with pytest.raises(ConfigError, match="needs a model with the availability mask"):
        TrainConfig(model=ModelConfig("cnn", 8), channel_dropout=0.2)
    with pytest.raises(ConfigError, match="channel dropout must be in"):
        TrainConfig(model=ModelConfig("cnn", 8, mask=True), channel_dropout=1.0)
    with pytest.raises(ConfigError, match="unknown signal groups art"):
        ModelConfig("cnn", 8, signals=("art",))


def test_channel_dropout_drops_whole_groups_of_whole_windows_at_its_rate():
    x = torch.ones(20000, 60, N_SIGNALS)
    groups = dropout_groups(GROUP_NAMES)
    out = drop_channels(x, 0.25, groups, torch.Generator().manual_seed(3))
    nan = torch.isnan(out)
    assert (nan.all(dim=1) == nan.any(dim=1)).all()  # a group is absent for the whole window or not at all
    per_channel = nan.any(dim=1)  # [n, 7]
    assert (per_channel[:, NIBP[0]] == per_channel[:, NIBP[1]]).all()  # the cuff's three values together
    for g, chans in GROUPS.items():
        assert abs(per_channel[:, chans[0]].float().mean().item() - 0.25) < 0.015, g
    again = drop_channels(x, 0.25, groups, torch.Generator().manual_seed(3))
    assert torch.equal(torch.isnan(again), nan)  # seeded: a resumed run drops the same groups


def synthetic_split(n, seed):
    cols = make_windows(n, np.random.default_rng(seed))
    return type("Split", (), {"x": cols["x"], "label": cols["label"].astype(np.int64), "last_map": cols["last_map"],
                              "last_sbp": cols["last_sbp"], "horizon_labels": None, "__len__": lambda self: n})()


def test_channel_absent_scoring_of_a_model_without_dropout_is_the_group_at_its_train_mean():
    torch.manual_seed(0)
    split = synthetic_split(600, 1)
    mean = split.x.reshape(-1, N_SIGNALS).mean(0)
    std = split.x.reshape(-1, N_SIGNALS).std(0)
    model = build_model(ModelConfig("cnn", 16), mean, std).eval()
    got = model_channel_loss(model, model.cfg, split.x, split.label, mean)
    assert set(got) == set(CONDITIONS)
    for g, chans in GROUPS.items():
        by_hand = split.x.copy()
        by_hand[:, :, list(chans)] = mean[list(chans)]  # the group set to its train mean by hand
        with torch.no_grad():
            z = model.zscore(torch.from_numpy(by_hand))
        assert torch.allclose(z[:, :, list(chans)], torch.zeros(()), atol=1e-5)  # 0 after the z-score
        want = evaluate_scores(split.label, predict_proba(model, by_hand), warn=False)
        assert got[g]["mean_auroc"] == want["mean_auroc"] and got[g]["sum_auprc"] == want["sum_auprc"]
    full = evaluate_scores(split.label, predict_proba(model, split.x), warn=False)
    assert got["full"]["mean_auroc"] == full["mean_auroc"]
    assert any(got[g]["mean_auroc"] != full["mean_auroc"] for g in GROUP_NAMES)  # losing a group shows


def test_a_model_that_tolerates_a_group_gets_it_as_nan():
    torch.manual_seed(0)
    split = synthetic_split(300, 2)
    mean, std = split.x.reshape(-1, 7).mean(0), split.x.reshape(-1, 7).std(0)
    model = build_model(ModelConfig("cnn", 8, mask=True), mean, std).eval()
    got = model_channel_loss(model, model.cfg, split.x, split.label, mean)
    for g in GROUP_NAMES:
        want = evaluate_scores(split.label, predict_proba(model, without_group(split.x, g)), warn=False)
        assert got[g]["mean_auroc"] == want["mean_auroc"]


def fit_data(nan_mac=False):
    train, val = synthetic_split(800, 3), synthetic_split(300, 4)
    if nan_mac:
        train.x[:100, :, MAC] = np.nan
    mean = np.nanmean(train.x.reshape(-1, 7), 0)
    manifest = {"window_s": 60, "fingerprint": "f", "zscore": {"mean": mean.tolist(), "std": [1.0] * 7},
                "label": {"mode": "reading", "horizon_s": 300, "tolerance_s": 90, "hypo_map": 65.0,
                          "hyper_sbp": 160.0}, "counts": {"train": {"normal": 1, "hypotension": 1,
                                                                     "hypertension": 1}}}
    return TrainingData(train, val, manifest_record(**manifest))


def test_training_with_channel_dropout_is_seeded_and_windows_without_a_group_need_a_mask():
    cfg = TrainConfig(model=ModelConfig("cnn", 8, mask=True), channel_dropout=0.3, epochs=2, batch_size=128,
                      device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        a = fit_arrays(cfg, fit_data(nan_mac=True))
        b = fit_arrays(cfg, fit_data(nan_mac=True))
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert all(np.isfinite(h["loss"]) for h in a["history"]) and a["config"]["channel_dropout"] == 0.3
    plain = TrainConfig(model=ModelConfig("cnn", 8), epochs=1, batch_size=128, device="cpu")
    with pytest.raises(DatasetError, match="the train split has windows without mac"):
        fit_arrays(plain, fit_data(nan_mac=True))
    reads_no_mac = TrainConfig(model=ModelConfig("cnn", 8, signals=("ecg", "nibp", "pleth", "bis")), epochs=1,
                               batch_size=128, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        assert np.isfinite(fit_arrays(reads_no_mac, fit_data(nan_mac=True))["history"][0]["loss"])


# ------------------------------------------------------------------------------- export and predict


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Two exports from demo cases 1-40: one trained with channel dropout, one without (one epoch each)."""
    root = tmp_path_factory.mktemp("channels")
    build_demo_dataset(str(root / "demo"), n_cases=40)
    return plain_and_dropout_exports(str(root / "demo"), str(root))


def recording(tmp_path, lacking=()):
    """A demo case after the training cases as a .vital file, without the tracks of ``lacking``."""
    cid = next(i for i in range(41, 10_000) if case_duration_s(i) >= 5400)
    tracks = [None if i in lacking else t for i, t in enumerate(VITALDB_TRACKS)]
    return str(write_vital_case(simulate_case(cid), tmp_path / f"case{'-'.join(map(str, lacking))}.vital",
                                tracks=tracks))


def test_sidecars_list_the_groups_that_may_be_nan(exports):
    _, plain = load_exported(exports["plain"])
    _, drop = load_exported(exports["dropout"])
    assert plain.tolerates_missing == [] and plain.input.missing_values.startswith("none allowed")
    assert drop.tolerates_missing == list(GROUP_NAMES) and drop.trial.channel_dropout == 0.3
    assert "NaN allowed in these signal groups" in drop.input.missing_values
    assert drop.input.shape == ["n", 60, 7] and plain.nibp_merge_s == 3


def test_a_channel_dropout_model_predicts_on_a_recording_without_mac(exports, tmp_path, capsys):
    path = recording(tmp_path, lacking=(MAC,))
    lines = []
    res = predict_file(path, exports["dropout"], 60, out_dir=str(tmp_path / "out"), plot=False, log=lines.append)
    pred = res["prediction"]
    assert pred.absent == ("mac",) and pred.n_predicted > 0.7 * len(pred.t_end)
    df = pd.read_csv(res["csv"])
    ok = df[["p_normal", "p_hypotension", "p_hypertension"]].notna().all(axis=1)
    assert np.allclose(df.loc[ok, ["p_normal", "p_hypotension", "p_hypertension"]].sum(axis=1), 1, atol=1e-3)
    assert any("has no mac" in line for line in lines)
    # The same recording with MAC: predictions differ only because MAC is there.
    full = predict_file(recording(tmp_path), exports["dropout"], 60, out_dir=str(tmp_path / "full"), plot=False,
                        log=lambda _: None)["prediction"]
    assert full.absent == () and full.n_predicted >= pred.n_predicted * 0.9
    both_ok = np.isfinite(full.probs).all(1) & np.isfinite(pred.probs).all(1)
    assert not np.allclose(full.probs[both_ok], pred.probs[both_ok])
    # Without BIS too, and without both.
    both = predict_file(recording(tmp_path, lacking=(MAC, BIS)), exports["dropout"], 60,
                        out_dir=str(tmp_path / "both"), plot=False, log=lambda _: None)["prediction"]
    assert both.absent == ("mac", "bis") and both.n_predicted > 0
    # A model trained without channel dropout refuses that recording in one line, as before.
    with pytest.raises(SystemExit) as exc:
        predict_main([path, "--model", exports["plain"], "--out", str(tmp_path / "x"), "--no-plot"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "missing track" in err and "mac" in err
    # Other gaps stay a refusal even for the dropout model: a recording without the cuff.
    with pytest.raises(SystemExit) as exc:
        predict_main([recording(tmp_path, lacking=NIBP), "--model", exports["dropout"], "--out", str(tmp_path / "y")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "nibp_sbp" in err


def test_exports_made_before_tolerated_groups_existed_predict_unchanged(exports, tmp_path):
    module, sidecar = load_exported(exports["plain"])
    old = {k: v for k, v in sidecar.to_dict().items() if k not in ("schema_version", "tolerates_missing",
                                                                  "signals_read", "nibp_merge_s", "model_sha256")}
    old["input"] = dict(old["input"], missing_values="none allowed: a window holding NaN gets NaN probabilities")
    old_path, _ = write_legacy_export(module, old, str(tmp_path / "old" / "model.pt"))
    _, reloaded = load_exported(old_path)
    assert "tolerates_missing" not in reloaded.model_fields_set
    path = recording(tmp_path)
    new = predict_file(path, exports["plain"], 60, out_dir=str(tmp_path / "new"), plot=False, log=lambda _: None)
    was = predict_file(path, old_path, 60, out_dir=str(tmp_path / "was"), plot=False, log=lambda _: None)
    pd.testing.assert_frame_equal(pd.read_csv(new["csv"]), pd.read_csv(was["csv"]))


# ------------------------------------------------------------------------------- --test and the report


@pytest.mark.slow  # end to end; CI runs it (pytest -m slow)
def test_leaderboard_test_and_report_score_every_model_under_channel_loss(exports, tmp_path):
    from hypo.cli.leaderboard import main as leaderboard_main
    from hypo.cli.report import main as report_main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        res = leaderboard_main([exports["exp"], "--test", "2", "--out", str(tmp_path)])
        rep = report_main([exports["exp"], "--bootstrap", "20", "--out", str(tmp_path / "report")])
    loss = pd.read_csv(tmp_path / "channel_loss.csv")
    rows = set(loss["row"])
    assert {"baseline: last reading", "baseline: feature model"} <= rows and len(rows) == 4
    assert set(loss["condition"]) == set(CONDITIONS) and len(loss) == 4 * len(CONDITIONS)
    last = loss[loss["row"] == "baseline: last reading"].set_index("condition")
    assert not last.loc["nibp", "available"] and np.isnan(last.loc["nibp", "mean_auroc"])
    assert last.loc["mac", "mean_auroc"] == last.loc["full", "mean_auroc"]
    test = res["test"]
    for _, r in test[test["rank"].notna()].iterrows():  # the full-input column is the --test figure
        full = loss[(loss["row"] == f"#{int(r['rank'])} {r['trial']}") & (loss["condition"] == "full")]
        assert full["mean_auroc"].iloc[0] == pytest.approx(r["test_mean_auroc"])
    md = open(tmp_path / "test_table.md").read()
    assert "| row | full input | ECG absent | cuff (NIBP) absent | PLETH absent | MAC absent | BIS absent |" in md
    results = rep["results"]
    section = results["channel_loss"]["rows"]
    assert section[0]["metrics"]["full"]["mean_auroc"] == pytest.approx(results["metrics"]["mean_auroc"])
    assert [r["name"] for r in section[1:]] == [f"baseline: {b['name']}" for b in results["baselines"]]
    html = open(rep["paths"]["html"]).read()
    assert "Under channel loss" in html and "unavailable" in html
    saved = json.load(open(rep["paths"]["json"]))
    assert saved["channel_loss"]["rows"][1]["metrics"]["nibp"] is None
    assert os.path.exists(tmp_path / "test_results.csv")
