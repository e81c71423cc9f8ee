"""Models with per-horizon risks: the discrete-time hazard head (monotone by construction) and independent heads."""

import math

import numpy as np
import pytest
import torch

from hypo.config import LabelConfig, WindowConfig, to_dict
from hypo.data.dataset import load_split
from hypo.errors import ConfigError, DatasetError
from hypo.learn.losses import HorizonLoss, horizon_bce, make_loss
from hypo.learn.models import ModelConfig, cumulative_risk, predict_horizon_risk, predict_proba
from hypo.learn.train import TrainConfig, fit_arrays, load_data

from demo_experiment import build_demo_dataset

HORIZONS = (60, 180, 300, 600, 900)


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("h") / "d")
    build_demo_dataset(out, 8, cfg=WindowConfig(label=LabelConfig(horizons_s=HORIZONS)))
    return out


def _cfg(head: str, name: str = "cnn", epochs: int = 2) -> TrainConfig:
    return TrainConfig(model=ModelConfig(name=name, k=8, head=head, n_horizons=len(HORIZONS)), epochs=epochs,
                       batch_size=256, device="cpu")


def test_hazard_risk_is_monotone_for_any_logits():
    a = torch.randn(500, 5) * 6
    risk = cumulative_risk(a, "hazard")
    assert (risk.diff(dim=1) >= 0).all() and ((risk >= 0) & (risk <= 1)).all()
    hazard = torch.sigmoid(a.double())  # the definition: 1 - prod (1 - q_j)
    assert torch.allclose(risk.double(), 1 - torch.cumprod(1 - hazard, dim=1), atol=1e-6)
    assert not (cumulative_risk(a, "independent").diff(dim=1) >= 0).all()  # nothing ties independent heads


@pytest.mark.parametrize("head", ["hazard", "independent"])
def test_horizon_bce_is_the_bce_of_the_risk_and_masks_unknown_targets(head):
    torch.manual_seed(0)
    a = torch.randn(64, 5, requires_grad=True)
    y = torch.randint(-1, 2, (64, 5))
    loss = horizon_bce(a, y, head)
    r = cumulative_risk(a, head).double()
    known = y >= 0
    want = torch.nn.functional.binary_cross_entropy(r[known], y[known].double())
    assert math.isclose(loss.item(), float(want), rel_tol=1e-4)
    loss.backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    assert float(horizon_bce(a, torch.full((64, 5), -1), head)) == 0.0  # nothing known: no loss, no NaN


def test_model_config_refuses_a_head_without_horizons():
    with pytest.raises(ConfigError, match="--horizons"):
        ModelConfig(head="hazard")
    with pytest.raises(ConfigError, match="head must be one of"):
        ModelConfig(head="cox", n_horizons=3)
    assert "head" not in to_dict(ModelConfig()) and "n_horizons" not in to_dict(ModelConfig())


def test_a_class_dataset_refuses_the_hazard_head(tmp_path):
    build_demo_dataset(str(tmp_path / "s"), 6)
    with pytest.raises(DatasetError, match="--horizons"):
        fit_arrays(_cfg("hazard", epochs=1), load_data(str(tmp_path / "s")))


def test_trained_hazard_model_is_monotone_on_every_window_and_records_every_horizon(multi):
    data = load_data(multi)
    result = fit_arrays(_cfg("hazard", epochs=3), data)
    best = result["best"]
    for h in HORIZONS:
        assert f"val_h{h}_auroc" in best and f"val_h{h}_prevalence" in best
    assert math.isfinite(best["val_mean_auroc"])  # the 3-class output of the primary horizon stays
    assert np.isfinite([best[f"val_h{h}_auroc"] for h in (300, 600, 900)]).all()
    from hypo.learn.train import build_step, train_epoch, training_targets

    step = build_step(_cfg("hazard"), {"mean": list(data.manifest.zscore.mean), "std": list(data.manifest.zscore.std)},
                      torch.device("cpu"), False)
    x = torch.as_tensor(data.train.x)
    y = torch.as_tensor(training_targets(step.model.cfg, data.train))
    first = train_epoch(step, x, y, 256, torch.Generator().manual_seed(0))
    for e in range(1, 4):
        last = train_epoch(step, x, y, 256, torch.Generator().manual_seed(e))
    assert last < first  # it learns
    model = step.model
    for sp in ("train", "val", "test"):
        split = load_split(multi, sp)
        risk = predict_horizon_risk(model, split.x)
        assert risk.shape == (len(split), len(HORIZONS))
        assert (np.diff(risk, axis=1) >= 0).all()  # monotone on every window
        assert predict_proba(model, split.x).shape == (len(split), 3)


def test_class_head_on_a_multi_horizon_dataset_scores_every_horizon(multi):
    data = load_data(multi)
    best = fit_arrays(TrainConfig(model=ModelConfig(name="cnn", k=8), epochs=1, batch_size=256, device="cpu"),
                      data)["best"]
    assert all(f"val_h{h}_auroc" in best for h in HORIZONS)


def test_horizon_loss_adds_the_class_loss():
    torch.manual_seed(1)
    out = torch.randn(16, 3 + 5)
    target = torch.cat([torch.randint(0, 3, (16, 1)), torch.randint(-1, 2, (16, 5))], dim=1)
    base = make_loss("ce")
    got = HorizonLoss(base, "hazard")(out, target)
    want = base(out[:, :3], target[:, 0]) + horizon_bce(out[:, 3:], target[:, 1:], "hazard")
    assert math.isclose(float(got), float(want), rel_tol=1e-6)


def test_hypo_train_head_hazard_reports_every_horizon(multi, tmp_path, capsys):
    from hypo.cli.train import main

    res = main(["--data", multi, "--model", "cnn", "--k", "8", "--epochs", "1", "--batch-size", "256",
                "--device", "cpu", "--head", "hazard", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert res["config"]["model"]["head"] == "hazard" and res["config"]["model"]["n_horizons"] == len(HORIZONS)
    assert "hypotension by each horizon (validation AUROC / AUPRC): 60 s" in out


def test_hypo_train_refuses_a_per_horizon_head_on_one_horizon(tmp_path, capsys):
    from hypo.cli.train import main

    build_demo_dataset(str(tmp_path / "s"), 6)
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "s"), "--head", "hazard", "--epochs", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a dataset built with hypo windows --horizons" in err
