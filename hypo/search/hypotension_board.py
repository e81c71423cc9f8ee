"""The leaderboard's second table: hypotension alone, the top trials and the baselines beside the comparators.

The comparators (:mod:`hypo.learn.comparators`: cuff MAP below 72 and 73 mmHg, MAP extrapolation, the last DBP,
and with ART labels the same on the arterial line) score hypotension only, so they stand beside the trials'
and baselines' hypotension figures on the same validation windows rather than in the three-class ranking. A
fixed rule is one operating point: its sensitivity, specificity and PPV, where the other rows have curves
(AUROC, AUPRC). Every row says what it reads. Computed when the leaderboard is shown, from the dataset (cuff
columns only, no signals read), so an older search gets them too; a dataset built before the windows carried the
last DBP and the earlier readings shows the fixed rules and says in one line that the other rows need a rebuild.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from hypo.learn.baselines import ROW_PREFIX, BaselineRecord, reads_of
from hypo.learn.comparators import MODEL_INPUTS

COLUMNS = {"row": "row", "reads": "reads", "val_auroc_hypotension": "AUROC_hypo",
           "val_auprc_hypotension": "AUPRC_hypo", "val_matched_auroc_hypotension": "matched_AUROC",
           "val_prevalence_hypotension": "prev_hypo", "val_sensitivity_hypotension": "sens_hypo",
           "val_specificity_hypotension": "spec_hypo", "val_ppv_hypotension": "PPV_hypo"}
N_TOP = 3
NOTE = ("hypotension on the same validation windows: the top trials and the baselines beside the comparators "
        "(a fixed rule is one operating point: sensitivity, specificity, PPV; matched_AUROC: positives against "
        "negatives of the same current cuff MAP, comparator rows only)")


def comparator_rows(data_dir: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The comparators' validation rows (:func:`hypo.learn.comparators.comparator_records`) and their notes.

    Fitted on the train split; only the cuff (and ART) columns are read. A dataset that cannot be read gives no
    row and one note saying why.
    """
    from hypo.data.dataset import load_split, read_manifest
    from hypo.errors import HypoError
    from hypo.learn.comparators import comparator_records, fit_comparators

    try:
        manifest = read_manifest(data_dir)
        train = load_split(data_dir, "train", manifest, x=False)
        val = load_split(data_dir, "val", manifest, x=False)
    except HypoError as exc:
        return [], [f"comparator rows left out: the dataset is not readable here ({exc})"]
    return comparator_records(val, manifest, fit_comparators(train, manifest), where=data_dir, prefix="val_")


def hypotension_frame(board: pd.DataFrame, best_rows: dict[str, dict[str, Any]],
                      baselines: tuple[BaselineRecord, ...], comparators: list[dict[str, Any]],
                      n_top: int = N_TOP) -> pd.DataFrame:
    """The hypotension table: the top ``n_top`` trials, every baseline, every comparator.

    Args:
        board: The leaderboard (:func:`hypo.search.leaderboard.leaderboard_frame`).
        best_rows: Trial id -> its result row at its best epoch (what the board shows).
        baselines: The search's baselines.
        comparators: :func:`comparator_rows`.
        n_top: Trials shown.
    """
    rows = []
    for _, r in board[board["rank"].notna()].head(n_top).iterrows():
        rows.append({"row": f"#{int(r['rank'])} {r['trial']} ({r['model']})", "reads": MODEL_INPUTS,
                     **_metrics(best_rows.get(str(r["trial"])) or {})})
    for b in baselines:
        rows.append({"row": ROW_PREFIX + b.name, "reads": reads_of(b.name), **_metrics(b.metrics)})
    for c in comparators:
        rows.append({"row": c["name"], "reads": c["reads"], **_metrics(c["metrics"])})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _metrics(m: dict[str, Any]) -> dict[str, float]:
    return {k: (math.nan if m.get(k) is None else m[k]) for k in COLUMNS if k.startswith("val_")}


def display(frame: pd.DataFrame) -> pd.DataFrame:
    """The table's cells as text, with short headers."""
    def cell(c: str, v: Any) -> str:
        if c in ("row", "reads"):
            return str(v)
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

    return pd.DataFrame({COLUMNS[c]: [cell(c, v) for v in frame[c]] for c in COLUMNS})


def markdown(frame: pd.DataFrame) -> str:
    """The table as Markdown."""
    shown = display(frame)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in shown.itertuples(index=False)])


def description_lines(comparators: list[dict[str, Any]]) -> list[str]:
    """One line per comparator saying what it reads and does."""
    return [f"{c['name']} ({c['reads']}) = {c['description']}" for c in comparators]
