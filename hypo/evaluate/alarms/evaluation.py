"""Would it make a good alarm? Episodes caught, minutes of warning and false alarms per hour, model beside baselines.

Window AUROC ranks windows; a clinician asks how many hypotensive episodes an alarm announces, how many minutes
ahead, and how often it cries wolf. This module answers on whole recordings:

1. every case of a split is reloaded from the dataset's source and scored along its length every ``stride_s``
   seconds by the deployed code path (:mod:`hypo.evaluate.alarms.replay`);
2. episodes come from the dataset's own label rule (:mod:`hypo.evaluate.alarms.events`), alarms from the state machine
   (:mod:`hypo.infer.alarm_policy`), and the metrics from :mod:`hypo.evaluate.alarms.metrics`;
3. two thresholds per row are chosen on the **validation** split (a target of false alarms per hour, and a target
   episode sensitivity), never on the split being judged, and applied to it; the curve of sensitivity against
   false alarms per hour covers every threshold, with a band from a bootstrap over subjects.

Rows: the model(s), then the last cuff reading (re-alarming at each low reading), the feature model, and with
arterial-line labels the last ART minute and a cuff simulated every 2.5 min on the ART MAP (lead <= 0 by
construction: the bar a predictive alarm must clear).

The Python entry point (``hypo evaluate MODEL_OR_RUN --data DIR --alarms`` calls it)::

    from hypo.evaluate.alarms.evaluation import alarm_evaluation, format_alarm_table
    result = alarm_evaluation("model.pt", "data/demo", split="test")        # or a run folder: its best trial
    print(format_alarm_table(result))
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from hypo.config import to_dict
from hypo.errors import ConfigError, HypoError
from hypo.evaluate.alarms.events import event_rule_text
from hypo.evaluate.alarms.metrics import (
    PROBABILITY,
    READING,
    AlarmConfig,
    Pooled,
    case_counts,
    curve,
    curve_summary,
    operating_point,
    pool_counts,
    select_thresholds,
    threshold_grid,
)
from hypo.evaluate.alarms.replay import (
    FEATURE_MODEL,
    FREQUENT_CUFF,
    LAST_ART,
    LAST_READING,
    Predictor,
    ReplayedSplit,
    replay_source,
    replay_split,
)

if TYPE_CHECKING:
    from hypo.data.manifest import Manifest
    from hypo.evaluate.frozen import FrozenModel
    from hypo.search.record import SearchRecord

FORMAT = "hypo-alarms/1"
OPERATING_POINTS = ("fa_target", "sens_target")
N_BOOT = 1000
BASELINE_TEXT = {
    LAST_READING: "each cuff reading with MAP below the threshold (mmHg) is an alarm until the next reading "
                  "(re-alarming at each new low reading)",
    FEATURE_MODEL: "the feature-model baseline's p(hypotension) on the same windows, under the same alarm policy",
    LAST_ART: "p(hypotension) from the last minute of the arterial line (the window baseline's ramp), under the "
              "same alarm policy",
    FREQUENT_CUFF: "measure more often: a cuff simulated every 2.5 min reading the ART MAP, alarming below the "
                   "hypotension threshold; lead time <= 0 by construction, the bar a predictive alarm must clear",
}


@dataclasses.dataclass
class AlarmDetail:
    """What the report draws, beside the JSON-ready result: the replayed test split and the chosen thresholds."""

    replay: ReplayedSplit
    thresholds: dict[str, dict[str, float]]
    pooled: dict[str, Pooled]
    cfg: AlarmConfig


# ------------------------------------------------------------------------------------------------ predictors


def exported_predictor(path: str, name: str = "model") -> Predictor:
    """An exported model (``hypo export``) as a predictor."""
    from hypo.infer.export import load_exported

    module, sidecar = load_exported(path)
    m = sidecar.get("model") or {}
    return Predictor(name, module, sidecar, f"exported model {os.path.basename(path)} ({m.get('name')} k={m.get('k')})")


def trial_predictor(exp_path: str, trial: str | None = None, name: str | None = None, val=None) -> Predictor:
    """A search's trial (default: the leaderboard's first), traced from its checkpoint in memory, not written.

    The trace and sidecar are those ``hypo export`` would write (:func:`hypo.evaluate.export_trial.trace_trial`).
    """
    from hypo.evaluate.export_trial import trace_trial

    chosen, traced, sidecar, cfg = trace_trial(exp_path, trial, val=val)
    return Predictor(name or chosen.trial_id, traced, sidecar,
                     f"trial {chosen.trial_id} (rank {chosen.rank}: {cfg.model.name} k={cfg.model.k} {cfg.loss}), "
                     f"epoch {chosen.epoch}")


def frozen_predictor(frozen, name: str = "model") -> Predictor:
    """A frozen model (:func:`hypo.evaluate.frozen.load_frozen`) as a predictor, described as it describes itself."""
    return Predictor(name, frozen.module, frozen.sidecar, frozen.describe())


def fit_default_feature_model(data_dir: str, manifest: Manifest, meta: SearchRecord | None = None, log=print):
    """The feature-model baseline of a dataset: a search's recorded choice refitted, else chosen anew.

    Returns:
        The fitted model, or None when the dataset cannot fit one (said in one line).
    """
    from hypo.data.dataset import load_split
    from hypo.learn.baselines import feature_model_for

    try:
        train, val = load_split(data_dir, "train", manifest), load_split(data_dir, "val", manifest)
        return feature_model_for(meta.baselines if meta is not None else (), train, val)
    except HypoError as exc:
        log(f"alarm evaluation: no feature-model row ({exc})")
        return None


# ------------------------------------------------------------------------------------------------ scoring


def _pool(replay: ReplayedSplit, name: str, thresholds, cfg: AlarmConfig) -> Pooled:
    counts = [case_counts(track, ev, thresholds, cfg) for track, ev in zip(replay.tracks[name], replay.events)]
    return pool_counts(counts, [e.subjectid for e in replay.events], thresholds)


def _scores(replay: ReplayedSplit, name: str) -> np.ndarray:
    parts = [t.score for t in replay.tracks[name] if len(t.score)]
    return np.concatenate(parts) if parts else np.zeros(0)


def fixed_threshold(name: str, manifest: Manifest) -> float | None:
    """The rows whose threshold is a definition, not a choice: the simulated cuff alarms below ``hypo_map``."""
    return float(manifest.label.hypo_map) if name == FREQUENT_CUFF else None


def choose_on_validation(val: ReplayedSplit, cfg: AlarmConfig, manifest: Manifest) -> dict[str, Any]:
    """Per row: the validation curve and the two thresholds chosen on it (:func:`select_thresholds`).

    Returns:
        Row name -> ``{"thresholds": {op: {...}}, "pooled": Pooled}``.
    """
    out = {}
    for name, kind in val.kinds.items():
        fixed = fixed_threshold(name, manifest)
        grid = (np.array([fixed]) if fixed is not None
                else threshold_grid(_scores(val, name), kind, cfg.n_thresholds, cfg.hysteresis))
        pooled = _pool(val, name, grid, cfg)
        chosen = select_thresholds(grid, curve(pooled), cfg)
        if fixed is not None:
            for op in chosen.values():
                op["fixed"] = True
        out[name] = {"thresholds": chosen, "pooled": pooled}
    return out


def _row_meta(name: str, kind: str, predictors: list[Predictor]) -> dict[str, Any]:
    p = next((p for p in predictors if p.name == name), None)
    return {"name": name, "role": "model" if p is not None else "baseline", "kind": kind,
            "description": p.description if p is not None else BASELINE_TEXT.get(name, ""),
            "threshold_unit": "p(hypotension)" if kind == PROBABILITY else "mmHg (MAP below)"}


def _weights(replay: ReplayedSplit, n_boot: int, seed: int) -> np.ndarray | None:
    from hypo.evaluate.bootstrap import subject_weights

    if n_boot < 1 or not replay.events:
        return None
    return np.concatenate(list(subject_weights([e.subjectid for e in replay.events], n_boot, seed)), axis=0)


def score_split(replay: ReplayedSplit, chosen: dict[str, dict[str, Any]], cfg: AlarmConfig,
                predictors: list[Predictor], manifest: Manifest, n_boot: int = N_BOOT,
                seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, Pooled]]:
    """Every row on a split at thresholds fixed elsewhere, plus its own curve over all thresholds.

    Args:
        replay: The split's replayed recordings.
        chosen: Row name -> ``{op: {"threshold", ...}}`` fixed on validation (a row missing here gets its
            curve only).
        cfg: The alarm config.
        predictors: The models (for the rows' descriptions).
        manifest: The dataset's manifest.
        n_boot: Subject-bootstrap replicates (0: no intervals).
        seed: Seed of the draws.

    Returns:
        ``(rows, pooled)``: JSON-ready rows in order (models, then baselines) and each row's pooled counts.
    """
    weights = _weights(replay, n_boot, seed)
    order = [p.name for p in predictors] + [n for n in (LAST_READING, FEATURE_MODEL, LAST_ART, FREQUENT_CUFF)
                                            if n in replay.kinds]
    rows, pooled_all = [], {}
    for name in order:
        kind = replay.kinds[name]
        ops = chosen.get(name) or {}
        fixed = fixed_threshold(name, manifest)
        grid = (np.array([fixed]) if fixed is not None
                else threshold_grid(_scores(replay, name), kind, cfg.n_thresholds, cfg.hysteresis))
        grid = np.unique(np.r_[grid, [op["threshold"] for op in ops.values()]])
        pooled = _pool(replay, name, grid, cfg)
        pooled_all[name] = pooled
        row = {**_row_meta(name, kind, predictors), "thresholds": ops, "operating_points": {},
               "curve": curve_summary(pooled, weights)}
        for op, spec in ops.items():
            k = int(np.searchsorted(grid, spec["threshold"]))
            row["operating_points"][op] = operating_point(pooled, k, weights)
        rows.append(row)
    return rows, pooled_all


def _cases_summary(replay: ReplayedSplit) -> dict[str, Any]:
    return {"listed": replay.n_listed, "chosen": replay.n_chosen, "scored": len(replay.events),
            "failed": len(replay.failures), "failures": replay.failures, "hours": replay.hours,
            "subjects": len({e.subjectid for e in replay.events}),
            "episodes": {k: int(sum((e.kind == k).sum() for e in replay.events))
                         for k in ("scored", "induction", "under way")}}


def _given_thresholds(given: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Thresholds passed in: a previous result (its rows' thresholds) or ``{row: {op: threshold}}``."""
    if "rows" in given:
        return {r["name"]: r["thresholds"] for r in given["rows"] if r.get("thresholds")}
    out = {}
    for name, ops in given.items():
        out[name] = {op: (v if isinstance(v, dict) else {"threshold": float(v), "given": True})
                     for op, v in ops.items()}
    return out


def evaluate_alarms(predictors: list[Predictor], data_dir: str, split: str = "test",
                    thresholds_from: str | dict[str, Any] | None = "val", cfg: AlarmConfig | None = None,
                    feature_model: Any = "auto", max_cases: int | None = None, n_boot: int = N_BOOT, seed: int = 0,
                    manifest: Manifest | None = None, meta: SearchRecord | None = None,
                    log=print) -> tuple[dict[str, Any], AlarmDetail]:
    """The alarm evaluation of one or more models on one split, with the baselines (see the module docstring).

    Args:
        predictors: The models (:func:`trial_predictor`, :func:`exported_predictor`, :func:`frozen_predictor`).
        data_dir: A window dataset whose manifest records its recordings' source.
        split: The split judged.
        thresholds_from: ``"val"`` (this dataset's validation split), another dataset folder (its validation
            split), or thresholds given: a previous result, or ``{row: {"fa_target": t, "sens_target": t}}``.
        cfg: Policy and scoring (default :class:`AlarmConfig`).
        feature_model: A fitted feature model, None (no such row), or ``"auto"`` (fitted on the dataset's train
            split, chosen on its validation split, as the search does).
        max_cases: Score at most this many cases per split (a deterministic subsample).
        n_boot: Subject-bootstrap replicates for the intervals.
        seed: Seed of the bootstrap.
        manifest: The dataset's manifest, if already read.
        meta: A search's record (its recorded feature-model choice).
        log: Where progress lines go.

    Returns:
        ``(result, detail)``: the JSON-ready result and what figures need.

    Raises:
        HypoError: When the recordings cannot be replayed (unknown source, changed source) or no case could be
            scored; ConfigError for bad settings.
    """
    from hypo.data.dataset import read_manifest

    cfg = cfg or AlarmConfig()
    if split == "val" and thresholds_from == "val":
        raise ConfigError("thresholds chosen on the validation split cannot be judged on it; use split='test' or "
                          "pass thresholds_from")
    manifest = manifest if manifest is not None else read_manifest(data_dir)
    if feature_model == "auto":
        feature_model = fit_default_feature_model(data_dir, manifest, meta, log)
    source = replay_source(manifest)
    chosen: dict[str, dict[str, Any]]
    val_summary = None
    if isinstance(thresholds_from, dict):
        chosen, origin = _given_thresholds(thresholds_from), "given"
    elif thresholds_from is None:
        chosen, origin = {}, "none (curves only)"
    else:
        vdir = data_dir if thresholds_from == "val" else thresholds_from
        vman = manifest if vdir == data_dir else read_manifest(vdir)
        vsrc = source if vdir == data_dir else None
        val = replay_split(vdir, "val", predictors, cfg, vman, feature_model, max_cases, vsrc, log)
        if not val.events:
            raise HypoError(f"{vdir}: no validation case could be replayed to choose the alarm thresholds "
                            f"({len(val.failures)} failed)")
        chosen = {name: v["thresholds"] for name, v in choose_on_validation(val, cfg, vman).items()}
        origin = f"the validation split of {vdir}"
        val_summary = _cases_summary(val)
    replay = replay_split(data_dir, split, predictors, cfg, manifest, feature_model, max_cases, source, log)
    if not replay.events:
        raise HypoError(f"{data_dir}: no {split} case could be replayed ({len(replay.failures)} failed: "
                        + ", ".join(sorted({f['reason'] for f in replay.failures})) + ")")
    rows, pooled = score_split(replay, chosen, cfg, predictors, manifest, n_boot, seed)
    label = manifest.label
    result = {
        "format": FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": data_dir,
        "dataset_fingerprint": manifest.fingerprint,
        "split": split,
        "thresholds_from": origin,
        "label_source": label.source,
        "events": event_rule_text(label, cfg.merge_gap_s, cfg.induction_s, cfg.cuff_hold_s),
        "policy": cfg.policy_text(),
        "scoring": cfg.scoring_text(),
        "config": to_dict(cfg),
        "simulated": manifest.simulated,
        "cases": _cases_summary(replay),
        "validation_cases": val_summary,
        "n_boot": int(n_boot),
        "seed": int(seed),
        "rows": rows,
        "timings": {k: round(v, 3) for k, v in replay.timings.items()},
    }
    return result, AlarmDetail(replay, {n: {op: s["threshold"] for op, s in ops.items()} for n, ops in chosen.items()},
                               pooled, cfg)


def alarm_evaluation(predictor: str | Predictor | FrozenModel, data_dir: str, split: str = "test",
                     thresholds_from: str | dict[str, Any] | None = "val", stride_s: int = 10,
                     max_cases: int | None = None, config: AlarmConfig | None = None, feature_model: Any = "auto",
                     n_boot: int = N_BOOT, seed: int = 0, trial: str | None = None, log=print) -> dict[str, Any]:
    """Score a model as an alarm on a window dataset's recordings (the Python API of ``--alarms``).

    Args:
        predictor: An exported model file (``hypo export``), an experiment folder (its leaderboard's first trial,
            or ``trial``; local or ``s3://``), a :class:`~hypo.evaluate.frozen.FrozenModel` already loaded, or a
            :class:`~hypo.evaluate.alarms.replay.Predictor`.
        data_dir: Any window dataset built by ``hypo windows`` (its manifest says where its recordings are).
        split: The split judged (default ``test``).
        thresholds_from: ``"val"``: chosen on this dataset's validation split (default); a dataset folder: chosen
            on its validation split; a dict: fixed thresholds (a previous result, or ``{row: {op: t}}``); None:
            curves only.
        stride_s: Seconds between predictions along each recording (``--alarm-stride``).
        max_cases: Score at most this many cases per split (``--alarm-cases``).
        config: Every other setting (:class:`~hypo.evaluate.alarms.metrics.AlarmConfig`); its stride is replaced
            by ``stride_s``.
        feature_model: ``"auto"``, a fitted feature model, or None.
        n_boot: Subject-bootstrap replicates.
        seed: Bootstrap seed.
        trial: With an experiment folder: the trial to score.
        log: Where progress lines go.

    Returns:
        The JSON-ready result: ``rows`` (model first, then baselines), each with its ``thresholds`` (chosen on
        validation), ``operating_points`` (``fa_target``, ``sens_target``: sensitivity, lead time, false alarms
        per hour, alarms per hour, time in alarm, each with a subject-bootstrap interval) and ``curve``; plus
        ``cases`` (scored, failed with reasons), the event rule, policy and config. Print it with
        :func:`format_alarm_table`.
    """
    from hypo.evaluate.frozen import FrozenModel, load_frozen

    cfg = dataclasses.replace(config or AlarmConfig(), stride_s=stride_s)
    frozen = None
    if isinstance(predictor, Predictor):
        pred = predictor
    else:
        frozen = predictor if isinstance(predictor, FrozenModel) else load_frozen(predictor, trial)
        pred = frozen_predictor(frozen)
    meta = None
    if frozen is not None and frozen.origin == "run":  # the search's own feature-model choice
        from hypo.search.experiments import local_experiment
        from hypo.search.record import read_search_record

        meta = read_search_record(local_experiment(frozen.path, log=lambda s: None))
    result, _ = evaluate_alarms([pred], data_dir, split, thresholds_from, cfg, feature_model, max_cases, n_boot,
                                seed, meta=meta, log=log)
    return result


# ------------------------------------------------------------------------------------------------ text


def _ci(m: dict[str, Any] | None, scale: float = 1.0, digits: int = 2, pct: bool = False) -> str:
    if not m or m.get("value") is None:
        return "n/a"
    f = (lambda v: f"{100 * v:.0f}%") if pct else (lambda v: f"{v * scale:.{digits}f}")
    lo, hi = m.get("lo"), m.get("hi")
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return f(m["value"])
    return f"{f(m['value'])} [{f(lo)}, {f(hi)}]"


def _threshold_text(row: dict[str, Any], op: str) -> str:
    spec = (row.get("thresholds") or {}).get(op)
    if not spec:
        return "-"
    t = spec["threshold"]
    text = f"MAP<{t:.1f}" if row["kind"] == READING else f"p>={t:.3f}"
    if spec.get("fixed"):
        return text + " (fixed)"
    return text + ("" if spec.get("met", True) else " (target not met on val)")


ALARM_COLUMNS = ("row", "threshold", "sensitivity", "lead, min", "false alarms/h", "alarms/h", "in alarm",
                 "detected", "detection lead, min")


def alarm_table_cells(result: dict[str, Any], op: str = "fa_target") -> list[list[str]]:
    """The cells of the alarm table at one operating point (:data:`ALARM_COLUMNS`), a row per model / baseline."""
    out = []
    for row in result["rows"]:
        p = row["operating_points"].get(op)
        name = ("" if row["role"] == "model" else "baseline: ") + row["name"]
        if p is None:
            out.append([name, "-", "n/a (no threshold)"] + [""] * (len(ALARM_COLUMNS) - 3))
            continue
        out.append([name, _threshold_text(row, op), _ci(p["sensitivity"], pct=True),
                    _ci(p["lead_median_s"], 1 / 60, 1), _ci(p["fa_per_h"]), _ci(p["alarms_per_h"], digits=1),
                    _ci(p["time_in_alarm"], pct=True), _ci(p["detection"], pct=True),
                    _ci(p["detection_lead_median_s"], 1 / 60, 1)])
    return out


def alarm_table_lines(result: dict[str, Any], op: str = "fa_target") -> list[str]:
    """The alarm table of one operating point as aligned text lines (header first)."""
    cells = [list(ALARM_COLUMNS)] + alarm_table_cells(result, op)
    widths = [max(len(r[i]) for r in cells) for i in range(len(ALARM_COLUMNS))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in cells]


def induction_line(result: dict[str, Any], op: str = "fa_target") -> str:
    """The induction episodes, reported apart: how many, and the share each row caught at one operating point."""
    n = result["cases"]["episodes"]["induction"]
    minutes = result["config"]["induction_s"] / 60
    if not n:
        return f"induction (first {minutes:g} min, reported apart): no episode began then"
    parts = []
    for row in result["rows"]:
        p = row["operating_points"].get(op)
        if p is not None and p.get("induction_sensitivity") is not None:
            parts.append(f"{row['name']} {100 * p['induction_sensitivity']:.0f}%")
    return (f"induction (first {minutes:g} min, reported apart): {n} episodes; caught at the false-alarm threshold: "
            + (", ".join(parts) or "n/a"))


def format_alarm_table(result: dict[str, Any]) -> str:
    """The alarm evaluation as text: cases, event rule, then one table per operating point."""
    c = result["cases"]
    sim = "  [SIMULATED data: says nothing about clinical performance]" if result.get("simulated") else ""
    cfg = result["config"]
    lines = [f"alarm evaluation, {result['split']} split{sim}: {c['scored']} recordings ({c['hours']:.1f} h, "
             f"{c['subjects']} subjects) replayed every {cfg['stride_s']} s"
             + (f", {c['failed']} could not be scored" if c["failed"] else "")
             + (f" (a subsample of {c['chosen']} of {c['listed']})" if c["chosen"] < c["listed"] else ""),
             f"  events: {result['events']}",
             f"  episodes: {c['episodes']['scored']} scored, {c['episodes']['induction']} in induction (apart), "
             f"{c['episodes']['under way']} under way when scoring began (left out)",
             f"  policy: {result['policy']}",
             f"  scoring: {result['scoring']}",
             f"  thresholds chosen on {result['thresholds_from']}; intervals: 95% bootstrap over subjects "
             f"({result['n_boot']} replicates)"]
    for op, title in (("fa_target", f"at the threshold for <= {cfg['fa_target_per_h']:g} false alarm/h"),
                      ("sens_target", f"at the threshold for >= {100 * cfg['sens_target']:.0f}% sensitivity")):
        lines += ["", f"{result['split']} split, {title} (chosen on validation):"] + alarm_table_lines(result, op)
    lines.append(induction_line(result))
    lines.append("lead: median over caught episodes; detected: an alarm at any moment from onset - "
                 f"{cfg['lead_max_s'] / 60:g} min to the episode's end (its lead may be <= 0: after onset).")
    for f in c["failures"][:5]:
        lines.append(f"  not scored: case {f['caseid']}: {f['reason']} ({f['detail']})")
    if len(c["failures"]) > 5:
        lines.append(f"  ... and {len(c['failures']) - 5} more")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ a search's trials


def trial_predictors(exp_path: str, trial_ids: list[str], val=None) -> list[Predictor]:
    """Several trials of one search, each traced from its best checkpoint (named by trial id)."""
    return [trial_predictor(exp_path, t, name=t, val=val) for t in trial_ids]


def validation_alarms(exp_path: str, trial_ids: list[str], cfg: AlarmConfig | None = None,
                      max_cases: int | None = None, log=print) -> dict[str, Any]:
    """The top trials and every baseline as alarms on the **validation** split (no look at the test split).

    Each row's threshold for the false-alarm target is read off its own validation curve, and its sensitivity and
    median lead there reported: selection-biased figures, like every validation figure, for ranking only.

    Args:
        exp_path: A search's experiment folder.
        trial_ids: The trials (the leaderboard's top N).
        cfg: The alarm config.
        max_cases: At most this many validation recordings.
        log: Where progress lines go.

    Returns:
        ``{"rows": {name: {"threshold", "met", "sensitivity", "lead_median_s", "fa_per_h", "detection"}}, "cases":
        ..., "config": ..., "note": ...}``.
    """
    from hypo.data.dataset import load_split, read_manifest
    from hypo.learn.baselines import feature_model_for
    from hypo.search.experiments import experiment_dataset, local_experiment
    from hypo.search.record import read_search_record

    cfg = cfg or AlarmConfig()
    exp_path = local_experiment(exp_path, log=lambda s: None)
    data_dir = experiment_dataset(exp_path)
    manifest = read_manifest(data_dir)
    train, val_windows = load_split(data_dir, "train", manifest), load_split(data_dir, "val", manifest)
    fm = feature_model_for(read_search_record(exp_path).baselines, train, val_windows)
    predictors = trial_predictors(exp_path, trial_ids, val=val_windows)
    val = replay_split(data_dir, "val", predictors, cfg, manifest, fm, max_cases, log=log)
    if not val.events:
        raise HypoError(f"{data_dir}: no validation case could be replayed ({len(val.failures)} failed)")
    rows = {}
    for name, chosen in choose_on_validation(val, cfg, manifest).items():
        spec = chosen["thresholds"]["fa_target"]
        pooled = chosen["pooled"]
        p = operating_point(pooled, int(np.searchsorted(pooled.thresholds, spec["threshold"])), None)
        rows[name] = {"threshold": spec["threshold"], "met": spec["met"], "sensitivity": p["sensitivity"]["value"],
                      "lead_median_s": p["lead_median_s"]["value"], "fa_per_h": p["fa_per_h"]["value"],
                      "detection": p["detection"]["value"], "kind": val.kinds[name]}
    return {"rows": rows, "cases": _cases_summary(val), "config": to_dict(cfg),
            "note": (f"alarm columns: the validation split, selection-biased: episode sensitivity at <= "
                     f"{cfg.fa_target_per_h:g} false alarm/h and the median lead (min) at the threshold read off "
                     f"each row's own validation curve ({len(val.events)} recordings, {val.hours:.1f} h, a "
                     f"prediction every {cfg.stride_s} s)")}
