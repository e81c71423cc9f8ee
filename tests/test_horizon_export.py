"""Exports and hypo predict of a model with per-horizon risks: every horizon's probability, the sidecar's horizons."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from hypo.cli.export import main as export_main
from hypo.config import LabelConfig, WindowConfig
from hypo.data.dataset import load_split
from hypo.data.sources.demo import case_duration_s, simulate_case
from hypo.data.sources.vital import write_vital_case
from hypo.infer.model import ExportedModel
from hypo.infer.predict import predict_file
from hypo.learn.checkpoint import load_model
from hypo.learn.models import predict_horizon_risk

from demo_experiment import build_demo_dataset, fake_search

HORIZONS = (60, 300, 900)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("hx")
    data = str(root / "d")
    build_demo_dataset(data, 10, cfg=WindowConfig(label=LabelConfig(horizons_s=HORIZONS)))
    trials = ({"model": "cnn", "k": 8, "loss": "ce", "gamma": 0.0, "head": "hazard"},)
    exp = fake_search(data, str(root / "exp"), trials=trials, epochs=1)
    export_main([exp, "--out", str(root / "model.pt")])
    return root, data, exp


def test_export_gives_every_horizon_as_the_eager_model_does(exported):
    root, data, exp = exported
    model = ExportedModel.load(str(root / "model.pt"))
    side = json.loads((root / "model.json").read_text())
    assert side["horizons_s"] == list(HORIZONS) and model.horizons_s == HORIZONS
    assert "horizon_risk" in side["horizon_output"]["meaning"] and side["horizon_output"]["shape"] == ["n", 3]
    val = load_split(data, "val")
    risk = model.predict_horizon_risk(val.x)
    assert risk.shape == (len(val), len(HORIZONS)) and (np.diff(risk, axis=1) >= 0).all()
    assert model.predict_proba(val.x).shape == (len(val), 3)  # the 3-class output stays
    eager, _ = load_model(str(next((root / "exp").glob("train_trial_*/checkpoint_000000")) / "checkpoint.pt"))
    assert np.allclose(risk, predict_horizon_risk(eager, val.x), atol=1e-5)
    scripted = torch.jit.load(str(root / "model.pt"))  # without hypo: the method is in the TorchScript file
    assert np.allclose(scripted.horizon_risk(torch.as_tensor(val.x[:4])).numpy(), risk[:4], atol=1e-6)


def test_a_horizon_export_has_a_schema_older_hypo_refuses(exported, monkeypatch):
    from hypo.errors import HypoError
    from hypo.infer import sidecar as sc

    root, _, _ = exported
    side = json.loads((root / "model.json").read_text())
    embedded = ExportedModel.load(str(root / "model.pt")).sidecar.to_dict()
    assert side["schema_version"] == embedded["schema_version"] == sc.HORIZONS_SCHEMA == 4
    monkeypatch.setattr(sc, "HORIZONS_SCHEMA", sc.SCHEMA_VERSION)  # a hypo from before per-horizon risks
    with pytest.raises(HypoError, match="its sidecar has schema 4, this hypo reads up to 3"):
        sc.read_sidecar(side, "model.json")


def test_predict_writes_a_column_per_horizon(exported, tmp_path):
    root, _, _ = exported
    cid = next(i for i in range(41, 10_000) if case_duration_s(i) >= 3600)
    path = write_vital_case(simulate_case(cid), tmp_path / "c.vital")
    res = predict_file(str(path), str(root / "model.pt"), 60, out_dir=str(tmp_path / "o"), plot=False,
                       log=lambda s: None)
    df = pd.read_csv(res["csv"])
    cols = [f"p_hypotension_by_{h}s" for h in HORIZONS]
    assert cols == [c for c in df.columns if c.startswith("p_hypotension_by_")]
    got = df[cols].dropna().to_numpy()
    assert len(got) > 10 and (np.diff(got, axis=1) >= -1e-4).all()  # rounded to 4 places in the CSV


def test_a_class_model_has_no_horizon_columns(tmp_path):
    from demo_experiment import exported_demo_model

    m = ExportedModel.load(exported_demo_model(tmp_path, n_cases=8, epochs=1)["model"])
    assert m.sidecar.to_dict()["schema_version"] == 3
    assert m.horizons_s == () and m.predict_horizon_risk(np.zeros((2, 60, 7), np.float32)).shape == (2, 0)


def test_evaluate_on_another_site_adds_the_horizon_table(exported, tmp_path, capsys):
    from hypo.cli.evaluate import main

    root, _, _ = exported
    other = str(tmp_path / "b")
    build_demo_dataset(other, 12, cfg=WindowConfig(label=LabelConfig(horizons_s=HORIZONS)), site="b")
    res = main([str(root / "model.pt"), "--data", other, "--out", str(tmp_path / "e"), "--bootstrap", "20"])
    rows = res.results.sections["horizons"]["model"]["rows"]
    assert {r["horizon_s"] for r in rows} == set(HORIZONS)
    assert rows[0]["row"] == "model (risk by each horizon)" and any(r["row"] == "last reading" for r in rows)
    out = capsys.readouterr().out
    assert "Hypotension by each horizon (model" in out
    assert (tmp_path / "e" / "horizons.png").stat().st_size > 10_000
