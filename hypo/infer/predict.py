"""Predict along one recording: a ``.vital`` file in, a CSV of probabilities and a timeline PNG out.

    hypo predict case.vital --model model.pt                       # a window every 60 s
    hypo predict case.vital --model model.pt --stride 10 --track-map map.json --out predictions/

The recording is read with :func:`hypo.data.sources.vital.read_vital_case` (any track naming a ``--track-map``
supports), then goes through the causal pipeline (:mod:`hypo.infer.causal`, the one the alarm evaluation and
``hypo serve`` run): cleaned of artefacts and gap-filled exactly as the training data were (the fill rule comes
from the model's sidecar), cut into windows ending every ``--stride`` seconds, each judged with what was known at
its end, and scored in a few batched forward passes. A window that still holds a gap after filling gets **no**
prediction (an empty row in the CSV, a grey band in the timeline): nothing is invented.

CSV columns: ``time_s`` (window end, seconds from the start of the recording), ``time`` (the same as h:mm:ss),
``p_normal``, ``p_hypotension``, ``p_hypertension`` (a model with per-horizon risks adds ``p_hypotension_by_<S>s``
for each horizon S of its sidecar's ``horizons_s``: the risk of hypotension within S seconds), ``alarm`` (the
class at the model's operating point), the last cuff reading at the window end (``last_reading_s``, ``last_sbp``,
``last_map``, ``last_dbp``), and, in hindsight only (unknown when the prediction is made), the cuff reading
``horizon`` later that labels it as the training data were labelled (``outcome_s``, ``outcome_map``,
``outcome_sbp``, ``outcome``).

A recording too short, missing a track, in the wrong units as a whole (:func:`check_file`) or without a usable
signal stops with one line on stderr and exit status 2. The exception: a model whose sidecar lists MAC or BIS in
``tolerates_missing`` (trained with channel dropout, or not reading them) accepts a recording without that track
(TIVA, no BIS sensor) and gets the group as NaN.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

from hypo.data.signals import CLASSES, DBP, ECG, HYPOTENSION, SIGNALS
from hypo.errors import HypoError
from hypo.infer.causal import PreparedCase, check_stride, prepare_case
from hypo.infer.model import ExportedModel
from hypo.infer.sidecar import Sidecar, may_lack, window_config

__all__ = ["PreparedCase", "Prediction", "predict_case", "predict_file", "prepare_case", "window_config"]

# Plausible medians of the recorded values, per signal (lo, hi, unit): far outside means another unit or scale.
PLAUSIBLE_MEDIAN: dict[str, tuple[float, float, str]] = {
    "nibp_sbp": (40.0, 260.0, "mmHg"),
    "nibp_mbp": (25.0, 200.0, "mmHg"),
    "nibp_dbp": (10.0, 160.0, "mmHg"),
    "mac": (0.0, 5.0, "MAC"),
    "bis": (2.0, 100.0, "BIS index 0-100"),
}
ECG_MAX_P99 = 20.0  # mV: an ECG in microvolts has a 99th percentile |value| in the hundreds


class UnitsError(HypoError):
    """A signal's values are implausible for its unit (e.g. kPa instead of mmHg, BIS on a 0-1 scale)."""


def check_units(signals: np.ndarray, where: str = "") -> None:
    """Refuse a recording whose signals are not in the units the model was trained on.

    The medians of blood pressure, MAC and BIS are taken over positive values only: zeros are what a monitor
    records for a failed cuff cycle, no agent or an idle BIS sensor, which the training data kept (BIS, MAC) or
    removed as artefacts (cuff), never a sign of another unit.

    Args:
        signals: float32 [seconds, 7] as read (before artefact removal, which would hide a unit problem).
        where: Prefix for the message (the file).

    Raises:
        UnitsError: Naming the first implausible signal, its median and the expected range.
    """
    for i, name in enumerate(SIGNALS):
        col = signals[:, i]
        vals = col[np.isfinite(col)]
        if name in PLAUSIBLE_MEDIAN:
            vals = vals[vals > 0]
        if not len(vals):
            continue  # an all-NaN signal is reported by the cleaning step, with its own reason
        if name in PLAUSIBLE_MEDIAN:
            lo, hi, unit = PLAUSIBLE_MEDIAN[name]
            med = float(np.median(vals))
            if not lo <= med <= hi:
                raise UnitsError(f"{where}{name} has median {med:.4g}, outside the plausible {lo:g}-{hi:g} "
                                 f"({unit}): wrong units?")
        elif i == ECG:
            p99 = float(np.percentile(np.abs(vals), 99))
            if p99 > ECG_MAX_P99:
                raise UnitsError(f"{where}ecg has 99th percentile |value| {p99:.4g}, above {ECG_MAX_P99:g} mV: "
                                 "wrong units (microvolts?)")


def check_file(case, rules, where: str = "") -> None:
    """``hypo predict``'s refusals of a whole file: too short, or in units its values as a whole rule out.

    Shorter than the training data's shortest recording, or implausible by :func:`check_units`.

    They decide whether the command runs on a file, never which of its windows are scored: that is the causal
    pipeline's (:mod:`hypo.infer.causal`), which the evaluation and ``hypo serve`` run too.

    Raises:
        HypoError: Too short; UnitsError: implausible units.
    """
    if case.duration_s < rules.min_case_s:
        raise HypoError(f"{where}recording too short: {case.duration_s} s, the model needs at least "
                        f"{rules.min_case_s} s (the training data's minimum case length)")
    check_units(case.signals, where)


@dataclasses.dataclass
class Prediction:
    """Predictions along one recording (one row per window end) and its cuff readings."""

    caseid: str
    n_seconds: int
    stride_s: int
    t_end: np.ndarray  # int64 [w]
    probs: np.ndarray  # float32 [w, 3], NaN rows where the window was incomplete
    alarm: np.ndarray  # object [w]: class name at the operating point, "" without prediction
    last: dict[str, np.ndarray]  # time, sbp, map, dbp of the last reading at each window end (NaN / -1 if none)
    outcome: dict[str, np.ndarray]  # time, map, sbp, class (-1 none) of the reading horizon later
    readings: dict[str, np.ndarray]  # time, sbp, map, dbp of every cuff reading (artefacts removed)
    timings: dict[str, float]
    absent: tuple[str, ...] = ()  # signal groups the recording lacks, fed to the model as missing
    horizons_s: tuple[int, ...] = ()  # a model with per-horizon risks: its horizons
    horizon_risk: np.ndarray | None = None  # float32 [w, H] risk of hypotension by each horizon (NaN: none)

    @property
    def n_predicted(self) -> int:
        """Windows with a prediction."""
        return int(np.isfinite(self.probs).all(axis=1).sum())

    def confirmed_hypotension(self) -> np.ndarray:
        """Window ends whose label reading ``horizon`` later (the training data's rule) was hypotensive."""
        return self.t_end[self.outcome["class"] == HYPOTENSION]


def predict_case(case, model: ExportedModel, stride_s: int = 60, where: str = "",
                 prepared: PreparedCase | None = None) -> Prediction:
    """Score every window of a case that ends on the ``stride_s`` grid.

    Args:
        case: A :class:`~hypo.data.sources.base.Case` as read (physical units, NaN where nothing was recorded).
        model: The model (:meth:`ExportedModel.load <hypo.infer.model.ExportedModel.load>`).
        stride_s: Seconds between window ends.
        where: Prefix for error messages (the file).
        prepared: The case already prepared by :func:`prepare_case` with this model's rules and this stride
            (several models scoring one recording prepare it once); prepared here when None.

    Raises:
        HypoError: Too short, wrong units, or a signal without any usable value.
    """
    sidecar = model.sidecar
    if prepared is None:
        prepared = prepare_case(case, sidecar, stride_s, where)
    elif prepared.cfg != window_config(sidecar, int(stride_s)):
        raise HypoError(f"{where}the recording was prepared with other window rules than this model's sidecar "
                        "(window, fill rule, minimum length or stride)")
    complete = prepared.complete_for(sidecar)
    t0 = time.perf_counter()
    probs = np.full((len(prepared.ends), len(CLASSES)), np.nan, np.float32)
    probs[complete] = model.predict_proba(prepared.windows[complete].transpose(0, 2, 1))
    risk = None
    if model.horizons_s:
        risk = np.full((len(prepared.ends), len(model.horizons_s)), np.nan, np.float32)
        risk[complete] = model.predict_horizon_risk(prepared.windows[complete].transpose(0, 2, 1))
    timings = {"clean_s": prepared.clean_s, "predict_s": time.perf_counter() - t0}
    alarm = np.where(complete, np.asarray(CLASSES, dtype=object)[model.decide(probs)], "")
    last, outcome, readings = _readings_around(prepared)
    return Prediction(caseid=case.caseid, n_seconds=int(case.duration_s), stride_s=prepared.cfg.stride_s,
                      t_end=prepared.ends, probs=probs, alarm=alarm, last=last, outcome=outcome, readings=readings,
                      timings=timings, absent=prepared.absent, horizons_s=model.horizons_s, horizon_risk=risk)


def _readings_around(prepared: PreparedCase) -> tuple[dict, dict, dict]:
    """The cuff readings of a prepared case: the last at each window end, the outcome ``horizon`` later, and all.

    Returns:
        ``(last, outcome, readings)`` as :class:`Prediction` holds them.
    """
    from hypo.data.windows import Readings, classify, label_index

    cfg, cleaned, ends = prepared.cfg, prepared.cleaned, prepared.ends
    readings = Readings.from_signals(cleaned)
    dbp = cleaned[readings.time, DBP]
    last = np.searchsorted(readings.time, ends, side="right") - 1
    has = last >= 0
    lc = np.clip(last, 0, None)

    def at(values, idx, ok, fill=np.nan):
        return np.where(ok, values[idx], fill) if len(values) else np.full(len(idx), fill)

    outcome_idx = label_index(ends, readings, len(prepared.filled), cfg.fill.nibp_max_carry_s, cfg.label)
    has_out = outcome_idx >= 0
    oi = np.clip(outcome_idx, 0, None)
    out_map, out_sbp = at(readings.map, oi, has_out), at(readings.sbp, oi, has_out)
    out_cls = np.where(has_out, classify(out_map, out_sbp, cfg.label), -1)
    return ({"time": at(readings.time, lc, has, -1), "sbp": at(readings.sbp, lc, has),
             "map": at(readings.map, lc, has), "dbp": at(dbp, lc, has)},
            {"time": at(readings.time, oi, has_out, -1), "map": out_map, "sbp": out_sbp, "class": out_cls},
            {"time": readings.time, "sbp": readings.sbp, "map": readings.map, "dbp": dbp})


def _clock(seconds: np.ndarray) -> list[str]:
    s = seconds.astype(np.int64)
    return [f"{h}:{m:02d}:{x:02d}" for h, m, x in zip(s // 3600, s // 60 % 60, s % 60)]


def to_frame(pred: Prediction):
    """The CSV table (see the module docstring)."""
    import pandas as pd

    def opt_time(t):
        return pd.array([int(v) if v >= 0 else None for v in t], dtype="Int64")  # empty where none

    def mmhg(v):
        return np.round(np.asarray(v, np.float64), 1)

    def prob(v):
        return np.round(np.asarray(v, np.float64), 4)

    cls_names = np.asarray(["", *CLASSES], dtype=object)
    by = {f"p_hypotension_by_{h}s": prob(pred.horizon_risk[:, k]) for k, h in enumerate(pred.horizons_s)}
    return pd.DataFrame({
        "time_s": pred.t_end,
        "time": _clock(pred.t_end),
        "p_normal": prob(pred.probs[:, 0]),
        "p_hypotension": prob(pred.probs[:, 1]),
        "p_hypertension": prob(pred.probs[:, 2]),
        **by,
        "alarm": pred.alarm,
        "last_reading_s": opt_time(np.asarray(pred.last["time"], np.int64)),
        "last_sbp": mmhg(pred.last["sbp"]),
        "last_map": mmhg(pred.last["map"]),
        "last_dbp": mmhg(pred.last["dbp"]),
        "outcome_s": opt_time(np.asarray(pred.outcome["time"], np.int64)),
        "outcome_map": mmhg(pred.outcome["map"]),
        "outcome_sbp": mmhg(pred.outcome["sbp"]),
        "outcome": cls_names[pred.outcome["class"] + 1],
    })


def plot_timeline(pred: Prediction, sidecar: Sidecar, path: str, title: str = "") -> str:
    """The timeline PNG of a prediction (see :func:`hypo.infer.timeline.timeline_figure`)."""
    from hypo.infer.timeline import timeline_figure

    th = sidecar.thresholds
    op = th.operating_point()
    thresholds = {"hypo_map": th.hypo_map, "hyper_sbp": th.hyper_sbp, "horizon_s": sidecar.horizon_s,
                  "max_gap_s": sidecar.fill.nibp_max_carry_s,
                  "p_hypotension": op["hypotension"], "p_hypertension": op["hypertension"]}
    return timeline_figure(pred.t_end, pred.probs, pred.readings, pred.confirmed_hypotension(), thresholds, path,
                           title, pred.stride_s)


def timeline_title(path: str, sidecar: Sidecar, stride_s: int) -> str:
    """The title of a recording's timeline: the file, the model, its window, stride and horizon."""
    sim = "  [model trained on simulated data]" if sidecar.simulated else ""
    return (f"{os.path.basename(path)}: {sidecar.model.name} k={sidecar.model.k}, window {sidecar.window_s} s every "
            f"{stride_s} s, horizon {sidecar.horizon_s // 60} min{sim}")


def predict_file(path: str, model: str, stride_s: int = 60, track_map: str | None = None, out_dir: str = ".",
                 plot: bool = True, log=print) -> dict[str, Any]:
    """Read a ``.vital`` file, predict along it and write ``<stem>_predictions.csv`` (and ``_timeline.png``).

    Args:
        path: The recording.
        model: The exported TorchScript model (its sidecar embedded in it), a local path or a URI.
        stride_s: Seconds between window ends.
        track_map: Optional JSON file mapping signal names to track names.
        out_dir: Output folder (local or a URI).
        plot: Also draw the timeline PNG.
        log: Where summary lines go.

    Returns:
        ``{"prediction", "csv", "png", "timings"}``.
    """
    from hypo.mirror import staged_out

    with staged_out(out_dir, log) as (out, log):  # on an object store: uploaded once both files are written
        return _predict_file(path, model, stride_s, track_map, out, plot, log)


def _predict_file(path: str, model: str, stride_s: int, track_map: str | None, out_dir: str, plot: bool,
                  log) -> dict[str, Any]:
    """:func:`predict_file` into the local folder ``out_dir``."""
    from hypo.data.sources.vital import load_track_map, read_vital_case
    from hypo.storage import writable_folder

    t_start = time.perf_counter()
    writable_folder(out_dir)
    exported = ExportedModel.load(model)
    sidecar = exported.sidecar
    tmap = load_track_map(track_map) if track_map else None
    t0 = time.perf_counter()
    stem = os.path.splitext(os.path.basename(path))[0]
    case = read_vital_case(path, stem, stem, tmap, allow_missing=may_lack(sidecar))
    read_s = time.perf_counter() - t0
    check_stride(stride_s)
    check_file(case, sidecar, f"{path}: ")
    pred = predict_case(case, exported, stride_s, where=f"{path}: ")
    pred.timings["read_s"] = read_s
    t0 = time.perf_counter()
    csv_path = os.path.join(out_dir, f"{stem}_predictions.csv")
    to_frame(pred).to_csv(csv_path, index=False)
    pred.timings["csv_s"] = time.perf_counter() - t0
    png_path = None
    if plot:
        t0 = time.perf_counter()
        png_path = plot_timeline(pred, sidecar, os.path.join(out_dir, f"{stem}_timeline.png"),
                                 timeline_title(path, sidecar, pred.stride_s))
        pred.timings["png_s"] = time.perf_counter() - t0
    pred.timings["total_s"] = time.perf_counter() - t_start
    for line in summary_lines(path, pred, sidecar):
        log(line)
    log(f"wrote {csv_path}" + (f" and {png_path}" if png_path else "") + f" in {pred.timings['total_s']:.2f} s")
    return {"prediction": pred, "csv": csv_path, "png": png_path, "timings": pred.timings}


def summary_lines(path: str, pred: Prediction, sidecar: Sidecar) -> list[str]:
    """What ``hypo predict`` says about a recording: windows predicted, groups absent, alarms and outcomes."""
    n = len(pred.t_end)
    alarms = {c: int((pred.alarm == c).sum()) for c in ("hypotension", "hypertension")}
    lines = [f"{path}: {pred.n_seconds:,} s ({pred.n_seconds / 3600:.1f} h), {len(pred.readings['time'])} cuff "
             f"readings; {n} windows every {pred.stride_s} s: {pred.n_predicted} predicted, {n - pred.n_predicted} "
             "without (incomplete: a gap left after filling, or a waveform gap open at the window end)"]
    if pred.absent:
        lines.append(f"  the recording has no {' and no '.join(pred.absent)}; the model takes "
                     f"{'it' if len(pred.absent) == 1 else 'them'} as missing (its sidecar's tolerates_missing)")
    lines.append(f"  alarms at the operating point: hypotension {alarms['hypotension']}, hypertension "
                 f"{alarms['hypertension']}; a cuff reading {sidecar.horizon_s // 60} min later confirmed "
                 f"hypotension after {len(pred.confirmed_hypotension())} windows")
    return lines
