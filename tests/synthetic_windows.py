"""A tiny synthetic window dataset in the exact ``hypo-windows/1`` format, for tests.

With ``planted=True`` the label is learnable from the window: MAP (and SBP, DBP) drift down over the minute
before hypotension and SBP drifts up before hypertension; the last cuff reading (``last_map``, ``last_sbp``)
is correlated with the label but noisier, so the last-reading baseline is informative yet beatable.
With ``planted=False`` the windows carry no information about the label.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hypo import storage
from hypo.config import LabelConfig, WindowConfig, fingerprint, to_dict
from hypo.data.manifest import Manifest, write_manifest
from hypo.data.pipeline import shard_name, window_schema
from hypo.data.signals import BIS, CLASSES, DBP, ECG, MAC, MBP, N_SIGNALS, PLETH, SBP, SIGNALS

WINDOW_S = 60
PRIOR = (0.7, 0.15, 0.15)  # normal, hypotension, hypertension
WINDOWS_PER_CASE = 40


def make_windows(n: int, rng: np.random.Generator, planted: bool = True, prior=PRIOR) -> dict[str, np.ndarray]:
    """Synthetic windows and their labels (the columns of the Parquet shards, x as [n, 60, 7])."""
    label = rng.choice(3, size=n, p=prior).astype(np.int8)
    t = np.linspace(-1.0, 0.0, WINDOW_S, dtype=np.float32)  # minutes before the window end
    x = np.empty((n, WINDOW_S, N_SIGNALS), np.float32)
    base_map = rng.normal(85, 6, n).astype(np.float32)
    base_sbp = rng.normal(125, 8, n).astype(np.float32)
    cls = label if planted else rng.choice(3, size=n, p=prior)
    map_slope = np.where(cls == 1, -14.0, 0.0) + rng.normal(0, 3, n)  # mmHg per minute
    sbp_slope = np.where(cls == 2, 20.0, 0.0) + np.where(cls == 1, -16.0, 0.0) + rng.normal(0, 4, n)
    noise = rng.normal(0, 1.5, (n, WINDOW_S, 3)).astype(np.float32)
    x[:, :, MBP] = base_map[:, None] + map_slope[:, None] * t + noise[:, :, 0]
    x[:, :, SBP] = base_sbp[:, None] + sbp_slope[:, None] * t + noise[:, :, 1]
    x[:, :, DBP] = x[:, :, MBP] - 12 + noise[:, :, 2]
    x[:, :, ECG] = rng.normal(0, 0.4, (n, WINDOW_S))
    x[:, :, PLETH] = 50 + 20 * np.sin(np.arange(WINDOW_S) * 1.3 + rng.uniform(0, 6.3, (n, 1)))
    x[:, :, MAC] = rng.normal(1.0, 0.2, (n, 1)) + rng.normal(0, 0.02, (n, WINDOW_S))
    x[:, :, BIS] = rng.normal(45, 8, (n, 1)) + rng.normal(0, 2, (n, WINDOW_S))

    # The last reading tracks the label, except for 15% of windows where it tracks a random class.
    last_cls = np.where(rng.random(n) < 0.15, rng.choice(3, size=n), label)
    last_map = np.where(last_cls == 1, 70.0, 86.0) + rng.normal(0, 8, n)
    last_sbp = np.where(last_cls == 2, 158.0, 122.0) + rng.normal(0, 14, n)
    none = rng.random(n) < 0.05  # no cuff reading yet at the window end
    t_end = rng.integers(WINDOW_S, 20000, n).astype(np.int32)
    last_time = np.where(none, -1, t_end - rng.integers(0, 300, n)).astype(np.int32)
    label_map = np.where(label == 1, 58.0, 85.0) + rng.normal(0, 3, n)
    label_sbp = np.where(label == 2, 175.0, 120.0) + rng.normal(0, 5, n)
    return {
        "t_end": t_end,
        "x": x,
        "label": label,
        "label_time": (t_end + 300).astype(np.int32),
        "label_map": label_map.astype(np.float32),
        "label_sbp": label_sbp.astype(np.float32),
        "last_map": np.where(none, np.nan, last_map).astype(np.float32),
        "last_sbp": np.where(none, np.nan, last_sbp).astype(np.float32),
        "last_time": last_time,
        # what the comparators read, drawn from nothing random (the draws above stay as they were)
        "last_dbp": np.where(none, np.nan, last_map - 15.0).astype(np.float32),
        "earlier_map": np.where(none[:, None], np.nan, last_map[:, None] + np.array([2.0, 4.0])).astype(np.float32),
        "earlier_time": np.where(none[:, None], -1, last_time[:, None] - np.array([180, 360])).astype(np.int32),
    }


def _table(cols: dict[str, np.ndarray], caseid: str, subjectid: str, split: str) -> pa.Table:
    n = len(cols["label"])
    data = {
        "caseid": pa.array([caseid] * n, pa.string()),
        "subjectid": pa.array([subjectid] * n, pa.string()),
        "split": pa.array([split] * n, pa.string()),
        "x": pa.FixedSizeListArray.from_arrays(pa.array(cols["x"].reshape(-1), pa.float32()), WINDOW_S * N_SIGNALS),
    }
    for name in ("t_end", "label", "label_time", "label_map", "label_sbp", "last_map", "last_sbp", "last_time",
                 "last_dbp"):
        data[name] = pa.array(cols[name])
    for name in ("earlier_map", "earlier_time"):
        data[name] = pa.FixedSizeListArray.from_arrays(pa.array(cols[name].reshape(-1)), cols[name].shape[1])
    schema = window_schema(WINDOW_S)
    return pa.Table.from_pydict({f.name: data[f.name].cast(f.type) for f in schema}, schema=schema)


def write_synthetic_dataset(
    data_dir: str,
    n_train: int = 1200,
    n_val: int = 600,
    n_test: int = 300,
    seed: int = 0,
    planted: bool = True,
    label: LabelConfig | None = None,
    priors: dict[str, tuple[float, float, float]] | None = None,
) -> Manifest:
    """Write a synthetic window dataset (manifest plus one Parquet shard per case of 40 windows).

    Args:
        data_dir: Folder to create (local, or ``s3://...``).
        n_train: Training windows.
        n_val: Validation windows.
        n_test: Test windows.
        seed: Seed of everything random.
        planted: Plant a learnable pattern (see the module docstring).
        label: Label rule recorded in the manifest (thresholds used by the baseline).
        priors: Class prevalence per split (e.g. ``{"val": (0.8, 0.2, 0.0)}``: no hypertension window in val);
            :data:`PRIOR` for the others.

    Returns:
        The manifest (also written to ``data_dir/manifest.json``).
    """
    rng = np.random.default_rng(seed)
    label = label or LabelConfig()
    counts, train_x = {}, None
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        cols = make_windows(n, rng, planted, prior=(priors or {}).get(split, PRIOR))
        if split == "train":
            train_x = cols["x"]
        n_cases = 0
        for i, start in enumerate(range(0, n, WINDOWS_PER_CASE)):
            part = {k: v[start : start + WINDOWS_PER_CASE] for k, v in cols.items()}
            caseid = f"{split}{i:04d}"
            storage.write_parquet(storage.join(data_dir, "windows", split, shard_name(caseid) + ".parquet"),
                                  _table(part, caseid, f"s{caseid}", split))
            n_cases += 1
        c = {"windows": n, "cases": n_cases, "subjects": n_cases}
        c.update({name: int((cols["label"] == k).sum()) for k, name in enumerate(CLASSES)})
        counts[split] = c
    flat = train_x.reshape(-1, N_SIGNALS).astype(np.float64)
    params = {"n": [n_train, n_val, n_test], "seed": seed, "planted": planted, "label": to_dict(label)}
    if priors:
        params["priors"] = {k: list(v) for k, v in priors.items()}
    manifest = Manifest(
        signals=SIGNALS,
        window_s=WINDOW_S,
        stride_s=WINDOW_S,
        horizon_s=label.horizon_s,
        label=label,
        classes=CLASSES,
        counts=counts,
        zscore={"mean": flat.mean(0).tolist(), "std": flat.std(0).tolist(), "fitted_on": "train",
                "n_values": len(flat)},
        fingerprint=fingerprint(params),
        config=WindowConfig(window_s=WINDOW_S, stride_s=WINDOW_S, label=label),
        source={"name": "synthetic", "fingerprint": fingerprint(params), "report": {"params": params}},
    )
    write_manifest(data_dir, manifest)
    return manifest


def manifest_record(**fields) -> Manifest:
    """A manifest record holding ``fields`` (as ``manifest.json`` writes them), placeholders for the required rest.

    For tests of functions that read a few fields of a manifest.
    """
    required = {"signals": SIGNALS, "window_s": WINDOW_S, "label": {}, "counts": {}, "fingerprint": "test",
                "zscore": {"mean": [0.0] * N_SIGNALS, "std": [1.0] * N_SIGNALS}}
    return Manifest.model_validate({**required, **fields})
