"""Showing a search's leaderboard: the header lines, the table, the notes, and the files it writes.

:func:`show_leaderboard` is what ``hypo search`` prints when it ends and what ``hypo leaderboard`` builds on (the
evaluate layer adds its alarm columns through ``decorate``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pandas as pd

from hypo.data.dataset import label_source_text
from hypo.errors import HypoError
from hypo.learn.baselines import baseline_list
from hypo.learn.metrics import RANK_METRICS
from hypo.mirror import staged_out
from hypo.search.experiments import experiment_folder
from hypo.search.hypotension_board import (
    NOTE,
    comparator_rows,
    description_lines,
    display,
    hypotension_frame,
    markdown,
)
from hypo.search.leaderboard import (
    baseline_notes,
    format_table,
    importance_lines,
    leaderboard_frame,
    load_trials,
    search_status,
    signal_importance,
    write_leaderboard,
)
from hypo.search.record import SearchRecord, read_search_record

# decorate(frame, out_dir) -> (frame with more columns, more note lines, extra result entries)
Decorate = Callable[[pd.DataFrame, str], tuple[pd.DataFrame, list[str], dict[str, Any]]]


def data_line(search: SearchRecord) -> str:
    """The dataset's provenance for the leaderboard header, from its manifest when it is still there."""
    data = search.data
    if data:
        from hypo.data.dataset import describe_dataset, read_manifest

        try:
            return f"data {data}: {describe_dataset(read_manifest(data))}"
        except HypoError:
            pass
    label = search.label
    labels = f"{label.source} {label.mode}" if label is not None else "cuff "
    return (f"data {data or '?'} (not readable now): source {search.source or '?'}, labels {labels}, "
            f"fingerprint {search.dataset_fingerprint or '?'}")


def objective_rank(search, rank_by: tuple[str, ...]) -> tuple[str, ...]:
    """The ranking a board uses: a search's ``--objective-horizon`` objective in place of the default.

    A search run with ``--objective-horizon S`` ranks on ``val_h<S>_auroc`` then ``val_h<S>_auprc``; any other
    ``rank_by``, or a search without it, is kept.
    """
    horizon = (search.search or {}).get("objective_horizon") if search is not None else None
    if tuple(rank_by) != RANK_METRICS or horizon is None:
        return tuple(rank_by)
    return (f"val_h{int(horizon)}_auroc", f"val_h{int(horizon)}_auprc")


def show_leaderboard(exp_path: str, rank_by: tuple[str, ...] = RANK_METRICS, out_dir: str | None = None,
                     log=print, decorate: Decorate | None = None) -> dict[str, Any]:
    """Print the leaderboard of an experiment and write its files (into the experiment folder by default).

    Args:
        exp_path: The experiment (local or ``s3://``).
        rank_by: Ranking metrics.
        out_dir: Where the files go.
        log: Where the lines go.
        decorate: Adds columns and note lines to the frame before it is written (``hypo leaderboard --alarms``).

    Returns:
        ``{"frame": DataFrame, "paths": {csv, md, png, hypotension}, "status": search_status(...), "importance":
        ..., "hypotension": the hypotension table (:mod:`hypo.search.hypotension_board`)}``, and what
        ``decorate`` returned.
    """
    with experiment_folder(exp_path, log) as (exp_path, log), staged_out(out_dir, log) as (out, log):
        return _show(exp_path, rank_by, out or exp_path, log, decorate)


def _show(exp_path: str, rank_by: tuple[str, ...], out: str, log, decorate: Decorate | None) -> dict[str, Any]:
    """:func:`show_leaderboard` on a local experiment folder, its files into the local folder ``out``."""
    search = read_search_record(exp_path)
    rank_by = objective_rank(search, rank_by)
    records = load_trials(exp_path)
    status = search_status(records, search)
    baselines = search.baselines if search is not None else ()
    df = leaderboard_frame(records, baselines, by=rank_by)
    label = search.label if search is not None else None
    title = f"hypo search {os.path.basename(os.path.normpath(exp_path))}, {label_source_text(label)}"
    simulated = search is not None and search.simulated
    partial = status["note"] if status["partial"] else None
    notes = baseline_notes(baselines)
    importance = signal_importance(df)
    extra: dict[str, Any] = {}
    if decorate is not None:
        os.makedirs(out, exist_ok=True)
        df, more_notes, extra = decorate(df, out)
        notes = notes + more_notes
    hypo_rows, hypo_notes = comparator_rows(search.data) if search is not None and search.data else \
        ([], ["comparator rows left out: the search records no dataset"])
    hypo_frame = hypotension_frame(df, {r.trial_id: r.best(rank_by) or {} for r in records}, baseline_list(baselines),
                                   hypo_rows)
    hypo_lines = [NOTE, *description_lines(hypo_rows), *hypo_notes]
    paths = write_leaderboard(df, out, title, simulated, partial, notes, importance,
                              hypotension=(hypo_frame, markdown(hypo_frame), hypo_lines))
    log(title)
    if search is not None:
        log(data_line(search))
    if partial:
        log(partial)
    elif status["budget_spent"]:
        log(status["note"])
    log(format_table(df))
    if simulated:
        log(f"simulated data ({search.source} source): these figures say nothing about clinical performance")
    log(f"ranked by {' then '.join(rank_by)} on the validation split; baseline rows on the same windows:"
        + "".join(f"\n  {line}" for line in notes)
        + "\n" + display(hypo_frame).to_string(index=False) + "".join(f"\n  {line}" for line in hypo_lines))
    for line in importance_lines(importance):
        log(line)
    log("wrote " + ", ".join([*paths.values(), *extra.get("files", ())]))
    return {"frame": df, "paths": paths, "status": status, "importance": importance, "hypotension": hypo_frame,
            **{k: v for k, v in extra.items() if k != "files"}}
