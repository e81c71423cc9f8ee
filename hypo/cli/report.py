"""``hypo report``: one trial evaluated once on the test split, as a self-contained HTML page.

    hypo report runs/hypo-search                  # the leaderboard's first trial
    hypo report runs/hypo-search --trial 3f2a_00001 --out report/ --bootstrap 1000
    hypo report runs/hypo-search --alarm-cases 50 --alarm-stride 30   # a quicker alarm section
    hypo report runs/hypo-search --no-alarms                         # windows only

The evaluation is :func:`hypo.evaluate.testsplit.report.make_report`; this is its command-line front.
"""

from __future__ import annotations

import argparse
from typing import Any

from hypo.cli.alarm_args import add_alarm_arguments, alarm_config, refuse_unused_alarm_flags
from hypo.evaluate.testsplit.report import N_BOOT, ReportRequest, make_report
from hypo.learn.operating_point import SPECIFICITY
from hypo.runtime import OneLineParser, one_line_errors

PROG = "hypo report"


def parse_args(argv: list[str] | None = None, prog: str = PROG) -> argparse.Namespace:
    """Command-line arguments of ``hypo report``."""
    p = OneLineParser(prog=prog, description="Evaluate one trial once on the test split and "
                      "write a self-contained HTML report.")
    p.add_argument("experiment", help="experiment folder of a hypo search (storage/name)")
    p.add_argument("--trial", default=None, help="trial id (default: the leaderboard's first)")
    p.add_argument("--out", default=None, help="output folder (default: EXPERIMENT/report)")
    p.add_argument("--bootstrap", type=int, default=N_BOOT, help="bootstrap replicates over subjects")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--specificity", type=float, default=SPECIFICITY,
                   help="specificity of the alarm thresholds (operating point) and of the reported sensitivity")
    p.add_argument("--no-alarms", action="store_true",
                   help="leave out the alarm section (the test recordings replayed end to end)")
    p.add_argument("--exclude-in-hypotension", action="store_true",
                   help="also show the hypotension figures without the windows whose last cuff reading is already "
                        "below the threshold, beside the full ones (the headline; report.json always has both)")
    p.add_argument("--advisor", action="store_true",
                   help="with ART labels: also simulate a model that asks for a cuff reading, closed-loop (hypo "
                        "advisor's defaults; --alarm-cases recordings per split)")
    add_alarm_arguments(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Entry point of ``hypo report``; user errors end in one line on stderr with status 2."""
    args = parse_args(argv, prog)
    with one_line_errors(prog):
        if args.no_alarms:
            refuse_unused_alarm_flags(args, "--no-alarms leaves out")
        alarms = None if args.no_alarms else alarm_config(args)
        return make_report(ReportRequest(args.experiment, args.trial, args.out, args.bootstrap, args.seed,
                                         args.specificity, alarms=alarms, alarm_cases=args.alarm_cases,
                                         exclude_in_hypotension=args.exclude_in_hypotension,
                                         advisor=args.advisor))
