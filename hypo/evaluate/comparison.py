"""The model beside the comparators, and every row by the current MAP (``--test``, the report, ``hypo evaluate``).

A *row* is one scorer on one set of windows, JSON-ready: ``{"name", "reads", "fixed", "metrics"}`` (plus
``"bootstrap"`` where a caller adds intervals). ``metrics`` holds, for the models and the baselines, what
:func:`hypo.learn.metrics.evaluate_scores` returns with the last cuff MAP (``auroc_hypotension``, ...,
``bymap_<stratum>_*``, ``excl_*``, ``matched_auroc_hypotension``), and for the comparators what
:func:`hypo.learn.comparators.comparator_metrics` returns (the same keys, hypotension only; a fixed rule has
``sensitivity_``, ``specificity_`` and ``ppv_hypotension`` instead of a curve). Two tables are drawn from them:

- **hypotension**: every row's AUROC and AUPRC for hypotension, the MAP-matched AUROC (positives against
  negatives of the same current cuff MAP: what a score knows beyond the current pressure), a fixed rule's
  sensitivity, specificity and PPV, and with ``exclude`` the same without the windows whose last reading is already
  below the threshold (``--exclude-in-hypotension``);
- **gray zone**: the hypotension AUROC (a fixed rule's sensitivity / specificity) within each stratum of the last
  cuff MAP (below 65, 65-75, above 75, no reading yet), with each stratum's windows and prevalence.

    rows, notes = split_rows(test, manifest, {"model": probs}, baselines, fits, where=data_dir)
    lines = markdown(*hypotension_cells(rows))          # Markdown lines of the hypotension table
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hypo.learn.comparators import MODEL_INPUTS, comparator_metrics, split_comparators
from hypo.learn.metrics import MAP_STRATA, evaluate_scores, stratum_titles

HEADLINE = ("the headline figures are the full ones, over every window as a live monitor meets them; without the "
            "windows already below the threshold (--exclude-in-hypotension) they answer the onset question beside "
            "them, on a selection made by the current pressure")
MATCHED_TEXT = ("MAP-matched AUROC: each hypotension window compared only with the other windows whose last cuff MAP "
                "falls in the same {width:g}-mmHg bin (pairs pooled over bins; Janes & Pepe 2008): 0.5 for a score "
                "of the current MAP alone, above 0.5 what it knows beyond it")


def model_row(name: str, probs, y, last_map, hypo_map: float, reads: str = MODEL_INPUTS) -> dict[str, Any]:
    """A three-class scorer (the model, a baseline) as a row, its metrics with the last cuff MAP's strata."""
    metrics = evaluate_scores(y, probs, where="", warn=False, last_map=last_map, hypo_map=hypo_map)
    return {"name": name, "reads": reads, "fixed": False, "metrics": metrics}


def split_rows(split, manifest, models: dict[str, Any], baselines, fits, where: str = "the dataset",
               reads: dict[str, str] | None = None, scores: dict[str, np.ndarray] | None = None,
               ) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of one split: the models, the baselines, the comparators; and the comparators' notes.

    Args:
        split: The windows (:class:`~hypo.data.dataset.WindowArrays`).
        manifest: Its manifest.
        models: Row name -> float [n, 3] probabilities (in order).
        baselines: :func:`hypo.learn.baselines.split_baselines` of the split (rows named ``baseline: <name>``).
        fits: :func:`hypo.learn.comparators.fit_comparators` of the train split.
        where: The dataset, as a note names it.
        reads: Row name -> what it reads, for the baselines (default: :func:`hypo.learn.baselines.reads_of`).
        scores: When a dict, filled with row name -> its score of hypotension (for :func:`add_intervals`).
    """
    from hypo.learn.baselines import ROW_PREFIX, reads_of

    hypo_map = float(manifest.label.hypo_map)
    y, last_map = np.asarray(split.label), np.asarray(split.last_map)
    rows = [model_row(name, p, y, last_map, hypo_map) for name, p in models.items()]
    reads = reads or {}
    rows += [model_row(ROW_PREFIX + b.name, b.scores, y, last_map, hypo_map, reads.get(b.name, reads_of(b.name)))
             for b in baselines]
    comps, notes = split_comparators(split, manifest, fits, where)
    rows += [{"name": c.name, "reads": c.reads, "description": c.description, "fixed": c.fixed, "params": c.params,
              "metrics": comparator_metrics(y, c, last_map, hypo_map)} for c in comps]
    if scores is not None:
        scores.update({name: np.asarray(p)[:, 1] for name, p in models.items()})
        scores.update({ROW_PREFIX + b.name: np.asarray(b.scores)[:, 1] for b in baselines})
        scores.update({c.name: c.p_hypo for c in comps})
    return rows, notes


# ------------------------------------------------------------------------------------------------ cells


def _v(m: dict[str, Any], key: str) -> float:
    v = m.get(key)
    return math.nan if v is None else float(v)


def cell_text(row: dict[str, Any], key: str, prefix: str = "", digits: int = 3) -> str:
    """A cell: the bootstrap interval where the row has one, else the value; blank where undefined."""
    boot = (row.get("bootstrap") or {}).get(prefix + key)
    if boot and boot.get("value") is not None and math.isfinite(boot["value"]):
        lo, hi = boot.get("lo"), boot.get("hi")
        if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
            return f"{boot['value']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
        return f"{boot['value']:.{digits}f}"
    v = _v(row["metrics"], prefix + key)
    return f"{v:.{digits}f}" if math.isfinite(v) else ""


def hypotension_cells(rows: list[dict[str, Any]], exclude: bool = False) -> tuple[list[str], list[list[str]]]:
    """The hypotension table (see the module docstring): header and cells."""
    header = ["row", "reads", "AUROC", "AUPRC", "MAP-matched AUROC", "sensitivity", "specificity", "PPV"]
    if exclude:
        header += ["AUROC excl.", "AUPRC excl.", "sens. / spec. excl."]
    out = []
    for r in rows:
        cells = [r["name"], r["reads"], cell_text(r, "auroc_hypotension"), cell_text(r, "auprc_hypotension"),
                 cell_text(r, "matched_auroc_hypotension"), cell_text(r, "sensitivity_hypotension"),
                 cell_text(r, "specificity_hypotension"), cell_text(r, "ppv_hypotension")]
        if exclude:
            both = [cell_text(r, k, "excl_") for k in ("sensitivity_hypotension", "specificity_hypotension")]
            cells += [cell_text(r, "auroc_hypotension", "excl_"), cell_text(r, "auprc_hypotension", "excl_"),
                      " / ".join(both) if any(both) else ""]
        out.append(cells)
    return header, out


def stratum_counts(rows: list[dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """Each stratum's windows and hypotension prevalence (the same for every row: read off the first)."""
    m = rows[0]["metrics"] if rows else {}
    return {s: (int(_v(m, f"bymap_{s}_n")) if math.isfinite(_v(m, f"bymap_{s}_n")) else 0,
                _v(m, f"bymap_{s}_prevalence_hypotension")) for s in MAP_STRATA}


def gray_zone_cells(rows: list[dict[str, Any]], hypo_map: float = 65.0) -> tuple[list[str], list[list[str]]]:
    """The gray-zone table: per stratum of the last cuff MAP, each row's hypotension AUROC.

    A fixed rule shows its sensitivity / specificity; the header gives each stratum's windows and prevalence.
    """
    titles, counts = stratum_titles(hypo_map), stratum_counts(rows)
    strata = [s for s in MAP_STRATA if s != "none" or counts[s][0]]  # "no reading yet" only where there are such
    header = ["row", "reads"] + [f"{titles[s]} (n {counts[s][0]:,}, prev. {_pct(counts[s][1])})" for s in strata]
    out = []
    for r in rows:
        cells = [r["name"], r["reads"]]
        for s in strata:
            if r["fixed"]:
                both = [cell_text(r, k, f"bymap_{s}_") for k in ("sensitivity_hypotension", "specificity_hypotension")]
                cells.append(" / ".join(c or "n/a" for c in both) if any(both) else "")
            else:
                cells.append(cell_text(r, "auroc_hypotension", f"bymap_{s}_"))
        out.append(cells)
    return header, out


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%" if math.isfinite(v) else "n/a"


def markdown(header: list[str], cells: list[list[str]]) -> list[str]:
    """A table as Markdown lines."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(c) + " |"
                                                                          for c in cells]


def text_table(header: list[str], cells: list[list[str]]) -> list[str]:
    """A table as aligned text lines (the console): the first column left, the others right."""
    every = [header, *cells]
    widths = [max(len(r[i]) for r in every) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in every]


def notes(rows: list[dict[str, Any]], hypo_map: float = 65.0) -> list[str]:
    """What the two tables' figures mean, in lines under them."""
    width = next((r["metrics"].get("matched_bin_mmhg") for r in rows if r["metrics"].get("matched_bin_mmhg")), 1.0)
    return [MATCHED_TEXT.format(width=width),
            f"gray zone: the last cuff MAP at prediction time; {stratum_titles(hypo_map)['gray']} mmHg is where "
            "learned models have been found to add most to the current pressure; a fixed rule shows sensitivity / "
            "specificity; blank where a stratum lacks positives or negatives",
            f"excl.: without the windows whose last cuff MAP is already below {hypo_map:g} mmHg; " + HEADLINE]


# ------------------------------------------------------------------------------------------------ intervals


def add_intervals(rows: list[dict[str, Any]], scores: dict[str, np.ndarray], y, subjectid, last_map,
                  n_boot: int, seed: int = 0, level: float = 0.95) -> list[dict[str, Any]]:
    """Each row's hypotension figures with subject-bootstrap intervals (``row["bootstrap"]``), in place.

    The replicates are those of :func:`hypo.evaluate.bootstrap.bootstrap_scores` with the same seed (the same
    subjects drawn), so intervals of different rows are paired.

    Args:
        rows: The rows (:func:`split_rows`).
        scores: Row name -> float [n] its score of hypotension (a fixed rule: 1 where it alarms); rows without
            one get no interval.
        y: int [n] labels.
        subjectid: [n] subject of each window.
        last_map: float [n] the last cuff MAP (the matched AUROC's covariate).
        n_boot: Replicates.
        seed: Seed of the draws.
        level: Interval level.
    """
    from hypo.evaluate.bootstrap import curve_metrics, interval, subject_weights, weighted_curves
    from hypo.learn.metrics import matched_auroc, reading_resolution

    pos = np.asarray(y) == 1
    m = np.asarray(last_map, np.float64)
    width = reading_resolution(m)
    keys = {"auroc_hypotension": "auroc", "auprc_hypotension": "auprc"}
    reps: dict[str, dict[str, list]] = {name: {} for name in scores}
    fixed = {r["name"]: r["fixed"] for r in rows}
    for w in subject_weights(subjectid, n_boot, seed):
        for name, s in scores.items():
            if fixed.get(name):
                for k, v in _rule_replicates(pos, np.asarray(s) >= 0.5, w).items():
                    reps[name].setdefault(k, []).append(v)
                continue
            c = curve_metrics(weighted_curves(pos, s, w))
            for k, short in keys.items():
                reps[name].setdefault(k, []).append(c[short])
            reps[name].setdefault("matched_auroc_hypotension", []).append(matched_auroc(pos, s, m, width, w)[0])
    for r in rows:
        if r["name"] in reps:
            r["bootstrap"] = {k: {"value": _v(r["metrics"], k), **interval(np.concatenate(v), level)}
                              for k, v in reps[r["name"]].items()}
    return rows


def _rule_replicates(pos: np.ndarray, alarm: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """Sensitivity, specificity and PPV of a fixed rule under bootstrap weights [b, n]."""
    tp, fp = w @ (pos & alarm), w @ (~pos & alarm)
    fn, tn = w @ (pos & ~alarm), w @ (~pos & ~alarm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"sensitivity_hypotension": tp / (tp + fn), "specificity_hypotension": tn / (tn + fp),
                "ppv_hypotension": tp / (tp + fp)}
