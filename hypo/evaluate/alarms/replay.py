"""Replaying a window dataset's recordings end to end, as a deployed model would see them.

The stored windows cannot give the recordings back (stride 60 s, gaps filled, only labelled windows kept), so each
case is reloaded from the source the manifest describes (``source.spec``, built by
:func:`hypo.data.sources.factory.build_source`), after checking that the source still yields what it did (its
fingerprint):

- ``demo``: the simulator with the recorded seed, site and number of cases;
- ``vital-dir``: the recorded folder, track map and subjects file;
- ``vitaldb``: the recorded API address, cache (which must hold the files, or they are downloaded again) and cases.

A case's split comes from ``DIR/cases/case_<id>.json``. Each recording is loaded once, prepared once by the causal
pipeline (:func:`hypo.infer.causal.prepare_case`: the cleaning and filling of preprocessing, every decision taken
with what is known at each window's end, as ``hypo serve`` takes it live) and scored by every model with the infer
layer's own :func:`hypo.infer.predict.predict_case` at ``stride_s``: what is evaluated is what is deployed. The
same filled signals feed the baselines, and the arterial line is read as it was known at each moment
(:class:`hypo.data.art.KnownLine`: a spike is removed only once the sample that ends it has come, the coverage
rule uses the line's interval so far); episodes, judged in hindsight, use whole recordings:

- **last reading**: every cuff reading (artefacts removed) is an alarm when its MAP is below the threshold, until
  the next reading (at most the carry-forward limit);
- **feature model**: its p(hypotension) on the very windows the model saw;
- **last ART minute** (arterial-line datasets): p(hypotension) from the last minute of the line before each
  window end (the same ramp as the window baseline); none where that minute lacks coverage;
- **frequent cuff** ("measure more often", arterial-line datasets): a cuff simulated every ``cuff_cycle_s``
  (2.5 min) reading the median ART MAP of the ``cuff_measure_s`` before it, alarming below ``hypo_map``: what
  measuring more often would catch, the bar a predictive alarm must clear (an ideal cuff of
  :func:`hypo.data.cuff.simulate_readings`, the one cuff simulation).

A dataset built with ``--cuff-from-art`` (or a replay given it, ``AlarmConfig.cuff_from_art``) has each recording's
cuff readings replaced by the simulated cuff before anything reads them (:func:`replay_cuff`): the model and the
last reading see the cuff the dataset was built with, seeded by case, so the same readings.

With ``--alarm-horizon S`` (``AlarmConfig.horizon_s``) every model is read at that horizon before any recording is
loaded (:func:`models_at_horizon`): its p(hypotension) column, and so its track, is its risk of hypotension by S;
the baselines, the episodes and the scoring stay as they are.

A case that fails to load, prepare or predict is counted with its reason and left out of every row alike; it never
stops the evaluation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
import traceback
from typing import Any

import numpy as np

from hypo import storage
from hypo.data.manifest import Manifest
from hypo.data.sources.factory import SOURCE_NAMES, build_source
from hypo.errors import CaseRejected, ConfigError, HypoError
from hypo.evaluate.alarms.events import CaseEvents, case_events
from hypo.evaluate.alarms.metrics import PROBABILITY, READING, AlarmConfig, Track, slots_of_readings, slots_on_grid
from hypo.infer.model import ExportedModel
from hypo.infer.sidecar import WindowRules
from hypo.learn.comparators import (
    ART,
    ART_EXTRAPOLATION,
    CUFF,
    EXTRAPOLATION,
    FIXED_MAP_THRESHOLDS,
    LAST_ART_DBP,
    LAST_DBP,
    MODEL_INPUTS,
    fixed_name,
    reading_extrapolation,
)

LAST_READING = "last reading"
FEATURE_MODEL = "feature model"
LAST_ART = "last ART minute"
FREQUENT_CUFF = "cuff every 2.5 min (simulated)"
# The comparators (hypo.learn.comparators) as alarms: on the cuff readings, and with ART labels on the ART MAP and
# DBP read every 2.5 min as the simulated frequent cuff reads them.
CUFF_FIXED = {fixed_name(t): t for t in FIXED_MAP_THRESHOLDS}
ART_FIXED = {f"{fixed_name(t, ART)} every 2.5 min": t for t in FIXED_MAP_THRESHOLDS}
ART_EXTRAPOLATION_ALARM = f"{ART_EXTRAPOLATION} every 2.5 min"
LAST_ART_DBP_ALARM = f"{LAST_ART_DBP} every 2.5 min"
COMPARATORS: tuple[str, ...] = (*CUFF_FIXED, EXTRAPOLATION, LAST_DBP, *ART_FIXED, ART_EXTRAPOLATION_ALARM,
                                LAST_ART_DBP_ALARM)
READS = {LAST_READING: CUFF, FEATURE_MODEL: MODEL_INPUTS, LAST_ART: ART, FREQUENT_CUFF: ART,
         **{n: CUFF for n in (*CUFF_FIXED, EXTRAPOLATION, LAST_DBP)},
         **{n: ART for n in (*ART_FIXED, ART_EXTRAPOLATION_ALARM, LAST_ART_DBP_ALARM)}}


@dataclasses.dataclass
class ReplayedSplit:
    """Every scored recording of one split: its events, and each row's alarm slots on it.

    Attributes:
        split: ``val`` or ``test``.
        events: One :class:`~hypo.evaluate.alarms.events.CaseEvents` per scored recording.
        tracks: Row name -> one :class:`~hypo.evaluate.alarms.metrics.Track` per recording (aligned with
            ``events``).
        kinds: Row name -> ``probability`` or ``reading``.
        failures: ``{"caseid", "reason", "detail"}`` of each case that could not be scored.
        n_listed: Cases of the split in the dataset.
        n_chosen: Cases attempted (fewer than listed with ``max_cases``).
        timings: Seconds spent loading, preparing, predicting and on baselines.
    """

    split: str
    events: list[CaseEvents]
    tracks: dict[str, list[Track]]
    kinds: dict[str, str]
    failures: list[dict[str, Any]]
    n_listed: int
    n_chosen: int
    timings: dict[str, float]

    @property
    def hours(self) -> float:
        """Hours of recording scored."""
        return sum(e.duration_s for e in self.events) / 3600


@dataclasses.dataclass(frozen=True)
class Recordings:
    """A window dataset's recordings, ready to reload: its folder, its manifest and its source rebuilt and checked.

    Attributes:
        data_dir: The window dataset.
        manifest: Its manifest.
        source: The source it was built from (:func:`replay_source`), checked to yield the same recordings.
    """

    data_dir: str
    manifest: Manifest
    source: Any

    @classmethod
    def of(cls, data_dir: str, manifest: Manifest | None = None) -> Recordings:
        """The recordings of ``data_dir`` (its manifest read when None).

        Raises:
            HypoError: When the source cannot be rebuilt or no longer matches the dataset.
        """
        from hypo.data.manifest import read_manifest

        manifest = manifest if manifest is not None else read_manifest(data_dir)
        return cls(data_dir, manifest, replay_source(manifest))


# ----------------------------------------------------------------------------------------------- the source


def replay_source(manifest: Manifest):
    """The source a dataset was built from, rebuilt from its manifest's description and checked.

    Raises:
        HypoError: For a source that cannot be rebuilt (one line naming it), or one that no longer yields what the
            dataset was built from (:func:`check_source`).
    """
    spec = manifest.source.spec
    if spec is None or spec.name not in SOURCE_NAMES:
        name = spec.name if spec is not None else manifest.source.name
        raise HypoError(f"cannot replay the recordings of a {name!r} source: only demo, vital-dir and vitaldb "
                        "datasets record where their recordings come from")
    source = build_source(spec)
    check_source(source, manifest)
    return source


def check_source(source, manifest: Manifest) -> None:
    """Refuse a source that no longer yields what the dataset was built from.

    Raises:
        HypoError: When its fingerprint differs from the manifest's (files changed, another seed, ...).
    """
    want = manifest.source.fingerprint
    have = source.fingerprint()
    if want != have:
        raise HypoError(f"the {source.name} source no longer yields the recordings the dataset was built from "
                        f"(fingerprint {have}, manifest {want}); its alarms cannot be scored")


def split_cases(data_dir: str, split: str) -> list[dict[str, Any]]:
    """The cases of one split (``{"caseid", "subjectid", "duration_s"}``), from ``DIR/cases/case_<id>.json``."""
    folder = storage.join(str(data_dir), "cases")
    out = []
    for name in storage.list_files(folder, ".json"):
        s = storage.read_json(storage.join(folder, name))
        if s.get("status") == "ok" and s.get("split") == split:
            out.append({"caseid": str(s["caseid"]), "subjectid": str(s["subjectid"]),
                        "duration_s": int(s.get("duration_s", 0))})
    return sorted(out, key=lambda c: (len(c["caseid"]), c["caseid"]))


def subsample(cases: list[dict[str, Any]], n: int | None) -> list[dict[str, Any]]:
    """At most ``n`` cases, chosen by a hash of their ids (deterministic, unrelated to case order)."""
    if n is None or n >= len(cases):
        return list(cases)
    if n < 1:
        raise HypoError(f"--alarm-cases must be >= 1, got {n}")
    ranked = sorted(cases, key=lambda c: hashlib.sha256(c["caseid"].encode()).hexdigest())[:n]
    keep = {c["caseid"] for c in ranked}
    return [c for c in cases if c["caseid"] in keep]


# ----------------------------------------------------------------------------------------------- one case


def dataset_rules(manifest: Manifest) -> WindowRules:
    """A dataset's own window rules, as :func:`hypo.infer.predict.prepare_case` takes them.

    :func:`hypo.infer.sidecar.window_config` of the result is the dataset's window config (its stride aside): the
    same window, fill rule, labels, minimum length, groups a case may lack (``--allow-missing``, as the sidecar's
    ``tolerates_missing``) and cuff-reading merge gap (``--nibp-merge-s``).
    """
    from hypo.infer.export import dataset_window_config

    wc = dataset_window_config(manifest)
    return WindowRules(window_s=wc.window_s, min_case_s=wc.min_case_s, label=wc.label, fill=wc.fill,
                       nibp_merge_s=wc.nibp_merge_s, tolerates_missing=list(wc.allow_missing))


def replay_cuff(manifest: Manifest, cfg: AlarmConfig):
    """The cuff schedule the replay simulates: ``cfg.cuff_from_art``, else the dataset's (``--cuff-from-art``).

    Returns:
        A :class:`hypo.config.CuffSchedule`, or None: the recordings' own cuff.

    Raises:
        HypoError: A schedule for a dataset without an arterial line (cuff labels: its source reads none).
    """
    own = manifest.config.cuff_from_art if manifest.config is not None else None
    schedule = cfg.cuff_from_art if cfg.cuff_from_art is not None else own
    if schedule is not None and manifest.label.source != "art":
        raise HypoError("--cuff-from-art simulates the cuff from the arterial line, and this dataset has none (its "
                        "labels come from the cuff); build it with --label-source art")
    return schedule


def models_at_horizon(models: dict[str, ExportedModel], manifest: Manifest, cfg: AlarmConfig,
                      data_dir: str = "") -> dict[str, ExportedModel]:
    """The models as the replay scores them: each read at ``cfg.horizon_s`` (unchanged when it is None).

    ``data_dir`` (the dataset of ``manifest``) only names it in the message.

    Raises:
        ConfigError: One line: a dataset not labelled at that horizon, or a model without a risk by it (a setting
            that cannot be scored: the commands stop on it rather than leave the alarm section out).
    """
    h = cfg.horizon_s
    if h is None:
        return models
    check_dataset_horizon(manifest, h, data_dir)
    return {name: m.at_horizon(h, f"--alarm-horizon {h}: {name}: ") for name, m in models.items()}


def check_dataset_horizon(manifest: Manifest, horizon_s: int, data_dir: str = "") -> None:
    """Refuse ``--alarm-horizon`` on a dataset not labelled at that horizon (its manifest's ``horizons_s``).

    Raises:
        ConfigError: One line naming the dataset (``data_dir``, when given) and its horizons.
    """
    if horizon_s not in manifest.horizons_s:
        named = f" {data_dir}" if data_dir else ""
        raise ConfigError(f"--alarm-horizon {horizon_s}: the dataset{named} is not labelled at {horizon_s} s (its "
                          f"horizons: {','.join(map(str, manifest.horizons_s))} s); build it with --horizons "
                          f"including {horizon_s}")


def frequent_cuff(line, cfg: AlarmConfig):
    """Simulated cuff readings of the arterial line every ``cuff_cycle_s`` over the line's span.

    The one cuff simulation (:func:`hypo.data.cuff.simulate_readings`), ideal (no error model): inflations of
    ``cuff_measure_s`` seconds requested every ``cuff_cycle_s`` from the line's first sample, each reporting at its
    end the median valid ART pressure over it, as the line was known then.

    Args:
        line: The arterial line as it becomes known (:class:`hypo.data.art.KnownLine`): a reading at ``T`` reads
            the samples before ``T`` less the spikes found by then.
        cfg: The simulated cuff's cycle and measurement.

    Returns:
        :class:`~hypo.data.windows.Readings`: report times (int64) and MAP / SBP / DBP (NaN where an inflation
        saw no valid sample).
    """
    from hypo.config import CuffModel
    from hypo.data.cuff import schedule_times, simulate_readings

    v = line.valid
    if len(v) == 0:
        requests = np.zeros(0, np.int64)
    else:
        last = int(math.floor(v.time[-1])) + 1  # reports at or before the line's last sample second
        requests = schedule_times(int(math.ceil(v.time[0])), last - cfg.cuff_measure_s, cfg.cuff_cycle_s)
    return simulate_readings(line, requests, CuffModel(inflation_s=cfg.cuff_measure_s, error="none"))


def comparator_tracks(readings, line, duration: int, max_carry_s: int, horizon_s: int,
                      cfg: AlarmConfig) -> dict[str, Track]:
    """The comparators as reading alarms (each value an alarm until the next).

    On the cuff's readings: the fixed MAP rules, the extrapolation, the DBP; with an arterial line, the same on its
    MAP and DBP read every ``cuff_cycle_s`` (``line``: a :class:`hypo.data.art.KnownLine`, as it was known).
    """
    t, u = slots_of_readings(readings.time, duration, max_carry_s)
    cuff_map = readings.map.astype(np.float64)
    out = {name: Track(t, u, cuff_map, READING) for name in CUFF_FIXED}
    out[EXTRAPOLATION] = Track(t, u, reading_extrapolation(readings.time, cuff_map, horizon_s), READING)
    dbp = readings.dbp if readings.dbp is not None else np.full(len(readings.time), np.nan)
    out[LAST_DBP] = Track(t, u, dbp.astype(np.float64), READING)
    if line is not None:
        cuff = frequent_cuff(line, cfg)
        values = cuff.map.astype(np.float64)
        t, u = slots_of_readings(cuff.time, duration, cfg.cuff_cycle_s)
        out.update({name: Track(t, u, values, READING) for name in ART_FIXED})
        out[ART_EXTRAPOLATION_ALARM] = Track(t, u, reading_extrapolation(cuff.time, values, horizon_s), READING)
        out[LAST_ART_DBP_ALARM] = Track(t, u, cuff.dbp.astype(np.float64), READING)
    return out


def _probability_track(ends, probs, duration_s: int, stride_s: int) -> Track:
    t, u = slots_on_grid(ends, duration_s, stride_s)
    return Track(t, u, np.asarray(probs, np.float64), PROBABILITY)


def recording_track(case, model: ExportedModel, stride_s: int, prepared=None):
    """One model along one recording as the replay scores it: its predictions and its alarm slots.

    The recording goes through the causal pipeline (:func:`hypo.infer.causal.prepare_case`, unless ``prepared``
    with the model's rules) and the model's :func:`~hypo.infer.predict.predict_case`; ``track.on(thresholds, cfg)``
    is the alarm the policy raises. This is what ``hypo serve`` must reproduce live (the equality gate).

    Returns:
        ``(prediction, track)``: the :class:`~hypo.infer.predict.Prediction` and the p(hypotension)
        :class:`~hypo.evaluate.alarms.metrics.Track`.
    """
    from hypo.infer.predict import predict_case

    pred = predict_case(case, model, stride_s, prepared=prepared)
    return pred, _probability_track(pred.t_end, pred.probs[:, 1], int(case.duration_s), stride_s)


def replay_case(case, info: dict[str, Any], models: dict[str, ExportedModel], manifest: Manifest,
                cfg: AlarmConfig, feature_model=None, timings: dict[str, float] | None = None
                ) -> tuple[CaseEvents, dict[str, Track]]:
    """Events and every row's track of one loaded recording.

    Args:
        case: The recording (:class:`~hypo.data.sources.base.Case`).
        info: Its ``{"caseid", "subjectid"}`` from the dataset.
        models: Row name -> model.
        manifest: The dataset's manifest (label rule, fill rule, training prevalence).
        cfg: Stride, merge gap, induction, simulated cuff.
        feature_model: The fitted feature model, or None to leave its row out.
        timings: Accumulates seconds per step.

    Raises:
        HypoError, CaseRejected: When the case cannot be prepared, predicted or (ART) has no usable line.
    """
    from hypo.data.art import KnownLine
    from hypo.data.cuff import with_simulated_cuff
    from hypo.data.pipeline import usable_arterial_line
    from hypo.data.windows import Readings
    from hypo.infer.predict import prepare_case, window_config
    from hypo.learn.baseline import label_config, last_reading_scores, train_prior

    timings = timings if timings is not None else {}

    def tick(key, t0):
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0

    label = label_config(manifest)
    base = dataset_rules(manifest)
    stride = cfg.stride_s
    t0 = time.perf_counter()
    schedule = replay_cuff(manifest, cfg)
    if schedule is not None:  # the cuff simulated as the dataset's was (or as asked), before anything reads it
        case = with_simulated_cuff(case, schedule)[0]
    prepared = {window_config(base, stride): prepare_case(case, base, stride)}
    line = usable_arterial_line(case)[0] if label.source == "art" else None
    tick("prepare_s", t0)
    prep = next(iter(prepared.values()))
    duration = int(case.duration_s)
    readings = Readings.from_signals(prep.cleaned)
    events = case_events(info["caseid"], info["subjectid"], duration, label, prep.cfg.window_s - 1,
                         readings={"time": readings.time, "map": readings.map}, line=line,
                         merge_gap_s=cfg.merge_gap_s, induction_s=cfg.induction_s, cuff_hold_s=cfg.cuff_hold_s)
    tracks: dict[str, Track] = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        key = window_config(model.sidecar, stride)
        if key not in prepared:
            prepared[key] = prepare_case(case, model.sidecar, stride)
        tick("prepare_s", t0)
        t0 = time.perf_counter()
        tracks[name] = recording_track(case, model, stride, prepared[key])[1]
        tick("predict_s", t0)

    t0 = time.perf_counter()
    t, u = slots_of_readings(readings.time, duration, prep.cfg.fill.nibp_max_carry_s)
    tracks[LAST_READING] = Track(t, u, readings.map.astype(np.float64), READING)
    if feature_model is not None:
        p_hypo = np.full(len(prep.ends), np.nan)
        if prep.complete.any():
            p_hypo[prep.complete] = feature_model.scores(prep.model_input())[:, 1]
        tracks[FEATURE_MODEL] = _probability_track(prep.ends, p_hypo, duration, stride)
    known = None
    if line is not None:  # the baselines read the line as it was known at each moment; the events, whole
        known = KnownLine.of(case.art.crop(duration))
        last = known.last_minute(prep.ends, label)
        p_art = last_reading_scores(last.map_median, last.sbp_median, label, train_prior(manifest))[:, 1]
        p_art[~np.isfinite(last.map_median)] = np.nan  # no invasive minute, no score (not the prior)
        tracks[LAST_ART] = _probability_track(prep.ends, p_art, duration, stride)
        cuff = frequent_cuff(known, cfg)
        t, u = slots_of_readings(cuff.time, duration, cfg.cuff_cycle_s)
        tracks[FREQUENT_CUFF] = Track(t, u, cuff.map.astype(np.float64), READING)
    tracks.update(comparator_tracks(readings, known, duration, prep.cfg.fill.nibp_max_carry_s, label.horizon_s, cfg))
    tick("baselines_s", t0)
    return events, tracks


def replay_split(recordings: Recordings, split: str, models: dict[str, ExportedModel], cfg: AlarmConfig,
                 feature_model=None, max_cases: int | None = None, log=print) -> ReplayedSplit:
    """Reload and score every recording of one split (see the module docstring).

    Args:
        recordings: The dataset's recordings (:meth:`Recordings.of`).
        split: ``val`` or ``test``.
        models: Row name -> model (one prediction pass each per recording).
        cfg: The alarm config (stride, ...).
        feature_model: The fitted feature model, or None.
        max_cases: Score at most this many cases of the split (a deterministic subsample).
        log: Where progress lines go.
    """
    replay_cuff(recordings.manifest, cfg)  # refused once, in one line, before any recording is loaded
    models = models_at_horizon(models, recordings.manifest, cfg, recordings.data_dir)
    listed = split_cases(recordings.data_dir, split)
    chosen = subsample(listed, max_cases)
    refs = {str(r["caseid"]): r for r in recordings.source.case_refs()}
    events: list[CaseEvents] = []
    tracks: dict[str, list[Track]] = {}
    kinds: dict[str, str] = {}
    failures: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    for info in chosen:
        t0 = time.perf_counter()
        try:
            case = recordings.source.load_case(refs.get(info["caseid"], {"caseid": info["caseid"]}))
            timings["load_s"] = timings.get("load_s", 0.0) + time.perf_counter() - t0
            ev, tr = replay_case(case, info, models, recordings.manifest, cfg, feature_model, timings)
        except Exception as exc:  # noqa: BLE001 - one bad recording must never end the evaluation
            failures.append(case_failure(info["caseid"], exc))
            continue
        events.append(ev)
        for name, track in tr.items():
            kinds[name] = track.kind
            tracks.setdefault(name, [Track.empty(track.kind)] * (len(events) - 1)).append(track)
        for name in tracks:
            if len(tracks[name]) < len(events):  # a row without a track on this case never alarms there
                tracks[name].append(Track.empty(kinds[name]))
    if failures:
        log(f"alarm replay, {split} split: {len(failures)} of {len(chosen)} cases could not be scored "
            f"({', '.join(sorted({f['reason'] for f in failures}))})")
    return ReplayedSplit(split, events, tracks, kinds, failures, len(listed), len(chosen), timings)


def case_failure(caseid: str, exc: Exception) -> dict[str, Any]:
    """``{"caseid", "reason", "detail"}`` of a case that could not be scored: rejected, unpredictable, or an error."""
    if isinstance(exc, CaseRejected):
        return {"caseid": caseid, "reason": exc.reason, "detail": exc.detail}
    if isinstance(exc, HypoError):
        return {"caseid": caseid, "reason": "could not predict", "detail": str(exc)}
    last = traceback.extract_tb(exc.__traceback__)[-1]
    return {"caseid": caseid, "reason": "error",
            "detail": f"{type(exc).__name__}: {exc} ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})".splitlines()[0]}
