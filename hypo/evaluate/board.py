"""``hypo leaderboard``: a search's leaderboard, its top trials as alarms, and one look at the test split.

``--alarms N`` scores the top trials as alarms on the validation split; ``--test N`` looks once at the test split.

    leaderboard(LeaderboardRequest("runs/search-20261124-120000", test=3))
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

from hypo.errors import ConfigError, HypoError
from hypo.learn.metrics import RANK_METRICS
from hypo.mirror import staged_out
from hypo.search.board import show_leaderboard
from hypo.search.experiments import experiment_folder, resolve_experiment
from hypo.search.leaderboard import load_trials

MAX_TEST_WITHOUT_YES = 5  # looking at more trials on test is selecting on test


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


def add_alarm_columns(df, exp_path: str, n: int, cfg, max_cases: int | None, out_dir: str, log=print):
    """``--alarms N``: the top N trials and the baselines as alarms on the validation split, as two columns.

    Returns:
        ``(frame with val_alarm_sensitivity / val_alarm_lead_min, its note lines, {"alarms": the
        ValidationAlarms of validation_alarms, "files": ["alarms_val.json"]})``. The figures are read off each
        row's own validation curve: selection-biased, marked so.
    """
    from hypo.evaluate.alarms.evaluation import validation_alarms
    from hypo.learn.baselines import ROW_PREFIX

    trials = [str(t) for t in df[df["rank"].notna()].head(n)["trial"]]
    res = validation_alarms(exp_path, trials, cfg, max_cases, log=log)
    df = df.copy()
    df["val_alarm_sensitivity"] = float("nan")
    df["val_alarm_lead_min"] = float("nan")
    for name, r in res.rows.items():
        mask = df["trial"].isin([name, ROW_PREFIX + name])
        df.loc[mask, "val_alarm_sensitivity"] = r.sensitivity if r.sensitivity is not None else float("nan")
        lead = r.lead_median_s
        df.loc[mask, "val_alarm_lead_min"] = lead / 60 if lead is not None else float("nan")
    res.write(os.path.join(out_dir, "alarms_val.json"), indent=1)
    lines = ["* " + res.note + "; the top rows only"]
    shown = set(df["trial"].astype(str))
    for name, r in res.rows.items():
        if name not in shown and ROW_PREFIX + name not in shown:  # the simulated frequent cuff, the comparators
            sens = "n/a" if r.sensitivity is None else f"{100 * r.sensitivity:.0f}%"
            det = "n/a" if r.detection is None else f"{100 * r.detection:.0f}%"
            ppv = "n/a" if r.ppv is None else f"{100 * r.ppv:.0f}%"
            how = "a fixed threshold" if r.fixed else "its threshold read off its own validation curve"
            lines.append(f"* {name} ({r.reads or 'cuff'}, validation): sensitivity {sens}, detected {det}, false "
                         f"alarms/h {r.fa_per_h or 0:.2f}, PPV {ppv} ({how})")
    if res.cases.failed:
        lines.append(f"* {res.cases.failed} validation recordings could not be scored")
    return df, lines, {"alarms": res, "files": ["alarms_val.json"]}


@dataclasses.dataclass(frozen=True)
class LeaderboardRequest:
    """What ``hypo leaderboard`` was asked to do (see its ``--help`` for each option).

    Attributes:
        experiment: The experiment folder, or a folder of experiments (its latest; default ``runs/``).
        rank_by: Ranking metrics, highest first.
        out_dir: Where the files go (default: the experiment folder).
        test: ``--test N``: the top N trials once on the test split (N above 5 needs ``yes``).
        yes: Allow ``test`` above :data:`MAX_TEST_WITHOUT_YES`.
        alarms: ``--alarms N``: the top N trials and the baselines as alarms on the validation split.
        test_alarms: With ``test``: include the alarm table of the test recordings.
        alarm_cfg: The alarm config (:class:`~hypo.evaluate.alarms.metrics.AlarmConfig`).
        alarm_cases: At most this many recordings for the alarms.
        exclude_in_hypotension: With ``test``: the hypotension figures also without the windows whose last cuff
            reading is already below the threshold, beside the full ones.
    """

    experiment: str | None = None
    rank_by: tuple[str, ...] = RANK_METRICS
    out_dir: str | None = None
    test: int | None = None
    yes: bool = False
    alarms: int | None = None
    test_alarms: bool = True
    alarm_cfg: Any = None
    alarm_cases: int | None = None
    exclude_in_hypotension: bool = False


def leaderboard(req: LeaderboardRequest, log=print, prog: str = "hypo leaderboard") -> dict[str, Any]:
    """Show an experiment's leaderboard; optionally its top trials as alarms and one look at the test split.

    Args:
        req: The experiment, ranking, output folder, ``--test``, ``--alarms`` and the alarm settings.
        log: Where the lines go.
        prog: The command, first on a warning line.

    Returns:
        What :func:`hypo.search.board.show_leaderboard` returns, with ``"alarms"`` and ``"test"`` when asked.

    Raises:
        ConfigError: A count out of range, before anything is written or looked at.
    """
    with experiment_folder(resolve_experiment(req.experiment, log=log), log) as (exp, log), \
            staged_out(req.out_dir, log) as (out_dir, log):
        return _leaderboard(exp, dataclasses.replace(req, out_dir=out_dir), log, prog)


def _horizon_board(exp: str, res: dict[str, Any], out_dir: str, log) -> None:
    """A multi-horizon dataset: the top trial and the baselines by each horizon on validation (table, PNG)."""
    from hypo.data.dataset import read_manifest
    from hypo.evaluate.horizons import horizon_section, top_checkpoints
    from hypo.search.experiments import experiment_dataset

    data_dir = experiment_dataset(exp, required=False)
    try:
        if data_dir is None or read_manifest(data_dir).horizons is None:
            return
    except HypoError:  # the dataset moved or went: the board itself needs none
        return
    text = horizon_section(data_dir, "val", top_checkpoints(exp, res["frame"], 1), out_dir)
    res["horizons"] = text
    log(text)


def _leaderboard(exp: str, req: LeaderboardRequest, log, prog: str) -> dict[str, Any]:
    """:func:`leaderboard` of a local experiment folder, its files into the local ``req.out_dir``."""
    n_trials = len(load_trials(exp))
    check_test_count(req.test, n_trials, req.yes)
    if req.alarms is not None and not 1 <= req.alarms <= max(n_trials, 1):
        raise ConfigError(f"--alarms must be between 1 and the number of trials ({n_trials}), got {req.alarms}")
    decorate = None
    if req.alarms:
        def decorate(df, out):
            return add_alarm_columns(df, exp, req.alarms, req.alarm_cfg, req.alarm_cases, out, log)
    res = show_leaderboard(exp, req.rank_by, req.out_dir, log=log, decorate=decorate)
    _horizon_board(exp, res, req.out_dir or exp, log)
    if req.test is not None:
        from hypo.evaluate.testsplit.top_trials import score_top_trials

        if res["status"]["partial"]:
            print(f"{prog}: warning: the search is partial; the test look ranks unfinished trials", file=sys.stderr)
        res["test"] = score_top_trials(exp, res["frame"], req.test, out_dir=req.out_dir,
                                       alarms=req.alarm_cfg if req.test_alarms else None,
                                       alarm_cases=req.alarm_cases,
                                       exclude_in_hypotension=req.exclude_in_hypotension)
    return res
