"""``hypo leaderboard`` (also ``python tune/leaderboard.py``): rank an experiment's trials; table, CSV, MD, PNG."""

from __future__ import annotations

import os
from typing import Any

from hypo.learn.baselines import recorded_baselines
from hypo.runtime import OneLineParser, one_line_errors
from hypo.search.leaderboard import (
    RANK_METRICS,
    baseline_notes,
    format_table,
    leaderboard_frame,
    load_trials,
    local_experiment,
    read_search_meta,
    write_leaderboard,
)

PROG = "hypo leaderboard"


def show_leaderboard(exp_path: str, rank_by: tuple[str, ...] = RANK_METRICS, out_dir: str | None = None,
                     log=print) -> dict[str, Any]:
    """Print the leaderboard of an experiment and write its files (into the experiment folder by default).

    Returns:
        ``{"frame": DataFrame, "paths": {csv, md, png}}``.
    """
    exp_path = local_experiment(exp_path, log=log)
    meta = read_search_meta(exp_path)
    baselines = recorded_baselines(meta)
    df = leaderboard_frame(load_trials(exp_path), baselines, by=rank_by)
    title = f"hypo search {os.path.basename(os.path.normpath(exp_path))}"
    simulated = bool(meta.get("simulated"))
    notes = baseline_notes(baselines)
    paths = write_leaderboard(df, out_dir or exp_path, title, simulated, notes)
    log(format_table(df))
    if simulated:
        log(f"simulated data ({meta.get('source')} source): these figures say nothing about clinical performance")
    log(f"ranked by {' then '.join(rank_by)} on the validation split; baseline rows on the same windows:"
        + "".join(f"\n  {line}" for line in notes))
    log("wrote " + ", ".join(paths.values()))
    return {"frame": df, "paths": paths}


def main(argv: list[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Entry point of ``hypo leaderboard``."""
    p = OneLineParser(prog=prog, description="Rank the trials of a hypo search.")
    p.add_argument("experiment", help="experiment folder (storage/name)")
    p.add_argument("--rank-by", default=",".join(RANK_METRICS),
                   help="comma-separated metrics, highest first (default: %(default)s)")
    p.add_argument("--out", default=None, help="where to write the files (default: the experiment folder)")
    p.add_argument("--test", type=int, default=0, metavar="N",
                   help="evaluate the top N trials once on the test split, beside the paper's table")
    args = p.parse_args(argv)
    with one_line_errors(prog):
        exp = local_experiment(args.experiment)
        res = show_leaderboard(exp, tuple(args.rank_by.split(",")), args.out)
        if args.test:
            from hypo.evaluate.final_test import test_top_trials

            res["test"] = test_top_trials(exp, res["frame"], args.test, out_dir=args.out)
        return res
