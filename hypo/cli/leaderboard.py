"""``hypo leaderboard`` (also ``python tune/leaderboard.py``): rank an experiment's trials; table, CSV, MD, PNG.

hypo leaderboard                      # the latest experiment under runs/ (the others are listed)
hypo leaderboard runs/search-20261124-120000 --test 3
hypo leaderboard runs/search-20261124-120000 --alarms 3    # the top 3 as alarms, on validation (no test look)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hypo import storage
from hypo.cli.alarm_args import add_alarm_arguments, alarm_config
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


def add_alarm_columns(df, exp_path: str, n: int, cfg, max_cases: int | None, out_dir: str, log=print):
    """``--alarms N``: the top N trials and the baselines as alarms on the validation split, as two columns.

    Returns:
        ``(frame with val_alarm_sensitivity / val_alarm_lead_min, the result of validation_alarms, its note
        lines)``. The figures are read off each row's own validation curve: selection-biased, marked so.
    """
    import json

    from hypo.evaluate.alarms.evaluation import validation_alarms
    from hypo.learn.baselines import ROW_PREFIX

    trials = [str(t) for t in df[df["rank"].notna()].head(n)["trial"]]
    res = validation_alarms(exp_path, trials, cfg, max_cases, log=log)
    df = df.copy()
    df["val_alarm_sensitivity"] = float("nan")
    df["val_alarm_lead_min"] = float("nan")
    for name, r in res["rows"].items():
        mask = df["trial"].isin([name, ROW_PREFIX + name])
        df.loc[mask, "val_alarm_sensitivity"] = r["sensitivity"] if r["sensitivity"] is not None else float("nan")
        lead = r["lead_median_s"]
        df.loc[mask, "val_alarm_lead_min"] = lead / 60 if lead is not None else float("nan")
    with open(os.path.join(out_dir, "alarms_val.json"), "w") as f:
        json.dump(res, f, indent=1)
    lines = ["* " + res["note"] + "; the top rows only"]
    shown = set(df["trial"].astype(str))
    for name, r in res["rows"].items():
        if name not in shown and ROW_PREFIX + name not in shown:  # e.g. the simulated frequent cuff
            sens = "n/a" if r["sensitivity"] is None else f"{100 * r['sensitivity']:.0f}%"
            det = "n/a" if r["detection"] is None else f"{100 * r['detection']:.0f}%"
            lines.append(f"* baseline: {name} (validation): sensitivity {sens}, detected {det}, false alarms/h "
                         f"{r['fa_per_h'] or 0:.2f} (a fixed threshold)")
    if res["cases"]["failed"]:
        lines.append(f"* {res['cases']['failed']} validation recordings could not be scored")
    return df, res, lines


def show_leaderboard(exp_path: str, rank_by: tuple[str, ...] = RANK_METRICS, out_dir: str | None = None,
                     log=print, alarms: int | None = None, alarm_cfg=None,
                     alarm_cases: int | None = None) -> dict[str, Any]:
    """Print the leaderboard of an experiment and write its files (into the experiment folder by default).

    Args:
        exp_path: The experiment.
        rank_by: Ranking metrics.
        out_dir: Where the files go.
        log: Where the lines go.
        alarms: ``--alarms N``: score the top N trials and the baselines as alarms on the validation split.
        alarm_cfg: The alarm config (default :class:`~hypo.evaluate.alarms.metrics.AlarmConfig`).
        alarm_cases: At most this many validation recordings.

    Returns:
        ``{"frame": DataFrame, "paths": {csv, md, png}, "status": search_status(...)}`` (and ``"alarms"``).
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
    alarm_res = None
    if alarms:
        os.makedirs(out_dir or exp_path, exist_ok=True)
        df, alarm_res, alarm_notes = add_alarm_columns(df, exp_path, alarms, alarm_cfg, alarm_cases,
                                                       out_dir or exp_path, log)
        notes = notes + alarm_notes
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
    log("wrote " + ", ".join(paths.values()) + (", alarms_val.json" if alarm_res else ""))
    out = {"frame": df, "paths": paths, "status": status, "importance": importance}
    if alarm_res is not None:
        out["alarms"] = alarm_res
    return out


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
    p.add_argument("--alarms", type=int, default=None, metavar="N",
                   help="score the top N trials and the baselines as alarms on the validation split (no test "
                        "look): episode sensitivity at the false-alarm target and median lead, selection-biased")
    p.add_argument("--no-alarms", action="store_true",
                   help="with --test: leave out the alarm table (the test recordings replayed end to end)")
    add_alarm_arguments(p)
    args = p.parse_args(argv)
    with one_line_errors(prog):
        cfg = alarm_config(args)
        exp = local_experiment(resolve_experiment(args.experiment))
        n_trials = len(load_trials(exp))
        if args.test is not None:  # checked before anything is written or looked at
            check_test_count(args.test, n_trials, args.yes)
        if args.alarms is not None and not 1 <= args.alarms <= max(n_trials, 1):
            raise ConfigError(f"--alarms must be between 1 and the number of trials ({n_trials}), got {args.alarms}")
        res = show_leaderboard(exp, tuple(args.rank_by.split(",")), args.out, alarms=args.alarms, alarm_cfg=cfg,
                               alarm_cases=args.alarm_cases)
        if args.test is not None:
            from hypo.evaluate.testsplit.top_trials import score_top_trials

            if res["status"]["partial"]:
                print(f"{prog}: warning: the search is partial; the test look ranks unfinished trials",
                      file=sys.stderr)
            res["test"] = score_top_trials(exp, res["frame"], args.test, out_dir=args.out,
                                          alarms=None if args.no_alarms else cfg, alarm_cases=args.alarm_cases)
        return res
