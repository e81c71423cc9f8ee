"""A small demo-cohort dataset and a search experiment on it, built in seconds and without Ray, for tests.

``build_demo_dataset`` runs the genuine per-case pipeline (:func:`hypo.data.pipeline.run_case`) over demo cases one
after another and writes the manifest with :func:`hypo.data.preprocess.make_manifest`, so the folder is exactly
what ``build_windows.py --source demo`` writes (Ray Data only distributes the same calls).
``fake_search`` trains a few trials with :func:`hypo.learn.train.fit_arrays` and lays them out as Ray Tune does
(``params.json``, ``result.json`` one line per epoch, ``checkpoint_00000N/`` with ``checkpoint.pt`` and
``meta.json``, and ``hypo_search.json``); ``test_report`` checks the same code on a real Tune search.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings

from hypo.config import WindowConfig, fingerprint, to_dict
from hypo.data.dataset import load_split, read_manifest
from hypo.data.manifest import Manifest, write_manifest
from hypo.data.pipeline import run_case
from hypo.data.preprocess import make_manifest
from hypo.data.sources.demo import DemoSource
from hypo.learn.baselines import baseline_records
from hypo.learn.feature_model import FeatureModelConfig, fit_feature_model
from hypo.learn.metrics import MetricWarning
from hypo.learn.train import TrainingData, fit_arrays
from hypo.search.record import SearchRecord, write_search_record
from hypo.search.tuner import trial_train_config


def build_demo_dataset(out: str, n_cases: int = 40, seed: int = 0, cfg: WindowConfig | None = None,
                       site: str = "a") -> Manifest:
    """Preprocess demo cases 1..n_cases (of simulated ``site``) into a window dataset at ``out``; returns the
    manifest."""
    cfg = cfg or WindowConfig()
    source = DemoSource(n_cases, seed, arterial=cfg.label.source == "art", site=site)
    summaries = [run_case(ref, source, cfg, out) for ref in source.case_refs()]
    manifest = make_manifest(summaries, cfg, source, wall_s=0.0)
    write_manifest(out, manifest)
    return manifest


TRIALS = (
    {"model": "cnn_cnn", "k": 8, "loss": "focal", "gamma": 2.0},
    {"model": "lstm", "k": 8, "loss": "ce", "gamma": 0.0},
)


# A search fits the feature model's five candidates; the tests' stand-in fits one (4 s less per experiment).
ONE_CANDIDATE = FeatureModelConfig(learning_rates=(0.1,), max_iters=(50,))


def fake_search(data_dir: str, exp: str, trials=TRIALS, epochs: int = 2, batch_size: int = 512,
                feature_model: FeatureModelConfig = ONE_CANDIDATE) -> str:
    """Train ``trials`` on ``data_dir`` and write them in Ray Tune's experiment layout at ``exp``."""
    manifest = read_manifest(data_dir)
    train, val = load_split(data_dir, "train", manifest), load_split(data_dir, "val", manifest)
    # The baselines as a search records them (every named baseline on the validation split).
    baselines = baseline_records(val, manifest, fit_feature_model(train, val, feature_model),
                                 where="val", prefix="val_")
    data = TrainingData(train, val, manifest, baselines=tuple(baselines))
    os.makedirs(exp, exist_ok=True)
    write_search_record(exp, SearchRecord(
        search={"fake": True}, search_fingerprint=fingerprint(list(trials)), data=data_dir,
        dataset_fingerprint=manifest.fingerprint, label=manifest.label,
        baselines=json.loads(json.dumps(baselines, default=float).replace("NaN", "null"))))
    for i, params in enumerate(trials):
        config = {**params, "epochs": epochs, "batch_size": batch_size, "seed": i}
        tid = f"fake_{i:05d}"
        tdir = os.path.join(exp, f"train_trial_{tid}")
        os.makedirs(tdir, exist_ok=True)
        with open(os.path.join(tdir, "params.json"), "w") as f:
            json.dump(config, f)

        def on_epoch(epoch, metrics, ckpt_dir, tdir=tdir, tid=tid):
            dest = os.path.join(tdir, f"checkpoint_{epoch - 1:06d}")
            shutil.copytree(ckpt_dir, dest)
            with open(os.path.join(dest, "meta.json"), "w") as f:
                json.dump({"epoch": epoch}, f)
            row = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
            row.update(trial_id=tid, training_iteration=epoch, done=epoch == epochs)  # Tune's last row is done
            with open(os.path.join(tdir, "result.json"), "a") as f:
                f.write(json.dumps(row).replace("NaN", "null") + "\n")

        with warnings.catch_warnings():  # strata without a class in a tiny validation split
            warnings.simplefilter("ignore", MetricWarning)
            fit_arrays(trial_train_config(config, window_s=manifest.window_s, n_horizons=len(manifest.horizons_s)),
                       data, on_epoch=on_epoch)
    return exp


def window_config_dict(cfg: WindowConfig | None = None) -> dict:
    """The default window config as a dict (what manifests record)."""
    return to_dict(cfg or WindowConfig())


def exported_demo_model(root, n_cases: int = 40, epochs: int = 2, **search) -> dict:
    """Demo cases 1..n_cases as a window dataset, a fake search on it, and its first trial exported.

    Args:
        root: Folder for ``demo/``, ``exp/`` and ``model.pt``.
        n_cases: Demo cases in the dataset.
        epochs: Epochs per trial.
        **search: More :func:`fake_search` arguments (``trials``, ``feature_model``).

    Returns:
        ``{"data": dataset, "exp": experiment folder, "model": model.pt}``.
    """
    from hypo.cli.export import main as export_main

    data, model = os.path.join(str(root), "demo"), os.path.join(str(root), "model.pt")
    build_demo_dataset(data, n_cases=n_cases)
    exp = fake_search(data, os.path.join(str(root), "exp"), epochs=epochs, **search)
    export_main([exp, "--out", model])
    return {"data": data, "exp": exp, "model": model}


def plain_and_dropout_exports(data_dir: str, root: str) -> dict:
    """Two exports trained on ``data_dir`` (one epoch each): ``plain`` without and ``dropout`` with channel dropout.

    Returns:
        ``{"plain": path, "dropout": path, "exp": experiment folder}``.
    """
    from hypo.cli.export import main as export_main

    trials = ({"model": "cnn", "k": 8, "loss": "ce", "gamma": 0.0},
              {"model": "cnn", "k": 8, "loss": "ce", "gamma": 0.0, "channel_dropout": 0.3})
    exp = fake_search(data_dir, os.path.join(root, "exp"), trials=trials, epochs=1)
    out = {"exp": exp}
    for name, tid in (("plain", "fake_00000"), ("dropout", "fake_00001")):
        out[name] = os.path.join(root, f"{name}.pt")
        export_main([exp, "--out", out[name], "--trial", tid])
    return out


def write_legacy_export(module, sidecar: dict, out: str) -> tuple[str, dict]:
    """Write ``module`` with ``sidecar`` as given (the dict form older hypo versions wrote), embedded and beside.

    Returns:
        ``(model_path, sidecar as written beside it, with model_sha256)``.
    """
    import torch

    from hypo.infer.export import EXTRA_FILE, sidecar_path
    from hypo.storage import sha256_file

    os.makedirs(os.path.dirname(out), exist_ok=True)
    torch.jit.save(module, out, _extra_files={EXTRA_FILE: json.dumps(sidecar, indent=2)})
    beside = dict(sidecar, model_sha256=sha256_file(out))
    with open(sidecar_path(out), "w") as f:
        json.dump(beside, f, indent=2)
    return out, beside


def as_schema_2(data: str) -> None:
    """Make a dataset look as an older hypo built it (dataset schema 2): its shards without the comparator columns
    (``last_dbp``, ``earlier_map``, ``earlier_time``), its manifest of schema 2."""
    import pyarrow.parquet as pq

    for root, _, files in os.walk(os.path.join(data, "windows")):
        for f in files:
            path = os.path.join(root, f)
            t = pq.read_table(path)
            pq.write_table(t.drop([c for c in ("last_dbp", "earlier_map", "earlier_time") if c in t.column_names]),
                           path)
    with open(os.path.join(data, "manifest.json")) as f:
        m = json.load(f)
    with open(os.path.join(data, "manifest.json"), "w") as f:
        json.dump({**m, "schema_version": 2}, f)
