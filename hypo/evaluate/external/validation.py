"""External validation: a frozen model scored on a window dataset from another source, and recalibrated there.

    hypo evaluate model.pt --data data/site-b                              # every subject of site B
    hypo evaluate runs/NAME --data data/site-b --recalibrate temperature --write-export model-b.pt

No retraining: the model (:mod:`hypo.evaluate.frozen`) scores every window of OTHER, all its splits pooled (none
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

``hypo.cli.evaluate`` builds the list; further sections (alarm scoring) are appended there.

With ``recalibrate`` (temperature, vector, isotonic: :mod:`hypo.learn.recalibration`), OTHER's subjects are split
by a hash of (seed, subject) into a calibration share, on which the map is fitted, and the rest, on which every
section is computed before and after. The alarm thresholds of a recalibrated export are fixed again on the
calibration subjects at the model's specificity (the probabilities they apply to have changed).
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
from hypo.jsonio import finite, jsonable
from hypo.learn.recalibration import METHODS

N_BOOT = 1000
CALIBRATION_SHARE = 0.3
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
    """

    name: str
    stage: str
    arrays: WindowArrays
    probs: np.ndarray
    thresholds: dict[str, float]
    manifest: Manifest
    sidecar: dict[str, Any]

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
        arr = np.concatenate([getattr(p, f.name) for p in parts])
        fields[f.name] = arr if mask is None else arr[mask]
    return WindowArrays(**fields)


def calibration_subjects(subjectid, share: float, seed: int) -> np.ndarray:
    """Mask [n] of the windows whose subject falls in the calibration share (a hash of seed and subject)."""
    from hypo.data.splits import subject_uniform

    subjects = np.asarray(subjectid).astype(str)
    u = {s: subject_uniform(s, seed) for s in dict.fromkeys(subjects)}
    return np.fromiter((u[s] < share for s in subjects), bool, len(subjects))


def missing_groups(arrays: WindowArrays, sidecar: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The signal groups some windows lack (NaN: cases kept with ``--allow-missing``) and what is done with them.

    A group the model takes as missing (its sidecar's ``tolerates_missing``: trained with channel dropout, or not
    reading it) is scored as it comes, NaN there, as ``hypo predict`` would feed it. Windows lacking any other
    group are **left out** and counted: the model cannot take them (NaN in, NaN out) and ``hypo predict`` refuses
    such recordings for it; holding the group at some value instead would score a model nobody deploys.

    Returns:
        Group -> ``{"mask": bool [n], "windows", "cases", "subjects", "treatment"}`` (``treatment``
        :data:`SCORED` or :data:`LEFT_OUT`), for groups that at least one window lacks, in group order.
    """
    tolerated = set(sidecar.get("tolerates_missing") or ())
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


def check_compatible(sidecar: dict[str, Any], manifest: Manifest, data_dir: str) -> list[str]:
    """Refuse a dataset whose windows or labels are not what the model predicts; return warnings for the rest.

    Raises:
        HypoError: Another window length, horizon or threshold; the model's own training dataset; a dataset
            drawn from the same cohort of subjects (not external); or, for a recalibrated export, the data (or
            cohort) its map was fitted on.
    """
    want, got = sidecar.get("label") or {}, manifest.label
    if manifest.window_s != int(sidecar["window_s"]):
        raise HypoError(f"{data_dir} has {manifest.window_s}-s windows; the model takes {sidecar['window_s']}-s "
                        "windows: rebuild it with --window " + str(sidecar["window_s"]))
    for key, flag in (("horizon_s", "--horizon"), ("hypo_map", "--hypo-map"), ("hyper_sbp", "--hyper-sbp")):
        if key in want and not math.isclose(float(want[key]), float(getattr(got, key))):
            raise HypoError(f"{data_dir} is labelled with {key} {getattr(got, key)}, the model predicts {key} "
                            f"{want[key]}: rebuild it with {flag} {want[key]:g}")
    fps = sidecar.get("fingerprints") or {}
    if manifest.fingerprint in (fps.get("dataset"), fps.get("checkpoint_dataset")):
        raise HypoError(f"{data_dir} is the dataset the model was trained on; an external evaluation needs another "
                        "source (its test split is hypo report's)")
    fitted = (sidecar.get("recalibration") or {}).get("fitted_on") or {}
    if fitted and (fitted.get("dataset_fingerprint") == manifest.fingerprint
                   or (fitted.get("cohort") is not None and fitted.get("cohort") == manifest.cohort)):
        raise HypoError(f"the model was recalibrated on {fitted.get('n_subjects')} subjects of {data_dir} (or of its "
                        "cohort); scored there it would be judged on its own calibration data: evaluate the model it "
                        "came from with --recalibrate, which reports before and after on subjects the map never saw")
    trained_on = (sidecar.get("source") or {}).get("cohort")
    if trained_on is not None and trained_on == manifest.cohort:
        raise HypoError(f"{data_dir} draws its subjects from the cohort the model was trained on ({trained_on}), "
                        "so they can overlap; an external evaluation needs another source (e.g. --site b, "
                        "another seed, another hospital)")
    notes = []
    if label_source_text(want) != label_source_text(got):
        notes.append(f"note: the model was trained on {label_source_text(want)}, {data_dir} has "
                     f"{label_source_text(got)}")
    merge, merged_for = manifest.nibp_merge_s, sidecar.get("nibp_merge_s")
    if merge is not None and merged_for is not None and int(merge) != int(merged_for):
        notes.append(f"note: {data_dir} merged cuff values stamped up to {merge} s apart into readings, the model's "
                     f"training data up to {merged_for} s (--nibp-merge-s)")
    fill = to_dict(manifest.config.fill) if manifest.config is not None else None
    if fill is not None and sidecar.get("fill") is not None and fill != sidecar["fill"]:
        notes.append(f"note: {data_dir} filled gaps with {fill}, the model's training data with {sidecar['fill']}")
    return notes


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


def default_sections(n_boot: int = N_BOOT, seed: int = 0) -> list[tuple[str, Section]]:
    """The sections every external evaluation reports: discrimination, calibration, decision curve."""
    return [("discrimination", functools.partial(discrimination, n_boot=n_boot, seed=seed)),
            ("calibration", calibration), ("decision_curve", decision_curve)]


# ---------------------------------------------------------------------------------------------- the run


def _finite_rows(probs: np.ndarray) -> np.ndarray:
    return np.isfinite(probs).all(axis=1)


def evaluate_external(model_or_run: str, data: str, *, trial: str | None = None, recalibrate: str = "none",
                      calibration_share: float | None = None, seed: int = 0, n_boot: int = N_BOOT,
                      write_export: str | None = None, out: str = "evaluation",
                      sections: list[tuple[str, Section]] | None = None, log=print) -> dict[str, Any]:
    """Score a frozen model on another source's windows, optionally recalibrated there; write the results.

    Args:
        model_or_run: An exported ``model.pt`` or a search's experiment folder.
        data: OTHER: a window dataset built from another source (``hypo windows``).
        trial: Trial of an experiment folder (default: the leaderboard's first).
        recalibrate: ``none``, ``temperature``, ``vector`` or ``isotonic``.
        calibration_share: Share of OTHER's subjects the map is fitted on (default 0.3; only with a map).
        seed: Seed of the calibration split and the bootstrap.
        n_boot: Bootstrap replicates.
        write_export: Path of a recalibrated ``model.pt`` to write (only with a map).
        out: Folder for ``evaluation.json``, ``evaluation.md`` and the figures.
        sections: ``(name, function)`` pairs computed on each evaluation set (default :func:`default_sections`).
        log: Where summary lines go.

    Returns:
        ``{"results", "paths", "export", "frozen"}``: ``frozen`` is the
        :class:`~hypo.evaluate.frozen.FrozenModel` evaluated (``hypo evaluate --alarms`` scores the same one).

    Raises:
        ConfigError: Inconsistent options.
        HypoError: Unusable model or dataset (one line each).
    """
    from hypo.evaluate.frozen import load_frozen
    from hypo.infer.export import check_out_file
    from hypo.storage import writable_folder

    if recalibrate not in METHODS:
        raise ConfigError(f"--recalibrate must be one of {', '.join(METHODS)}, got {recalibrate!r}")
    if recalibrate == "none":
        if calibration_share is not None:
            raise ConfigError("--calibration-share sets the subjects a recalibration is fitted on; it needs "
                              "--recalibrate temperature|vector|isotonic")
        if write_export:
            raise ConfigError("--write-export writes a recalibrated model; it needs --recalibrate "
                              "temperature|vector|isotonic (the model itself is already an export)")
    share = CALIBRATION_SHARE if calibration_share is None else float(calibration_share)
    if not 0 < share < 1:
        raise ConfigError(f"--calibration-share must be in (0, 1), got {share:g}")
    if n_boot < 1:
        raise ConfigError(f"--bootstrap must be >= 1, got {n_boot}")
    if write_export:
        check_out_file(write_export)
    out = writable_folder(out)
    manifest = read_manifest(data)
    frozen = load_frozen(model_or_run, trial)
    notes = check_compatible(frozen.sidecar, manifest, data)
    sections = default_sections(n_boot, seed) if sections is None else sections

    arrays = pooled_windows(data, manifest)
    if len(arrays) == 0:
        raise HypoError(f"{data} holds no window")
    missing = missing_groups(arrays, frozen.sidecar)
    notes += missing_notes(missing)
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
    probs = frozen.predict(arrays.x)
    bad = ~_finite_rows(probs)
    if bad.any():
        raise HypoError(f"the model gave no probability for {int(bad.sum())} windows of {data} holding NaN only "
                        "where its sidecar's tolerates_missing allows; its export is broken: re-export it")
    th = frozen.sidecar.get("thresholds") or {}
    thresholds = {c: _nan(th.get(f"p_{c}")) for c in CLASSES[1:]}
    data_info = {"path": data, "fingerprint": manifest.fingerprint, "provenance": describe_dataset(manifest),
                 "simulated": manifest.simulated, "n_windows": int(len(arrays)),
                 "n_subjects": int(len(np.unique(arrays.subjectid))), "n_cases": int(len(np.unique(arrays.caseid))),
                 "n_windows_left_out": int(left_out.sum()), "splits_pooled": list(SPLITS),
                 "missing_groups": {g: {k: v for k, v in m.items() if k != "mask"} for g, m in missing.items()}}
    results: dict[str, Any] = {
        "format": "hypo-external/1",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"path": frozen.path, "origin": frozen.origin, "describe": frozen.describe(),
                  "fingerprints": frozen.sidecar.get("fingerprints"), "source": frozen.sidecar.get("source"),
                  "label": frozen.sidecar.get("label")},
        "data": data_info, "notes": notes, "recalibrate": recalibrate, "seed": seed, "hypo_version": __version__,
    }
    for line in [f"model {frozen.describe()}", f"data  {data}: {describe_dataset(manifest)}",
                 f"      {data_info['n_windows']:,} windows from {data_info['n_subjects']} subjects "
                 f"({data_info['n_cases']} cases), all splits pooled; no retraining"
                 + (f"; {int(left_out.sum()):,} windows left out (below)" if left_out.any() else ""), *notes]:
        log(line)

    sets: list[EvalSet] = []
    written = None
    if recalibrate == "none":
        sets.append(EvalSet("all subjects", "model", arrays, probs, thresholds, manifest, frozen.sidecar))
    else:
        cal, sets, recal, calib = _recalibrate(recalibrate, share, seed, arrays, probs, thresholds, manifest,
                                               frozen, data, log)
        results["recalibration"] = recal
        if write_export:
            written = _write(frozen, calib, recal, arrays, probs, cal, sets[1].thresholds, write_export, log)
            results["recalibration"]["export"] = written
    results["evaluation_sets"] = {es.stage: {"name": es.name, "n_windows": int(len(es.arrays)),
                                             "n_subjects": int(len(np.unique(es.arrays.subjectid))),
                                             "thresholds": es.thresholds} for es in sets}
    results["sections"] = {name: {es.stage: fn(es) for es in sets} for name, fn in sections}
    paths = write_results(results, out)
    for line in summary_lines(results):
        log(line)
    log(f"wrote {paths['json']}, {paths['md']}" + "".join(f", {os.path.basename(p)}" for k, p in paths.items()
                                                          if k.endswith("_png")))
    return {"results": results, "paths": paths, "export": written, "frozen": frozen}


def _nan(v) -> float:
    return float(v) if v is not None else math.nan


def _recalibrate(method, share, seed, arrays, probs, thresholds, manifest, frozen, data, log):
    """Split OTHER's subjects, fit the map on the calibration share; the before and after sets of the rest."""
    from hypo.learn.operating_point import alarm_thresholds
    from hypo.learn.recalibration import apply_recalibration, fit_recalibration

    cal = calibration_subjects(arrays.subjectid, share, seed)
    n_cal = len(np.unique(arrays.subjectid[cal]))
    n_rest = len(np.unique(arrays.subjectid[~cal]))
    if n_cal < 2 or n_rest < 2:
        raise HypoError(f"--calibration-share {share:g} puts {n_cal} of {n_cal + n_rest} subjects in the calibration"
                        f" share and {n_rest} in the rest; both need at least 2 (more cases, or another share)")
    calib = fit_recalibration(method, probs[cal], arrays.label[cal])
    rest = take([arrays], ~cal)
    after = apply_recalibration(calib, probs[~cal])
    spec = float((frozen.sidecar.get("thresholds") or {}).get("specificity") or 0.9)
    new_th = alarm_thresholds(arrays.label[cal], apply_recalibration(calib, probs[cal]), spec)
    sets = [EvalSet("held-out subjects", "before", rest, probs[~cal], thresholds, manifest, frozen.sidecar),
            EvalSet("held-out subjects", "after", rest, after, new_th, manifest, frozen.sidecar)]
    recal = {"method": method, "parameters": calib.describe(), "share": share, "seed": seed,
             "fitted_on": {"data": data if "://" in data else os.path.abspath(data),
                           "dataset_fingerprint": manifest.fingerprint, "cohort": manifest.cohort,
                           "n_subjects": int(n_cal),
                           "n_windows": int(cal.sum()),
                           "split": "a hash of (seed, subject) below the share; all of the dataset's splits pooled"},
             "reported_on": {"n_subjects": int(n_rest), "n_windows": int((~cal).sum())},
             "thresholds": {"specificity": spec, "before": thresholds, "after": new_th,
                            "after_chosen_on": "the calibration subjects"}}
    log(f"recalibration {method}: fitted on {n_cal} subjects ({int(cal.sum()):,} windows, share {share:g}, seed "
        f"{seed}); before and after on the other {n_rest} subjects ({int((~cal).sum()):,} windows)")
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


def _write(frozen, calib, recal, arrays, probs, cal, new_th, path, log) -> dict[str, Any]:
    """Write the recalibrated export; its sidecar records the map, its data and the new alarm thresholds."""
    from hypo.evaluate.frozen import write_recalibrated
    from hypo.learn.operating_point import describe

    old = frozen.sidecar.get("thresholds") or {}
    spec = recal["thresholds"]["specificity"]
    thresholds = {**old, "p_hypotension": finite(new_th["hypotension"]),
                  "p_hypertension": finite(new_th["hypertension"]), "specificity": spec,
                  "chosen_on": f"calibration subjects of {recal['fitted_on']['data']} (after recalibration)",
                  "rule": describe(spec).replace("the validation split", "the calibration subjects"),
                  "before_recalibration": {k: old.get(k) for k in ("p_hypotension", "p_hypertension", "chosen_on")}}
    written, sidecar = write_recalibrated(frozen, calib, jsonable(recal), thresholds, arrays.x[cal], path)
    log(f"wrote {written}: the model with its {recal['method']} map inside (hypo predict applies it); alarm "
        f"thresholds fixed again on the calibration subjects: p(hypotension) >= {new_th['hypotension']:.4f}, "
        f"p(hypertension) >= {new_th['hypertension']:.4f}")
    return {"path": written, "model_sha256": sidecar.get("model_sha256")}


# ---------------------------------------------------------------------------------------------- output


def summary_lines(results: dict[str, Any]) -> list[str]:
    """The console / Markdown table: each headline figure per evaluation set (before and after, or the model)."""
    secs = results["sections"]
    stages = list(results["evaluation_sets"])
    sim = "  [simulated data]" if results["data"]["simulated"] else ""
    sets = results["evaluation_sets"]
    head = sets[stages[0]]
    lines = [f"{head['name']}: {head['n_windows']:,} windows, {head['n_subjects']} subjects{sim}",
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
        d = secs["discrimination"]
        row("mean AUROC [95% CI, subjects]", lambda s: _ci(d[s]["mean_auroc"]))
        row("summed AUPRC (hypo + hyper)", lambda s: _ci(d[s]["sum_auprc"]))
        for c in ("hypotension", "hypertension"):
            row(f"{c}: AUROC", lambda s, c=c: _ci(d[s][c]["auroc"]))
            row(f"{c}: AUPRC (prevalence)", lambda s, c=c: f"{_ci(d[s][c]['auprc'])} ({d[s][c]['prevalence']:.3f})")
        row("last-reading baseline: mean AUROC", lambda s: _ci(d[s]["reference"]["mean_auroc"]))
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
        if name not in ("discrimination", "calibration", "decision_curve"):
            lines.append(f"  {name}: see evaluation.json")
    return lines


def _ci(m: dict[str, Any]) -> str:
    v, lo, hi = m.get("value"), m.get("lo"), m.get("hi")
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and math.isfinite(lo) else f"{v:.3f}"


def write_results(results: dict[str, Any], out: str) -> dict[str, str]:
    """Write ``evaluation.json``, ``evaluation.md`` and the figures into ``out``; returns name -> path."""
    from hypo.evaluate.external.figures import decision_curve_figure, reliability_figure

    sim = " (simulated data)" if results["data"]["simulated"] else ""
    name = os.path.basename(os.path.normpath(results["data"]["path"]))
    paths = {}
    secs = results["sections"]
    if "calibration" in secs:
        paths["calibration_png"] = reliability_figure(
            secs["calibration"], os.path.join(out, "calibration.png"),
            f"{name}{sim}: calibration of the frozen model" + _recal_title(results))
    if "decision_curve" in secs:
        paths["decision_curve_png"] = decision_curve_figure(
            secs["decision_curve"], os.path.join(out, "decision_curve.png"),
            f"{name}{sim}: decision curve, alarm on p(hypotension)" + _recal_title(results))
    paths["json"] = os.path.join(out, "evaluation.json")
    with open(paths["json"], "w") as f:
        json.dump(jsonable(results), f, indent=2)
    paths["md"] = os.path.join(out, "evaluation.md")
    with open(paths["md"], "w") as f:
        f.write(f"# External evaluation{sim}\n\nmodel: {results['model']['describe']}\n\n"
                f"data: {results['data']['path']}: {results['data']['provenance']}\n\n"
                + "".join(f"{n}\n\n" for n in results.get("notes") or ()) + "```\n"
                + "\n".join(summary_lines(results)) + "\n```\n")
    return paths


def _recal_title(results: dict[str, Any]) -> str:
    r = results.get("recalibration")
    return f"\nbefore and after {r['method']} recalibration (held-out subjects)" if r else ""
