"""``hypo leaderboard`` (also ``python tune/leaderboard.py``): rank an experiment's trials; table, CSV, MD, PNG.

hypo leaderboard                      # the latest experiment under runs/ (the others are listed)
hypo leaderboard runs/search-20261124-120000 --test 3
hypo leaderboard runs/search-20261124-120000 --alarms 3    # the top 3 as alarms, on validation (no test look)

The work is :func:`hypo.evaluate.board.leaderboard`.
"""

from __future__ import annotations

from typing import Any

from hypo.cli.alarm_args import add_alarm_arguments, alarm_config, refuse_unused_alarm_flags
from hypo.errors import ConfigError
from hypo.evaluate.board import MAX_TEST_WITHOUT_YES, LeaderboardRequest, leaderboard
from hypo.learn.metrics import RANK_METRICS
from hypo.runtime import OneLineParser, one_line_errors
from hypo.search.experiments import DEFAULT_STORAGE

PROG = "hypo leaderboard"


def check_alarm_flags(args) -> None:
    """Refuse contradictory or unused alarm options in one line (nothing is silently ignored).

    Raises:
        ConfigError: ``--no-alarms`` with ``--alarms`` or alarm options, or without ``--test``; alarm options with
            neither ``--alarms`` nor ``--test``.
    """
    if args.no_alarms and args.alarms is not None:
        raise ConfigError("--alarms N scores alarms and --no-alarms leaves them out; give one of them")
    if args.no_alarms and args.test is None:
        raise ConfigError("--no-alarms leaves the alarm table out of --test N; without --test there is none")
    if args.no_alarms:
        refuse_unused_alarm_flags(args, "--no-alarms leaves out")
    elif args.alarms is None and args.test is None:
        refuse_unused_alarm_flags(args, "runs only with --alarms N or --test N")


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
    p.add_argument("--exclude-in-hypotension", action="store_true",
                   help="with --test: also the hypotension figures without the windows whose last cuff reading is "
                        "already below the threshold, beside the full ones (the headline)")
    add_alarm_arguments(p)
    args = p.parse_args(argv)
    with one_line_errors(prog):
        check_alarm_flags(args)
        if args.exclude_in_hypotension and args.test is None:
            raise ConfigError("--exclude-in-hypotension adds figures to the --test table; add --test N")
        return leaderboard(LeaderboardRequest(args.experiment, tuple(args.rank_by.split(",")), args.out, test=args.test,
                                              yes=args.yes, alarms=args.alarms, test_alarms=not args.no_alarms,
                                              alarm_cfg=alarm_config(args), alarm_cases=args.alarm_cases,
                                              exclude_in_hypotension=args.exclude_in_hypotension), prog=prog)
