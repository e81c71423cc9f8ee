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

Rows: the model(s) (their p(hypotension), or with ``AlarmConfig.horizon_s`` their risk of hypotension by that
horizon: :func:`hypo.evaluate.alarms.replay.models_at_horizon`), then the last cuff reading (re-alarming at each low
reading), the feature model, and with arterial-line labels the last ART minute and a cuff simulated every 2.5 min
on the ART MAP (lead <= 0 by construction: the bar a predictive alarm must clear).

The Python entry point (``hypo evaluate MODEL_OR_RUN --data DIR --alarms`` calls it)::

    from hypo.evaluate.alarms.evaluation import AlarmOptions, alarm_evaluation
    from hypo.evaluate.alarms.result import format_alarm_table
    result = alarm_evaluation("model.pt", "data/demo", AlarmOptions(split="test"))   # or a run: its best trial
    print(format_alarm_table(result))                  # result: an AlarmResult (hypo.evaluate.alarms.result)

:func:`evaluate_alarms` scores several models at once (row name -> :class:`~hypo.infer.model.ExportedModel`);
:func:`validation_alarms` is ``hypo leaderboard --alarms`` (the validation split only).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from hypo.errors import ConfigError, HypoError
from hypo.evaluate.alarms.events import event_rule_text
from hypo.evaluate.alarms.metrics import (
    PROBABILITY,
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
    ART_EXTRAPOLATION_ALARM,
    ART_FIXED,
    COMPARATORS,
    CUFF_FIXED,
    FEATURE_MODEL,
    FREQUENT_CUFF,
    LAST_ART,
    LAST_ART_DBP_ALARM,
    LAST_READING,
    READS,
    Recordings,
    ReplayedSplit,
    replay_cuff,
    replay_split,
)
from hypo.evaluate.alarms.result import AlarmResult, CasesSummary, ValidationAlarms
from hypo.infer.model import ExportedModel
from hypo.learn.comparators import EXTRAPOLATION, LAST_DBP, MODEL_INPUTS

if TYPE_CHECKING:
    from hypo.data.manifest import Manifest
    from hypo.search.record import SearchRecord

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
    **{name: f"each cuff reading with MAP below {t:g} mmHg is an alarm until the next (a fixed rule, not tuned)"
       for name, t in CUFF_FIXED.items()},
    EXTRAPOLATION: "at each cuff reading, a least-squares line through it and up to 2 earlier readings no older than "
                   "15 min, extrapolated to the label's horizon; an alarm until the next reading when it is below "
                   "the threshold (mmHg)",
    LAST_DBP: "each cuff reading with DBP below the threshold (mmHg) is an alarm until the next reading",
    **{name: f"the ART MAP read every 2.5 min (as the simulated cuff), below {t:g} mmHg: a fixed rule on the "
             "invasive line" for name, t in ART_FIXED.items()},
    ART_EXTRAPOLATION_ALARM: "the ART MAP read every 2.5 min, extrapolated as the cuff's to the horizon; below the "
                             "threshold (mmHg)",
    LAST_ART_DBP_ALARM: "the ART DBP read every 2.5 min, below the threshold (mmHg)",
}
Thresholds = dict[str, dict[str, Any]]  # row name -> operating point -> {"threshold", ...}


@dataclasses.dataclass(frozen=True)
class AlarmOptions:
    """How an alarm evaluation is run: the split judged, where its thresholds come from, the policy and scoring.

    Attributes:
        split: The split judged (default ``test``).
        thresholds_from: ``"val"``: chosen on this dataset's validation split (default); a dataset folder: chosen
            on its validation split; fixed thresholds: a previous :class:`~hypo.evaluate.alarms.result.AlarmResult`
            or ``{row: {"fa_target": t, "sens_target": t}}``; None: curves only.
        cfg: The policy and scoring (:class:`~hypo.evaluate.alarms.metrics.AlarmConfig`: stride, targets, ...).
        feature_model: A fitted feature model, None (no such row), or ``"auto"`` (fitted on the dataset's train
            split, chosen on its validation split, as the search does).
        max_cases: Score at most this many cases per split (a deterministic subsample).
        n_boot: Subject-bootstrap replicates for the intervals (0: none).
        seed: Seed of the bootstrap.
    """

    split: str = "test"
    thresholds_from: str | AlarmResult | dict[str, Any] | None = "val"
    cfg: AlarmConfig = dataclasses.field(default_factory=AlarmConfig)
    feature_model: Any = "auto"
    max_cases: int | None = None
    n_boot: int = N_BOOT
    seed: int = 0


@dataclasses.dataclass
class AlarmDetail:
    """What the report draws, beside the result: the replayed test split and the chosen thresholds."""

    replay: ReplayedSplit
    thresholds: dict[str, dict[str, float]]
    pooled: dict[str, Pooled]
    cfg: AlarmConfig


# ------------------------------------------------------------------------------------------------ models


def trial_models(exp_path: str, trial_ids: list[str], val=None) -> dict[str, ExportedModel]:
    """Several trials of one search, each traced from its best checkpoint in memory (named by trial id).

    The trace and sidecar are those ``hypo export`` would write (:func:`hypo.evaluate.export_trial.trial_model`).
    """
    from hypo.evaluate.export_trial import trial_model

    return {t: trial_model(exp_path, t, val=val)[0] for t in trial_ids}


def check_trials_at_horizon(exp_path: str, trial_ids: list[str], cfg: AlarmConfig, data_dir: str,
                            manifest: Manifest | None = None) -> None:
    """Refuse ``--alarm-horizon`` for a search's trials before any work (and before any look at the test split).

    What :func:`~hypo.evaluate.alarms.replay.models_at_horizon` refuses once the models are traced, read off the
    trials' parameters: a trial with the class head has no risk per horizon; one with a per-horizon head has its
    dataset's horizons, so the dataset must be labelled at the horizon.

    Raises:
        ConfigError: One line naming the flag and the trial or the dataset.
    """
    from hypo.data.dataset import read_manifest
    from hypo.evaluate.alarms.replay import check_dataset_horizon
    from hypo.search.leaderboard import load_trials

    h = cfg.horizon_s
    if h is None:
        return
    check_dataset_horizon(manifest if manifest is not None else read_manifest(data_dir), h, data_dir)
    heads = {r.trial_id: r.params.get("head", "class") for r in load_trials(exp_path)}
    for t in trial_ids:
        if heads.get(t, "class") == "class":
            raise ConfigError(f"--alarm-horizon {h}: trial {t}: its model gives no risk per horizon (the class "
                              "head: p(hypotension) at the primary horizon only); train with --head hazard or "
                              "--head independent on a dataset built with --horizons")


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
    """The rows whose threshold is a definition, not a choice.

    The simulated cuff alarms below ``hypo_map``; the fixed MAP rules below 72 and 73 mmHg.
    """
    if name == FREQUENT_CUFF:
        return float(manifest.label.hypo_map)
    return {**CUFF_FIXED, **ART_FIXED}.get(name)


def choose_on_validation(val: ReplayedSplit, cfg: AlarmConfig, manifest: Manifest) -> dict[str, Any]:
    """Per row: the validation curve and the two thresholds chosen on it (:func:`select_thresholds`).

    Returns:
        Row name -> ``{"thresholds": {op: {...}}, "pooled": Pooled}``.
    """
    out = {}
    for name, kind in val.kinds.items():
        fixed = fixed_threshold(name, manifest)
        scores = _scores(val, name)
        grid = (np.array([fixed]) if fixed is not None
                else threshold_grid(scores, kind, cfg.n_thresholds, cfg.hysteresis))
        pooled = _pool(val, name, grid, cfg)
        chosen = select_thresholds(grid, curve(pooled), cfg)
        unusable = None if fixed is not None else no_usable_threshold(scores, kind, cfg)
        for op in chosen.values():
            if fixed is not None:
                op["fixed"] = True
            elif unusable:
                op["unusable"] = unusable
        out[name] = {"thresholds": chosen, "pooled": pooled}
    return out


def no_usable_threshold(scores: np.ndarray, kind: str, cfg: AlarmConfig) -> str | None:
    """Why a row's validation scores leave it no threshold that can alarm (None when they leave one).

    A probability threshold at or below the hysteresis is never used (an alarm on could never end), so a row whose
    every validation score is at or below it keeps only the threshold above its maximum, which never alarms.
    """
    s = np.asarray(scores, np.float64)
    s = s[np.isfinite(s)]
    if not len(s):
        return "it gave no score on the validation split, so only a threshold that never alarms is left"
    if kind == PROBABILITY and s.max() <= cfg.hysteresis:
        return (f"every validation p(hypotension) is at or below the hysteresis {cfg.hysteresis:g} (the highest is "
                f"{s.max():.3f}), and a threshold there could never end an alarm, so only a threshold that never "
                "alarms is left; lower --alarm-hysteresis")
    return None


def _row_meta(name: str, kind: str, descriptions: dict[str, str]) -> dict[str, Any]:
    model = name in descriptions
    unit = "mmHg (DBP below)" if name in (LAST_DBP, LAST_ART_DBP_ALARM) else "mmHg (MAP below)"
    return {"name": name, "role": "model" if model else "baseline", "kind": kind,
            "reads": MODEL_INPUTS if model else READS.get(name, ""),
            "description": descriptions[name] if model else BASELINE_TEXT.get(name, ""),
            "threshold_unit": "p(hypotension)" if kind == PROBABILITY else unit}


def _weights(replay: ReplayedSplit, n_boot: int, seed: int) -> np.ndarray | None:
    from hypo.evaluate.bootstrap import subject_weights

    if n_boot < 1 or not replay.events:
        return None
    return np.concatenate(list(subject_weights([e.subjectid for e in replay.events], n_boot, seed)), axis=0)


def score_split(replay: ReplayedSplit, chosen: Thresholds, cfg: AlarmConfig, descriptions: dict[str, str],
                manifest: Manifest, n_boot: int = N_BOOT,
                seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, Pooled]]:
    """Every row on a split at thresholds fixed elsewhere, plus its own curve over all thresholds.

    Args:
        replay: The split's replayed recordings.
        chosen: Row name -> ``{op: {"threshold", ...}}`` fixed on validation (a row missing here gets its
            curve only).
        cfg: The alarm config.
        descriptions: Model row name -> its description (the models' rows first, in this order).
        manifest: The dataset's manifest.
        n_boot: Subject-bootstrap replicates (0: no intervals).
        seed: Seed of the draws.

    Returns:
        ``(rows, pooled)``: JSON-ready rows in order (models, then baselines) and each row's pooled counts.
    """
    from hypo.evaluate.alarms.strata import stratified

    weights = _weights(replay, n_boot, seed)
    order = list(descriptions) + [n for n in (LAST_READING, FEATURE_MODEL, LAST_ART, FREQUENT_CUFF, *COMPARATORS)
                                  if n in replay.kinds]
    rows, pooled_all = [], {}
    hypo_map = float(manifest.label.hypo_map)
    for name in order:
        kind = replay.kinds[name]
        ops = chosen.get(name) or {}
        fixed = fixed_threshold(name, manifest)
        grid = (np.array([fixed]) if fixed is not None
                else threshold_grid(_scores(replay, name), kind, cfg.n_thresholds, cfg.hysteresis))
        grid = np.unique(np.r_[grid, [op["threshold"] for op in ops.values()]])
        pooled = _pool(replay, name, grid, cfg)
        pooled_all[name] = pooled
        row = {**_row_meta(name, kind, descriptions), "thresholds": ops, "operating_points": {},
               "curve": curve_summary(pooled, weights), "strata": {}}
        for op, spec in ops.items():
            k = int(np.searchsorted(grid, spec["threshold"]))
            row["operating_points"][op] = operating_point(pooled, k, weights)
            row["strata"][op] = stratified(replay.tracks[name], replay.events, replay.tracks[LAST_READING],
                                           spec["threshold"], cfg, hypo_map)
        rows.append(row)
    return rows, pooled_all


def _cases_summary(replay: ReplayedSplit) -> CasesSummary:
    span_h = sum(e.span[1] - e.span[0] for e in replay.events) / 3600
    return CasesSummary(
        listed=replay.n_listed, chosen=replay.n_chosen, scored=len(replay.events), failed=len(replay.failures),
        failures=replay.failures, hours=replay.hours, subjects=len({e.subjectid for e in replay.events}),
        episodes={k: int(sum((e.kind == k).sum() for e in replay.events))
                  for k in ("scored", "induction", "under way")},
        hypotension_min_per_h=(sum(e.hypo_s for e in replay.events) / 60 / span_h) if span_h > 0 else None,
        scored_span_hours=span_h)


def require_replayed(replay: ReplayedSplit, recordings: Recordings, purpose: str = "") -> None:
    """Refuse a split of which no case was scored, saying why: an empty split, or every case failing (and how).

    Raises:
        HypoError: One line naming the dataset and the split.
    """
    from hypo.data.dataset import empty_split_reason

    if replay.events:
        return
    where = f"{recordings.data_dir}: "
    if not replay.n_listed:
        raise HypoError(where + empty_split_reason(recordings.manifest, replay.split)
                        + (f"; the alarm evaluation needs its recordings {purpose}" if purpose else ""))
    reasons = ", ".join(f"{k} {v}" for k, v in collections.Counter(f["reason"] for f in replay.failures).items())
    first = replay.failures[0]
    raise HypoError(f"{where}no {replay.split} case could be replayed{' ' + purpose if purpose else ''}: all "
                    f"{len(replay.failures)} failed ({reasons}; case {first['caseid']}: {first['detail']})"
                    .splitlines()[0])


def _given_thresholds(given: AlarmResult | dict[str, Any]) -> Thresholds:
    """Thresholds passed in: a previous result (its rows' thresholds) or ``{row: {op: threshold}}``."""
    if isinstance(given, AlarmResult):
        return {r.name: r.thresholds for r in given.rows if r.thresholds}
    if "rows" in given:  # a previous result's JSON
        return {r["name"]: r["thresholds"] for r in given["rows"] if r.get("thresholds")}
    out = {}
    for name, ops in given.items():
        out[name] = {op: (v if isinstance(v, dict) else {"threshold": float(v), "given": True})
                     for op, v in ops.items()}
    return out


def choose_thresholds(models: dict[str, ExportedModel], recordings: Recordings, opts: AlarmOptions, feature_model,
                      log=print) -> tuple[Thresholds, str, CasesSummary | None]:
    """Each row's thresholds as ``opts.thresholds_from`` says: given, none, or chosen on a validation split.

    Returns:
        ``(thresholds, where they come from, the validation split's cases or None)``.

    Raises:
        HypoError: When no validation case could be replayed.
    """
    given = opts.thresholds_from
    if isinstance(given, (dict, AlarmResult)):
        return _given_thresholds(given), "given", None
    if given is None:
        return {}, "none (curves only)", None
    vrec = recordings if given in ("val", recordings.data_dir) else Recordings.of(given)
    val = replay_split(vrec, "val", models, opts.cfg, feature_model, opts.max_cases, log)
    require_replayed(val, vrec, "to choose the alarm thresholds")
    chosen = {name: v["thresholds"] for name, v in choose_on_validation(val, opts.cfg, vrec.manifest).items()}
    return chosen, f"the validation split of {vrec.data_dir}", _cases_summary(val)


def evaluate_alarms(models: dict[str, ExportedModel], data_dir: str, options: AlarmOptions | None = None, *,
                    describe: Callable[[ExportedModel], str] = ExportedModel.describe,
                    manifest: Manifest | None = None, meta: SearchRecord | None = None,
                    log=print) -> tuple[AlarmResult, AlarmDetail]:
    """The alarm evaluation of one or more models on one split, with the baselines (see the module docstring).

    Args:
        models: Row name -> model (:func:`~hypo.evaluate.export_trial.load_model_or_trial`, :func:`trial_models`).
        data_dir: A window dataset whose manifest records its recordings' source.
        options: The split, where the thresholds come from, policy and scoring (default :class:`AlarmOptions`).
        describe: A model row's description (default :meth:`ExportedModel.describe
            <hypo.infer.model.ExportedModel.describe>`).
        manifest: The dataset's manifest, if already read.
        meta: A search's record (its recorded feature-model choice).
        log: Where progress lines go.

    Returns:
        ``(result, detail)``: the :class:`~hypo.evaluate.alarms.result.AlarmResult` and what figures need.

    Raises:
        HypoError: When the recordings cannot be replayed (unknown source, changed source) or no case could be
            scored; ConfigError for bad settings.
    """
    from hypo.data.dataset import read_manifest

    opts = options or AlarmOptions()
    if opts.split == "val" and opts.thresholds_from == "val":
        raise ConfigError("thresholds chosen on the validation split cannot be judged on it; use split='test' or "
                          "pass thresholds_from")
    manifest = manifest if manifest is not None else read_manifest(data_dir)
    feature_model = opts.feature_model
    if feature_model == "auto":
        feature_model = fit_default_feature_model(data_dir, manifest, meta, log)
    recordings = Recordings.of(data_dir, manifest)
    chosen, origin, val_cases = choose_thresholds(models, recordings, opts, feature_model, log)
    replay = replay_split(recordings, opts.split, models, opts.cfg, feature_model, opts.max_cases, log)
    require_replayed(replay, recordings)
    rows, pooled = score_split(replay, chosen, opts.cfg, {name: describe(m) for name, m in models.items()},
                               manifest, opts.n_boot, opts.seed)
    comparators = [r for r in rows if r["name"] in COMPARATORS]
    rows = [r for r in rows if r["name"] not in COMPARATORS]
    result = alarm_result(recordings, opts, replay, rows, origin, val_cases, comparators)
    thresholds = {n: {op: s["threshold"] for op, s in ops.items()} for n, ops in chosen.items()}
    return result, AlarmDetail(replay, thresholds, pooled, opts.cfg)


def alarm_result(recordings: Recordings, opts: AlarmOptions, replay: ReplayedSplit, rows: list[dict[str, Any]],
                 origin: str, val_cases: CasesSummary | None,
                 comparators: list[dict[str, Any]] | None = None) -> AlarmResult:
    """The record of a scored split: the dataset, the rules and settings, the cases, the rows and comparators."""
    from hypo.data.cuff import schedule_text

    manifest, cfg = recordings.manifest, opts.cfg
    label = manifest.label
    schedule = replay_cuff(manifest, cfg)
    return AlarmResult(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        data=recordings.data_dir, dataset_fingerprint=manifest.fingerprint, split=opts.split,
        thresholds_from=origin, label_source=label.source,
        events=event_rule_text(label, cfg.merge_gap_s, cfg.induction_s, cfg.cuff_hold_s), policy=cfg.policy_text(),
        scoring=cfg.scoring_text(), config=cfg, simulated=manifest.simulated, cases=_cases_summary(replay),
        validation_cases=val_cases, n_boot=int(opts.n_boot), seed=int(opts.seed), rows=rows,
        comparators=comparators or [], hypo_map=float(label.hypo_map), horizon_s=cfg.horizon_s,
        cuff=schedule_text(schedule) if schedule is not None else None,
        timings={k: round(v, 3) for k, v in replay.timings.items()})


def alarm_evaluation(model: str | ExportedModel, data_dir: str, options: AlarmOptions | None = None,
                     trial: str | None = None, log=print) -> AlarmResult:
    """Score a model as an alarm on a window dataset's recordings (the Python API of ``--alarms``).

    Args:
        model: An exported model file (``hypo export``), an experiment folder (its leaderboard's first trial,
            or ``trial``; local or ``s3://``), or an :class:`~hypo.infer.model.ExportedModel` already loaded.
        data_dir: Any window dataset built by ``hypo windows`` (its manifest says where its recordings are).
        options: The split, where the thresholds come from, the policy and scoring (:class:`AlarmOptions`;
            ``hypo evaluate``'s ``--alarm-stride`` is ``options.cfg.stride_s``).
        trial: With an experiment folder: the trial to score.
        log: Where progress lines go.

    Returns:
        The :class:`~hypo.evaluate.alarms.result.AlarmResult`: ``rows`` (model first, then baselines), each with
        its ``thresholds`` (chosen on validation), ``operating_points`` (``fa_target``, ``sens_target``:
        sensitivity, lead time, false alarms per hour, alarms per hour, time in alarm, each with a
        subject-bootstrap interval) and ``curve``; plus ``cases`` (scored, failed with reasons), the event rule,
        policy and config. Print it with :func:`~hypo.evaluate.alarms.result.format_alarm_table`.
    """
    from hypo.evaluate.export_trial import load_model_or_trial

    model = model if isinstance(model, ExportedModel) else load_model_or_trial(model, trial)
    meta = None
    if model.origin == "run":  # the search's own feature-model choice
        from hypo.search.experiments import local_experiment
        from hypo.search.record import read_search_record

        meta = read_search_record(local_experiment(model.path, log=lambda s: None))
    return evaluate_alarms({"model": model}, data_dir, options, meta=meta, log=log)[0]


# ------------------------------------------------------------------------------------------------ a search's trials


def validation_alarms(exp_path: str, trial_ids: list[str], cfg: AlarmConfig | None = None,
                      max_cases: int | None = None, log=print) -> ValidationAlarms:
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
        The :class:`~hypo.evaluate.alarms.result.ValidationAlarms` (``alarms_val.json``).
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
    models = trial_models(exp_path, trial_ids, val=val_windows)
    recordings = Recordings.of(data_dir, manifest)
    val = replay_split(recordings, "val", models, cfg, fm, max_cases, log=log)
    require_replayed(val, recordings)
    rows = {}
    for name, chosen in choose_on_validation(val, cfg, manifest).items():
        spec = chosen["thresholds"]["fa_target"]
        pooled = chosen["pooled"]
        p = operating_point(pooled, int(np.searchsorted(pooled.thresholds, spec["threshold"])), None)
        rows[name] = {"threshold": spec["threshold"], "met": spec["met"], "sensitivity": p["sensitivity"]["value"],
                      "lead_median_s": p["lead_median_s"]["value"], "fa_per_h": p["fa_per_h"]["value"],
                      "detection": p["detection"]["value"], "kind": val.kinds[name], "ppv": p["ppv"]["value"],
                      "reads": READS.get(name, MODEL_INPUTS), "fixed": bool(spec.get("fixed"))}
    return ValidationAlarms(
        rows=rows, cases=_cases_summary(val), config=cfg,
        note=(("" if cfg.horizon_s is None else f"model rows read their {cfg.score_text} (--alarm-horizon); ")
              + f"alarm columns: the validation split, selection-biased: episode sensitivity at <= "
              f"{cfg.fa_target_per_h:g} false alarm/h and the median lead (min) at the threshold read off "
              f"each row's own validation curve ({len(val.events)} recordings, {val.hours:.1f} h, a "
              f"prediction every {cfg.stride_s} s)"))
