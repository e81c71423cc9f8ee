"""``hypo leaderboard`` (also ``python tune/leaderboard.py``): rank an experiment's trials; table, CSV, MD, PNG.

hypo leaderboard                      # the latest experiment under runs/ (the others are listed)
hypo leaderboard runs/search-20261124-120000 --test 3
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hypo import storage
from hypo.data.dataset import label_source_text
from hypo.errors import ConfigError, HypoError
from hypo.learn.baselines import recorded_baselines
from hypo.runtime import OneLineParser, one_line_errors
from hypo.search.leaderboard import (
    RANK_METRICS,
    SEARCH_META,
    baseline_notes,
    format_table,
    importance_lines,
    leaderboard_frame,
    load_trials,
    local_experiment,
    read_search_meta,
    search_status,
    signal_importance,
    write_leaderboard,
)

PROG = "hypo leaderboard"
DEFAULT_STORAGE = "runs"
MAX_TEST_WITHOUT_YES = 5  # looking at more trials on test is selecting on test


def experiments_under(root: str) -> list[str]:
    """The experiment folders directly under ``root`` (those holding a search record or trials), newest first."""
    if not os.path.isdir(root):
        return []
    found = []
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if os.path.isdir(path) and (os.path.exists(os.path.join(path, SEARCH_META))
                                    or any(e.startswith("train_trial") for e in os.listdir(path))):
            found.append(path)
    return sorted(found, key=os.path.getmtime, reverse=True)


def resolve_experiment(arg: str | None, log=print) -> str:
    """The experiment to show: ``arg`` itself, or the newest one under ``arg`` (default ``runs/``).

    Raises:
        HypoError: When ``arg`` is neither an experiment nor a folder of experiments.
    """
    path = arg or DEFAULT_STORAGE
    if storage.is_uri(path) or os.path.exists(os.path.join(path, SEARCH_META)):
        return path
    found = experiments_under(path)
    if not found:
        if arg and os.path.isdir(path) and any(e.startswith("train_trial") for e in os.listdir(path)):
            return path
        raise HypoError(f"no experiment under {os.path.abspath(path)}; run a search first (python tune/search.py) "
                        "or name an experiment folder")
    log(f"latest experiment under {path}: {os.path.basename(found[0])}")
    if len(found) > 1:
        log("others (newest first): " + ", ".join(os.path.basename(p) for p in found[1:]))
    return found[0]


def data_line(meta: dict[str, Any]) -> str:
    """The dataset's provenance for the leaderboard header, from its manifest when it is still there."""
    data = meta.get("data")
    if data:
        from hypo.data.dataset import describe_dataset, read_manifest

        try:
            return f"data {data}: {describe_dataset(read_manifest(data))}"
        except HypoError:
            pass
    label = meta.get("label") or {}
    fp = meta.get("dataset_fingerprint", "?")
    return (f"data {data or '?'} (not readable now): source {meta.get('source', '?')}, labels "
            f"{label.get('source', 'cuff')} {label.get('mode', '')}, fingerprint {fp}")


def show_leaderboard(exp_path: str, rank_by: tuple[str, ...] = RANK_METRICS, out_dir: str | None = None,
                     log=print) -> dict[str, Any]:
    """Print the leaderboard of an experiment and write its files (into the experiment folder by default).

    Returns:
        ``{"frame": DataFrame, "paths": {csv, md, png}, "status": search_status(...)}``.
    """
    exp_path = local_experiment(exp_path, log=log)
    meta = read_search_meta(exp_path)
    records = load_trials(exp_path)
    status = search_status(records, meta)
    baselines = recorded_baselines(meta)
    df = leaderboard_frame(records, baselines, by=rank_by)
    title = f"hypo search {os.path.basename(os.path.normpath(exp_path))}, {label_source_text(meta.get('label') or {})}"
    simulated = bool(meta.get("simulated"))
    partial = status["note"] if status["partial"] else None
    notes = baseline_notes(baselines)
    importance = signal_importance(df)
    paths = write_leaderboard(df, out_dir or exp_path, title, simulated, partial, notes, importance)
    log(title)
    if meta:
        log(data_line(meta))
    if partial:
        log(partial)
    elif status["budget_spent"]:
        log(status["note"])
    log(format_table(df))
    if simulated:
        log(f"simulated data ({meta.get('source')} source): these figures say nothing about clinical performance")
    log(f"ranked by {' then '.join(rank_by)} on the validation split; baseline rows on the same windows:"
        + "".join(f"\n  {line}" for line in notes))
    for line in importance_lines(importance):
        log(line)
    log("wrote " + ", ".join(paths.values()))
    return {"frame": df, "paths": paths, "status": status, "importance": importance}


def check_test_count(n: int | None, n_trials: int, yes: bool) -> None:
    """``--test N``: 1 <= N <= trials; more than :data:`MAX_TEST_WITHOUT_YES` only with ``--yes``.

    Raises:
        ConfigError: Otherwise, naming the flag.
    """
    if n is None:
        return
    if not 1 <= n <= n_trials:
        raise ConfigError(f"--test must be between 1 and the number of ranked trials ({n_trials}), got {n}")
    if n > MAX_TEST_WITHOUT_YES and not yes:
        raise ConfigError(f"--test {n} evaluates {n} trials on the test split, which is choosing among them on "
                          f"test (the selection the test split exists to prevent); add --yes if that is meant")


def main(argv: list[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Entry point of ``hypo leaderboard``."""
    p = OneLineParser(prog=prog, description="Rank the trials of a hypo search.")
    p.add_argument("experiment", nargs="?", default=None,
                   help="experiment folder (storage/name), or a storage folder: its latest experiment "
                        f"(default: the latest under {DEFAULT_STORAGE}/)")
    p.add_argument("--rank-by", default=",".join(RANK_METRICS),
                   help="comma-separated metrics, highest first (default: %(default)s)")
    p.add_argument("--out", default=None, help="where to write the files (default: the experiment folder)")
    p.add_argument("--test", type=int, default=None, metavar="N",
                   help="evaluate the top N trials once on the test split, beside the paper's table (1 <= N; "
                        f"more than {MAX_TEST_WITHOUT_YES} needs --yes)")
    p.add_argument("--yes", action="store_true", help=f"allow --test above {MAX_TEST_WITHOUT_YES}")
    args = p.parse_args(argv)
    with one_line_errors(prog):
        exp = local_experiment(resolve_experiment(args.experiment))
        if args.test is not None:  # checked before anything is written or looked at
            check_test_count(args.test, len(load_trials(exp)), args.yes)
        res = show_leaderboard(exp, tuple(args.rank_by.split(",")), args.out)
        if args.test is not None:
            from hypo.evaluate.final_test import test_top_trials

            if res["status"]["partial"]:
                print(f"{prog}: warning: the search is partial; the test look ranks unfinished trials",
                      file=sys.stderr)
            res["test"] = test_top_trials(exp, res["frame"], args.test, out_dir=args.out)
        return res
