"""External validation: a frozen model scored on a window dataset from another source, and recalibrated there.

    hypo evaluate model.pt --data data/site-b                              # every subject of site B
    hypo evaluate runs/NAME --data data/site-b --recalibrate temperature --write-export model-b.pt

No retraining: the model (an :class:`~hypo.infer.model.ExportedModel`, loaded from ``model.pt`` or traced from a
run by :func:`hypo.evaluate.export_trial.load_model_or_trial`) scores every window of OTHER, all its splits pooled (none
of them was used to train or select the model). Windows lacking a signal group (cases kept with ``--allow-missing``,
e.g. TIVA without MAC) are scored with the group absent when the model takes it as missing (its sidecar's
``tolerates_missing``: trained with channel dropout), and otherwise left out and counted, as ``hypo predict``
would refuse them (:func:`missing_groups`). What is reported, per evaluation set, comes from a list of
**sections**, each a function of an :class:`EvalSet` returning a JSON-ready dict:

- ``discrimination``: mean AUROC, summed AUPRC, per-class AUROC / AUPRC / sensitivity at 90% specificity with
  95% intervals from a bootstrap over subjects, beside the last-reading baseline on the same windows;
- ``calibration``: per class one-vs-rest (hypotension, hypertension) the reliability curve, ECE, Brier score,
  calibration slope and intercept (:mod:`hypo.evaluate.calibration`), and the multi-class Brier score;
- ``decision_curve``: net benefit of alarming on p(hypotension) across thresholds, against alarming always and
  never.

:func:`evaluate_external` takes the :class:`~hypo.evaluate.external.request.EvaluateRequest` of ``hypo evaluate`` and
the list (default :func:`default_sections`), writes ``evaluation.json`` (the typed record
:class:`~hypo.evaluate.external.result.ExternalResult`), ``evaluation.md`` and the figures, and returns an
:class:`~hypo.evaluate.external.result.ExternalRun`. It runs in three steps, so that a command doing more (``hypo
evaluate --alarms``) checks everything before any work and writes nothing unless all of it succeeded:
:func:`prepare_external` (every check that needs no scoring), :func:`external_evaluation` (the scoring and the
sections, nothing written) and :meth:`Evaluation.write` (the recalibrated export, then the results).

With ``recalibrate`` (temperature, vector, isotonic: :mod:`hypo.learn.recalibration`), OTHER's subjects are split
by a hash of (seed, subject) into a calibration share, on which the map is fitted, and the rest, on which every
section is computed before and after. The alarm thresholds of a recalibrated export are fixed again on the
calibration subjects at the model's specificity (the probabilities they apply to have changed); the export itself
is :mod:`hypo.evaluate.external.recalibrated`.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from hypo import __version__
from hypo.config import to_dict
from hypo.data.dataset import SPLITS, WindowArrays, describe_dataset, label_source_text, load_split, read_manifest
from hypo.data.manifest import Manifest
from hypo.data.signals import CLASSES, GROUP_TITLES, GROUPS, HYPERTENSION, HYPOTENSION
from hypo.errors import ConfigError, HypoError
from hypo.evaluate.external.request import CALIBRATION_SHARE, N_BOOT, EvaluateRequest
from hypo.evaluate.external.result import DataInfo, ExternalResult, ExternalRun, ModelInfo
from hypo.infer.model import ExportedModel
from hypo.infer.sidecar import Recalibration, Sidecar
from hypo.jsonio import jsonable
from hypo.learn.recalibration import METHODS

ABNORMAL = (HYPOTENSION, HYPERTENSION)
SCORED = "scored with the group absent"  # what is done with windows lacking a signal group (missing_groups)
LEFT_OUT = "left out"


@dataclasses.dataclass
class EvalSet:
    """Windows of OTHER with the model's probabilities: what every section is computed on.

    Attributes:
        name: ``"all subjects"``, or ``"held-out subjects"`` when a share was used for recalibration.
        stage: ``"model"`` (no recalibration), ``"before"`` or ``"after"`` recalibration.
        arrays: The windows (labels, subjects, cases, last readings, times).
        probs: float32 [n, 3] class probabilities.
        thresholds: Alarm thresholds ``{"hypotension": t1, "hypertension": t2}`` that apply to ``probs``.
        manifest: OTHER's manifest.
        sidecar: The model's sidecar.
        horizon_risk: float32 [n, H] the model's risk by each of OTHER's horizons, when the model has per-horizon
            risks at exactly those horizons (the horizon table reads its p(hypotension) otherwise).
    """

    name: str
    stage: str
    arrays: WindowArrays
    probs: np.ndarray
    thresholds: dict[str, float]
    manifest: Manifest
    sidecar: Sidecar
    horizon_risk: np.ndarray | None = None

    @property
    def y(self) -> np.ndarray:
        """int64 [n] labels."""
        return np.asarray(self.arrays.label, np.int64)


Section = Callable[[EvalSet], dict[str, Any]]


# ------------------------------------------------------------------------------------------------ data


def pooled_windows(data_dir: str, manifest: Manifest) -> WindowArrays:
    """Every window of a dataset, its splits concatenated (train, val, test)."""
    parts = [load_split(data_dir, sp, manifest) for sp in SPLITS]
    return take(parts, None)


def take(parts: list[WindowArrays], mask: np.ndarray | None) -> WindowArrays:
    """Concatenate ``parts`` (then keep the rows of ``mask``)."""
    fields = {}
    for f in dataclasses.fields(WindowArrays):
        values = [getattr(p, f.name) for p in parts]
        if any(v is None for v in values):  # a column the dataset lacks (built before it existed)
            continue
        arr = np.concatenate(values)
        fields[f.name] = arr if mask is None else arr[mask]
    return WindowArrays(**fields)


def calibration_subjects(subjectid, share: float, seed: int) -> np.ndarray:
    """Mask [n] of the windows whose subject falls in the calibration share (a hash of seed and subject)."""
    from hypo.data.splits import subject_uniform

    subjects = np.asarray(subjectid).astype(str)
    u = {s: subject_uniform(s, seed) for s in dict.fromkeys(subjects)}
    return np.fromiter((u[s] < share for s in subjects), bool, len(subjects))


def missing_groups(arrays: WindowArrays, sidecar: Sidecar) -> dict[str, dict[str, Any]]:
    """The signal groups some windows lack (NaN: cases kept with ``--allow-missing``) and what is done with them.

    A group the model takes as missing (its sidecar's ``tolerates_missing``: trained with channel dropout, or not
    reading it) is scored as it comes, NaN there, as ``hypo predict`` would feed it. Windows lacking any other
    group are **left out** and counted: the model cannot take them (NaN in, NaN out) and ``hypo predict`` refuses
    such recordings for it; holding the group at some value instead would score a model nobody deploys.

    Returns:
        Group -> ``{"mask": bool [n], "windows", "cases", "subjects", "treatment"}`` (``treatment``
        :data:`SCORED` or :data:`LEFT_OUT`), for groups that at least one window lacks, in group order.
    """
    tolerated = set(sidecar.tolerates_missing)
    x = np.asarray(arrays.x)
    out = {}
    for g, channels in GROUPS.items():
        mask = ~np.isfinite(x[:, :, list(channels)]).all(axis=(1, 2)) if len(x) else np.zeros(0, bool)
        if mask.any():
            out[g] = {"mask": mask, "windows": int(mask.sum()), "cases": int(len(np.unique(arrays.caseid[mask]))),
                      "subjects": int(len(np.unique(arrays.subjectid[mask]))),
                      "treatment": SCORED if g in tolerated else LEFT_OUT}
    return out


def missing_notes(missing: dict[str, dict[str, Any]]) -> list[str]:
    """One line per group some windows lack: how many, and whether they are scored or left out."""
    lines = []
    for g, m in missing.items():
        what = (f"note: {m['windows']:,} windows ({m['cases']} cases, {m['subjects']} subjects) lack "
                f"{GROUP_TITLES[g]}")
        if m["treatment"] == SCORED:
            lines.append(f"{what}; the model takes it as missing (its tolerates_missing): scored with it absent")
        else:
            lines.append(f"{what}, which the model cannot take (trained without channel dropout; hypo predict "
                         "refuses such recordings too): left out, every figure below is of the other windows "
                         "(a model trained with --channel-dropout scores them)")
    return lines


def check_compatible(sidecar: Sidecar, manifest: Manifest, data_dir: str) -> list[str]:
    """Refuse a dataset whose windows or labels are not what the model predicts; return warnings for the rest.

    Raises:
        HypoError: Another window length, horizon or threshold (:func:`check_labels`); the model's own training
            dataset; a dataset drawn from the same cohort of subjects (not external); or, for a recalibrated
            export, the data (or cohort) its map was fitted on.
    """
    notes = check_labels(sidecar, manifest, data_dir)
    _check_not_its_own(sidecar, manifest, data_dir)
    return notes


def check_labels(sidecar: Sidecar, manifest: Manifest, data_dir: str) -> list[str]:
    """Refuse a dataset whose windows or labels are not what the model predicts; notes for the lesser differences.

    The check of OTHER (:func:`check_compatible`) and of the dataset that fixes ``hypo evaluate --alarms``'s
    thresholds (``--alarm-thresholds-from``), alike.

    Returns:
        One note per difference that does not stop the evaluation: the label source or cuff mode, the cuff merge
        gap, the gap-filling rule.

    Raises:
        HypoError: Another window length, label horizon, hypotension or hypertension threshold.
    """
    want, got = sidecar.label, manifest.label
    if manifest.window_s != sidecar.window_s:
        raise HypoError(f"{data_dir} has {manifest.window_s}-s windows; the model takes {sidecar.window_s}-s "
                        "windows: rebuild it with --window " + str(sidecar.window_s))
    for key, flag in (("horizon_s", "--horizon"), ("hypo_map", "--hypo-map"), ("hyper_sbp", "--hyper-sbp")):
        if not math.isclose(float(getattr(want, key)), float(getattr(got, key))):
            raise HypoError(f"{data_dir} is labelled with {key} {getattr(got, key)}, the model predicts {key} "
                            f"{getattr(want, key)}: rebuild it with {flag} {getattr(want, key):g}")
    notes = []
    want_text, got_text = label_source_text(want), label_source_text(got)
    if want_text != got_text:
        notes.append(f"note: the model was trained on {want_text}, {data_dir} has {got_text}")
    merge = manifest.nibp_merge_s
    if merge is not None and int(merge) != sidecar.nibp_merge_s:
        notes.append(f"note: {data_dir} merged cuff values stamped up to {merge} s apart into readings, the model's "
                     f"training data up to {sidecar.nibp_merge_s} s (--nibp-merge-s)")
    fill, trained = to_dict(manifest.config.fill) if manifest.config is not None else None, to_dict(sidecar.fill)
    if fill is not None and fill != trained:
        notes.append(f"note: {data_dir} filled gaps with {fill}, the model's training data with {trained}")
    return notes


def _check_not_its_own(sidecar: Sidecar, manifest: Manifest, data_dir: str) -> None:
    """Refuse the model's training data, its cohort, or the data a recalibrated export's map was fitted on."""
    fps = sidecar.fingerprints
    if fps is not None and manifest.fingerprint in (fps.dataset, fps.checkpoint_dataset):
        raise HypoError(f"{data_dir} is the dataset the model was trained on; an external evaluation needs another "
                        "source (its test split is hypo report's)")
    fitted = sidecar.recalibration.fitted_on if sidecar.recalibration is not None else None
    if fitted is not None and (fitted.dataset_fingerprint == manifest.fingerprint
                               or (fitted.cohort is not None and fitted.cohort == manifest.cohort)):
        raise HypoError(f"the model was recalibrated on {fitted.n_subjects} subjects of {data_dir} (or of its "
                        "cohort); scored there it would be judged on its own calibration data: evaluate the model it "
                        "came from with --recalibrate, which reports before and after on subjects the map never saw")
    trained_on = sidecar.source.cohort if sidecar.source is not None else None
    if trained_on is not None and trained_on == manifest.cohort:
        raise HypoError(f"{data_dir} draws its subjects from the cohort the model was trained on ({trained_on}), "
                        "so they can overlap; an external evaluation needs another source (e.g. --site b, "
                        "another seed, another hospital)")


# -------------------------------------------------------------------------------------------- sections


def discrimination(es: EvalSet, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """Discrimination with subject-bootstrap intervals, beside the last-reading baseline on the same windows."""
    from hypo.evaluate.bootstrap import bootstrap_scores
    from hypo.learn.baseline import label_config, last_reading_class, last_reading_scores, train_prior
    from hypo.learn.metrics import evaluate_scores

    a, y = es.arrays, es.y
    label = label_config(es.manifest)
    base = last_reading_scores(a.last_map, a.last_sbp, label, train_prior(es.manifest))
    boot = bootstrap_scores(y, es.probs, a.subjectid, n_boot, seed, reference=base)
    keep = ("mean_auroc", "sum_auprc", "reference", "mean_auroc_diff", "n_boot", "level", "specificity", "seed",
            "n_subjects", *CLASSES[1:])
    out = {k: _strip_curves(boot[k]) for k in keep if k in boot}
    out["metrics"] = evaluate_scores(y, es.probs, last_reading_class(a.last_map, a.last_sbp, label), warn=False)
    return out


def _strip_curves(v):
    if isinstance(v, dict):
        return {k: _strip_curves(x) for k, x in v.items() if k not in ("roc", "pr")}
    return v


def calibration(es: EvalSet) -> dict[str, Any]:
    """Reliability, ECE, Brier, slope and intercept per abnormal class (one-vs-rest), and the multi-class Brier."""
    from hypo.evaluate.calibration import class_calibration

    return class_calibration(es.y, es.probs)


def decision_curve(es: EvalSet) -> dict[str, Any]:
    """Net benefit of alarming on p(hypotension) >= t, against alarming always and never."""
    from hypo.evaluate.calibration import decision_curve as curve

    return curve(es.y == HYPOTENSION, es.probs[:, HYPOTENSION])


def comparison(es: EvalSet, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """The model beside the comparators on hypotension, and by the last cuff MAP (:mod:`hypo.evaluate.comparison`).

    The extrapolation and DBP rows are not fitted here (the development train split is not OTHER's): they are
    ranked through a fixed ramp, and only ranking figures are reported.
    """
    from hypo.evaluate.comparison import add_intervals, split_rows
    from hypo.learn.baselines import split_baselines

    a = es.arrays
    scores: dict[str, np.ndarray] = {}
    rows, notes = split_rows(a, es.manifest, {"model": es.probs}, split_baselines(a, es.manifest), {},
                             where="this dataset", scores=scores)
    add_intervals(rows, scores, es.y, a.subjectid, a.last_map, n_boot, seed)
    return {"rows": rows, "notes": notes, "hypo_map": float(es.manifest.label.hypo_map)}


def horizons(es: EvalSet, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """OTHER built with ``--horizons``: the model and the baselines by each horizon (:mod:`hypo.evaluate.horizons`).

    ``{"rows": []}`` for a single-horizon dataset. The model's row is its risk by each horizon when it has one for
    exactly OTHER's horizons, else its p(hypotension) at every horizon (after a recalibration: the recalibrated one).
    """
    from hypo.evaluate.horizons import N_BOOT as HORIZON_BOOT
    from hypo.evaluate.horizons import HorizonRow, baseline_rows, horizon_records
    from hypo.learn.comparators import MODEL_INPUTS

    if es.manifest.horizons is None or es.arrays.horizon_labels is None:
        return {"rows": []}
    score = es.horizon_risk if es.horizon_risk is not None else es.probs[:, HYPOTENSION]
    what = "risk by each horizon" if es.horizon_risk is not None else "p(hypotension) at every horizon"
    rows = [HorizonRow(f"model ({what})", MODEL_INPUTS, score)] + baseline_rows(es.arrays, es.manifest)
    df = horizon_records(es.arrays, es.manifest, rows, min(n_boot, HORIZON_BOOT), seed)
    return {"rows": df.to_dict("records")}


def default_sections(n_boot: int = N_BOOT, seed: int = 0) -> list[tuple[str, Section]]:
    """The sections every external evaluation reports.

    Discrimination, calibration, decision curve, comparison, and (a dataset built with ``--horizons`` only) the
    horizon table.
    """
    return [("discrimination", functools.partial(discrimination, n_boot=n_boot, seed=seed)),
            ("calibration", calibration), ("decision_curve", decision_curve),
            ("comparison", functools.partial(comparison, n_boot=n_boot, seed=seed)),
            ("horizons", functools.partial(horizons, n_boot=n_boot, seed=seed))]


# ---------------------------------------------------------------------------------------------- the run


@dataclasses.dataclass
class ScoredWindows:
    """OTHER's windows the model can take, its probabilities on them, and what was left out.

    Attributes:
        arrays: The windows scored.
        probs: float32 [n, 3] the model's probabilities.
        thresholds: The model's alarm thresholds ``{"hypotension": t1, "hypertension": t2}`` (NaN: none).
        missing: :func:`missing_groups` of all of OTHER's windows.
        n_left_out: Windows left out (lacking a group the model cannot take).
    """

    arrays: WindowArrays
    probs: np.ndarray
    thresholds: dict[str, float]
    missing: dict[str, dict[str, Any]]
    n_left_out: int


def check_request(req: EvaluateRequest) -> float:
    """Refuse inconsistent options before any work; returns the calibration share.

    Raises:
        ConfigError: Naming the flag.
    """
    if req.recalibrate not in METHODS:
        raise ConfigError(f"--recalibrate must be one of {', '.join(METHODS)}, got {req.recalibrate!r}")
    if req.recalibrate == "none":
        if req.calibration_share is not None:
            raise ConfigError("--calibration-share sets the subjects a recalibration is fitted on; it needs "
                              "--recalibrate temperature|vector|isotonic")
        if req.write_export:
            raise ConfigError("--write-export writes a recalibrated model; it needs --recalibrate "
                              "temperature|vector|isotonic (the model itself is already an export)")
    share = CALIBRATION_SHARE if req.calibration_share is None else float(req.calibration_share)
    if not 0 < share < 1:
        raise ConfigError(f"--calibration-share must be in (0, 1), got {share:g}")
    if req.n_boot < 1:
        raise ConfigError(f"--bootstrap must be >= 1, got {req.n_boot}")
    return share


def score_windows(model: ExportedModel, data: str, manifest: Manifest) -> ScoredWindows:
    """Every window of OTHER the model can take (see :func:`missing_groups`), scored.

    Raises:
        HypoError: No window at all, none the model can take, or NaN probabilities where none should be.
    """
    arrays = pooled_windows(data, manifest)
    if len(arrays) == 0:
        raise HypoError(f"{data} holds no window")
    missing = missing_groups(arrays, model.sidecar)
    left_out = np.zeros(len(arrays), bool)
    for m in missing.values():
        if m["treatment"] == LEFT_OUT:
            left_out |= m["mask"]
    if left_out.any():
        arrays = take([arrays], ~left_out)
        if len(arrays) == 0:
            raise HypoError(f"every window of {data} lacks a signal group the model cannot take "
                            f"({', '.join(g for g, m in missing.items() if m['treatment'] == LEFT_OUT)}); "
                            "evaluate a model trained with --channel-dropout")
    probs = model.predict_proba(arrays.x)
    bad = ~np.isfinite(probs).all(axis=1)
    if bad.any():
        raise HypoError(f"the model gave no probability for {int(bad.sum())} windows of {data} holding NaN only "
                        "where its sidecar's tolerates_missing allows; its export is broken: re-export it")
    th = model.sidecar.thresholds
    thresholds = {c: _nan(getattr(th, f"p_{c}")) for c in CLASSES[1:]}
    return ScoredWindows(arrays, probs, thresholds, missing, int(left_out.sum()))


def data_section(data: str, manifest: Manifest, scored: ScoredWindows) -> DataInfo:
    """What OTHER is and how many of its windows were scored."""
    a = scored.arrays
    return DataInfo(path=data, fingerprint=manifest.fingerprint, provenance=describe_dataset(manifest),
                    simulated=manifest.simulated, n_windows=int(len(a)),
                    n_subjects=int(len(np.unique(a.subjectid))), n_cases=int(len(np.unique(a.caseid))),
                    n_windows_left_out=scored.n_left_out,
                    splits_pooled=list(SPLITS),
                    missing_groups={g: {k: v for k, v in m.items() if k != "mask"} for g, m in scored.missing.items()})


def model_section(model: ExportedModel) -> ModelInfo:
    """What the model evaluated is, for ``evaluation.json``."""
    s = model.sidecar
    return ModelInfo(path=model.path, origin=model.origin, describe=model.describe(), fingerprints=s.fingerprints,
                     source=s.source, label=s.label)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What an external evaluation checked before any work (:func:`prepare_external`).

    Attributes:
        share: The calibration share.
        manifest: OTHER's manifest.
        model: The model.
        notes: Differences between OTHER and the model's data that do not stop the evaluation.
    """

    share: float
    manifest: Manifest
    model: ExportedModel
    notes: list[str]


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """An external evaluation computed, nothing written yet: :meth:`write` writes it.

    Attributes:
        results: The record (its recalibration's ``export`` is filled in when the export is written).
        model: The model evaluated.
        export: Writes the recalibrated export and returns ``{"path", "model_sha256"}`` (None: no export asked).
    """

    results: ExternalResult
    model: ExportedModel
    export: Callable[[], dict[str, Any]] | None = None

    def write(self, out: str, log=print) -> ExternalRun:
        """Write the recalibrated export (if asked), then ``evaluation.json``, ``evaluation.md`` and the figures."""
        results, written = self.results, None
        if self.export is not None:
            written = self.export()
            results = results.model_copy(update={"recalibration": results.recalibration.model_copy(
                update={"export": written})})
        paths = write_results(results, out)
        log(f"wrote {paths['json']}, {paths['md']}" + "".join(f", {os.path.basename(p)}" for k, p in paths.items()
                                                              if k.endswith("_png")))
        return ExternalRun(results, paths, written, self.model)


def prepare_external(req: EvaluateRequest) -> Prepared:
    """Everything checked before scoring: the options, the export's path, OTHER, the model, and that they fit.

    OTHER and the model must go together (:func:`check_compatible`), and the export must not overwrite the model.

    Raises:
        ConfigError: Inconsistent options, or an export that would overwrite the model evaluated.
        HypoError: Unusable model or dataset, an unwritable export path (one line each).
    """
    from hypo.evaluate.export_trial import load_model_or_trial
    from hypo.infer.export import check_out_file

    share = check_request(req)
    if req.write_export:
        check_out_file(req.write_export, "--write-export")
        refuse_overwriting_the_model(req.model_or_run, req.write_export)
    manifest = read_manifest(req.data)
    model = load_model_or_trial(req.model_or_run, req.trial)
    return Prepared(share, manifest, model, check_compatible(model.sidecar, manifest, req.data))


def refuse_overwriting_the_model(model_or_run: str, export: str) -> None:
    """Refuse a ``--write-export`` that is the model evaluated, or its sidecar (the same file, links resolved).

    Raises:
        ConfigError: Naming both.
    """
    from hypo.infer.export import sidecar_path

    if not os.path.isfile(model_or_run):
        return
    sources = {os.path.abspath(model_or_run), os.path.realpath(model_or_run)}
    targets = {os.path.abspath(os.path.expanduser(export)), os.path.realpath(os.path.expanduser(export))}
    same = bool(sources & targets) or any(os.path.exists(t) and os.path.samefile(t, model_or_run) for t in targets)
    if same:
        raise ConfigError(f"--write-export {export} is the model being evaluated ({model_or_run}); write the "
                          "recalibrated model to another file")
    side = {sidecar_path(p) for p in sources}
    if side & (targets | {sidecar_path(t) for t in targets}):
        raise ConfigError(f"--write-export {export} would overwrite {sidecar_path(os.path.abspath(model_or_run))}, "
                          "the sidecar of the model being evaluated; give the recalibrated model another name")


def external_evaluation(req: EvaluateRequest, prepared: Prepared, sections: list[tuple[str, Section]] | None = None,
                        log=print) -> Evaluation:
    """Score the model on OTHER, recalibrate (if asked) and compute every section; nothing is written yet.

    Args:
        req: The request.
        prepared: Its checks (:func:`prepare_external`).
        sections: ``(name, function)`` pairs computed on each evaluation set (default :func:`default_sections`).
        log: Where summary lines go.
    """
    manifest, model = prepared.manifest, prepared.model
    sections = default_sections(req.n_boot, req.seed) if sections is None else sections
    if manifest.horizons is None:  # one horizon: no horizon table, and evaluation.json as before
        sections = [(name, fn) for name, fn in sections if name != "horizons"]
    scored = score_windows(model, req.data, manifest)
    notes = prepared.notes + missing_notes(scored.missing)
    data_info = data_section(req.data, manifest, scored)
    for line in [f"model {model.describe()}", f"data  {req.data}: {describe_dataset(manifest)}",
                 f"      {data_info.n_windows:,} windows from {data_info.n_subjects} subjects "
                 f"({data_info.n_cases} cases), all splits pooled; no retraining"
                 + (f"; {scored.n_left_out:,} windows left out (below)" if scored.n_left_out else ""), *notes]:
        log(line)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    sets, recal, export = evaluation_sets(req, prepared.share, scored, manifest, model, log)
    results = ExternalResult(
        created=created, model=model_section(model), data=data_info, notes=notes, recalibrate=req.recalibrate,
        seed=req.seed, hypo_version=__version__, recalibration=recal,
        exclude_in_hypotension=req.exclude_in_hypotension,
        evaluation_sets={es.stage: {"name": es.name, "n_windows": int(len(es.arrays)),
                                    "n_subjects": int(len(np.unique(es.arrays.subjectid))),
                                    "thresholds": es.thresholds} for es in sets},
        sections={name: {es.stage: fn(es) for es in sets} for name, fn in sections})
    for line in summary_lines(results):
        log(line)
    return Evaluation(results, model, export)


def evaluate_external(req: EvaluateRequest, sections: list[tuple[str, Section]] | None = None,
                      log=print) -> ExternalRun:
    """Score a frozen model on another source's windows, optionally recalibrated there; write the results.

    Args:
        req: What to evaluate, where, and how (the :class:`~hypo.evaluate.external.request.EvaluateRequest` of
            ``hypo evaluate``; its alarm settings are :mod:`hypo.evaluate.external.job`'s).
        sections: ``(name, function)`` pairs computed on each evaluation set (default :func:`default_sections`).
        log: Where summary lines go.

    Returns:
        The :class:`~hypo.evaluate.external.result.ExternalRun`: the record written, the paths, the recalibrated
        export written (if any) and the model evaluated.

    Raises:
        ConfigError: Inconsistent options.
        HypoError: Unusable model or dataset (one line each).
    """
    from hypo.storage import writable_folder

    prepared = prepare_external(req)
    out = writable_folder(req.out)
    return external_evaluation(req, prepared, sections, log).write(out, log)


def _nan(v) -> float:
    return float(v) if v is not None else math.nan


def evaluation_sets(req: EvaluateRequest, share: float, scored: ScoredWindows, manifest: Manifest,
                    model: ExportedModel, log) -> tuple[list[EvalSet], Recalibration | None, Callable | None]:
    """The sets every section is computed on: all subjects, or before and after the map on the held-out ones.

    Returns:
        ``(sets, recalibration, export)``: the record of the map (None without one) and, when
        ``req.write_export`` asks for one, the function that writes the recalibrated export (returning ``{"path",
        "model_sha256"}``), called once the whole command has succeeded.
    """
    if req.recalibrate == "none":
        risk = (model.predict_horizon_risk(scored.arrays.x)
                if model.horizons_s and model.horizons_s == manifest.horizons_s else None)
        return [EvalSet("all subjects", "model", scored.arrays, scored.probs, scored.thresholds, manifest,
                        model.sidecar, risk)], None, None
    cal, sets, recal, calib = _recalibrate(req, share, scored, manifest, model, log)
    export = None
    if req.write_export:
        export = functools.partial(_write, model, calib, recal, scored.arrays.x[cal], sets[1].thresholds,
                                   req.write_export, log)
    return sets, recal, export


def _recalibrate(req: EvaluateRequest, share: float, scored: ScoredWindows, manifest: Manifest,
                 model: ExportedModel, log):
    """Split OTHER's subjects, fit the map on the calibration share; the before and after sets of the rest."""
    from hypo.learn.operating_point import alarm_thresholds
    from hypo.learn.recalibration import apply_recalibration, fit_recalibration

    arrays, probs, thresholds, data = scored.arrays, scored.probs, scored.thresholds, req.data
    cal = calibration_subjects(arrays.subjectid, share, req.seed)
    n_cal = len(np.unique(arrays.subjectid[cal]))
    n_rest = len(np.unique(arrays.subjectid[~cal]))
    if n_cal < 2 or n_rest < 2:
        raise HypoError(f"--calibration-share {share:g} puts {n_cal} of {n_cal + n_rest} subjects in the calibration"
                        f" share and {n_rest} in the rest; both need at least 2 (more cases, or another share)")
    calib = fit_recalibration(req.recalibrate, probs[cal], arrays.label[cal])
    rest = take([arrays], ~cal)
    after = apply_recalibration(calib, probs[~cal])
    spec = float(model.sidecar.thresholds.specificity or 0.9)
    new_th = alarm_thresholds(arrays.label[cal], apply_recalibration(calib, probs[cal]), spec)
    sets = [EvalSet("held-out subjects", "before", rest, probs[~cal], thresholds, manifest, model.sidecar),
            EvalSet("held-out subjects", "after", rest, after, new_th, manifest, model.sidecar)]
    recal = Recalibration(
        method=req.recalibrate, parameters=calib.describe(), share=share, seed=req.seed,
        fitted_on={"data": data if "://" in data else os.path.abspath(data),
                   "dataset_fingerprint": manifest.fingerprint, "cohort": manifest.cohort,
                   "n_subjects": int(n_cal), "n_windows": int(cal.sum()),
                   "split": "a hash of (seed, subject) below the share; all of the dataset's splits pooled"},
        reported_on={"n_subjects": int(n_rest), "n_windows": int((~cal).sum())},
        thresholds={"specificity": spec, "before": thresholds, "after": new_th,
                    "after_chosen_on": "the calibration subjects"})
    log(f"recalibration {req.recalibrate}: fitted on {n_cal} subjects ({int(cal.sum()):,} windows, share {share:g}, "
        f"seed {req.seed}); before and after on the other {n_rest} subjects ({int((~cal).sum()):,} windows)")
    log(f"  {_describe_map(calib.describe())}")
    return cal, sets, recal, calib


def _describe_map(params: dict[str, Any]) -> str:
    if params["method"] == "temperature":
        return f"temperature T = {params['temperature']:.3f} (probabilities = softmax(log p / T))"
    if params["method"] == "vector":
        w = ", ".join(f"{v:.3f}" for v in params["weight"])
        b = ", ".join(f"{v:+.3f}" for v in params["bias"])
        return f"vector scaling: weights [{w}], biases [{b}] (normal, hypotension, hypertension)"
    return f"isotonic per class, {params['points_per_class']} points, renormalised (steps make ties)"


def _write(model: ExportedModel, calib, recal: Recalibration, windows: np.ndarray, new_th: dict[str, float],
           path: str, log) -> dict[str, Any]:
    """Write the recalibrated export; its sidecar records the map, its data and the new alarm thresholds."""
    from hypo.evaluate.external.recalibrated import recalibrated_thresholds, write_recalibrated

    thresholds = recalibrated_thresholds(model.sidecar.thresholds, new_th, recal)
    written, sidecar = write_recalibrated(model, calib, Recalibration.model_validate(jsonable(recal.to_dict())),
                                          thresholds, windows, path)
    log(f"wrote {written}: the model with its {recal.method} map inside (hypo predict applies it); alarm "
        f"thresholds fixed again on the calibration subjects: p(hypotension) >= {new_th['hypotension']:.4f}, "
        f"p(hypertension) >= {new_th['hypertension']:.4f}")
    return {"path": written, "model_sha256": sidecar.model_sha256}


# ---------------------------------------------------------------------------------------------- output


def summary_lines(results: ExternalResult) -> list[str]:
    """The console / Markdown table: each headline figure per evaluation set (before and after, or the model)."""
    secs = results.sections
    stages = list(results.evaluation_sets)
    sim = "  [simulated data]" if results.data.simulated else ""
    head = results.evaluation_sets[stages[0]]
    lines = [f"{head.name}: {head.n_windows:,} windows, {head.n_subjects} subjects{sim}",
             f"  {'':<44}" + "".join(f"{s:>30}" for s in stages)]

    def row(label: str, get) -> None:
        cells = []
        for s in stages:
            try:
                cells.append(get(s))
            except (KeyError, TypeError):
                cells.append("n/a")
        lines.append(f"  {label:<44}" + "".join(f"{c:>30}" for c in cells))

    if "discrimination" in secs:
        _discrimination_rows(secs["discrimination"], row)
    if "calibration" in secs:
        k = secs["calibration"]
        for c in ("hypotension", "hypertension"):
            row(f"{c}: ECE / Brier", lambda s, c=c: f"{k[s][c]['ece']:.3f} / {k[s][c]['brier']:.3f}")
            row(f"{c}: calibration slope / intercept",
                lambda s, c=c: f"{k[s][c]['slope']:.2f} / {k[s][c]['intercept']:+.2f}")
            row(f"{c}: mean predicted vs observed",
                lambda s, c=c: f"{k[s][c]['mean_predicted']:.3f} vs {k[s][c]['prevalence']:.3f}")
        row("multi-class Brier", lambda s: f"{k[s]['multiclass_brier']:.3f}")
    if "decision_curve" in secs:
        dc = secs["decision_curve"]
        for t in (0.1, 0.2, 0.3):
            def nb(s, t=t):
                i = int(np.argmin(np.abs(np.asarray(dc[s]["threshold"]) - t)))
                return f"{dc[s]['model'][i]:+.4f} (all {dc[s]['all'][i]:+.4f})"
            row(f"net benefit, alarm at p(hypotension) >= {t:g}", nb)
    for name in secs:
        if name not in ("discrimination", "calibration", "decision_curve", "comparison", "horizons"):
            lines.append(f"  {name}: see evaluation.json")
    lines += horizon_summary(secs.get("horizons") or {})
    if "comparison" in secs:
        lines += comparison_summary(secs["comparison"], results.exclude_in_hypotension)
    return lines


def horizon_summary(section: dict[str, Any]) -> list[str]:
    """The horizon table of each evaluation set, as text (none for a single-horizon dataset)."""
    import pandas as pd

    from hypo.evaluate.horizons import horizon_markdown

    lines = []
    for stage, sec in section.items():
        if sec.get("rows"):
            lines += [f"  {x}" for x in horizon_markdown(pd.DataFrame(sec["rows"]), stage).splitlines()]
    return lines


def comparison_summary(section: dict[str, Any], exclude: bool = False) -> list[str]:
    """The comparison section of each evaluation set as text tables (:mod:`hypo.evaluate.comparison`)."""
    from hypo.evaluate.comparison import gray_zone_cells, hypotension_cells, notes, text_table

    lines = []
    for stage, sec in section.items():
        lines += [f"  hypotension, the comparators beside ({stage}; 95% CI over subjects):",
                  *(f"    {x}" for x in text_table(*hypotension_cells(sec["rows"], exclude))),
                  f"  by the last cuff MAP ({stage}; hypotension AUROC; fixed rules: sensitivity / specificity):",
                  *(f"    {x}" for x in text_table(*gray_zone_cells(sec["rows"], sec["hypo_map"])))]
    first = next(iter(section.values()), None)
    if first is not None:
        lines += [f"  {x}" for x in (*notes(first["rows"], first["hypo_map"]), *first["notes"])]
    return lines


def _discrimination_rows(d: dict[str, Any], row) -> None:
    row("mean AUROC [95% CI, subjects]", lambda s: _ci(d[s]["mean_auroc"]))
    row("summed AUPRC (hypo + hyper)", lambda s: _ci(d[s]["sum_auprc"]))
    for c in ("hypotension", "hypertension"):
        row(f"{c}: AUROC", lambda s, c=c: _ci(d[s][c]["auroc"]))
        row(f"{c}: AUPRC (prevalence)", lambda s, c=c: f"{_ci(d[s][c]['auprc'])} ({d[s][c]['prevalence']:.3f})")
    row("last-reading baseline: mean AUROC", lambda s: _ci(d[s]["reference"]["mean_auroc"]))


def _ci(m: dict[str, Any]) -> str:
    v, lo, hi = m.get("value"), m.get("lo"), m.get("hi")
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and math.isfinite(lo) else f"{v:.3f}"


def write_results(results: ExternalResult, out: str) -> dict[str, str]:
    """Write ``evaluation.json``, ``evaluation.md`` and the figures into ``out``; returns name -> path."""
    from hypo.evaluate.external.figures import decision_curve_figure, reliability_figure

    sim = " (simulated data)" if results.data.simulated else ""
    name = os.path.basename(os.path.normpath(results.data.path))
    paths = {}
    secs = results.sections
    if "calibration" in secs:
        paths["calibration_png"] = reliability_figure(
            secs["calibration"], os.path.join(out, "calibration.png"),
            f"{name}{sim}: calibration of the frozen model" + _recal_title(results))
    if "decision_curve" in secs:
        paths["decision_curve_png"] = decision_curve_figure(
            secs["decision_curve"], os.path.join(out, "decision_curve.png"),
            f"{name}{sim}: decision curve, alarm on p(hypotension)" + _recal_title(results))
    first = next(iter((secs.get("horizons") or {}).values()), {})
    if first.get("rows"):
        import pandas as pd

        from hypo.evaluate.horizons import horizon_figure

        paths["horizons_png"] = horizon_figure(pd.DataFrame(first["rows"]), os.path.join(out, "horizons.png"),
                                               f"{name}{sim.upper()}: hypotension by each horizon")
    paths["json"] = os.path.join(out, "evaluation.json")
    with open(paths["json"], "w") as f:
        json.dump(jsonable(results.to_dict()), f, indent=2)
    paths["md"] = os.path.join(out, "evaluation.md")
    with open(paths["md"], "w") as f:
        f.write(f"# External evaluation{sim}\n\nmodel: {results.model.describe}\n\n"
                f"data: {results.data.path}: {results.data.provenance}\n\n"
                + "".join(f"{n}\n\n" for n in results.notes) + "```\n"
                + "\n".join(summary_lines(results)) + "\n```\n")
    return paths


def _recal_title(results: ExternalResult) -> str:
    r = results.recalibration
    return f"\nbefore and after {r.method} recalibration (held-out subjects)" if r else ""
