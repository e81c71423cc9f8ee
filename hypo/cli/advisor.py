"""``hypo advisor``: a model that asks for a cuff reading, simulated closed-loop on recordings with an arterial line.

    hypo advisor runs/demo-art --out runs/demo-art/advisor                  # budget 2 extra inflations/h
    hypo advisor model.pt --data data/demo-art --budget 1 --cuff-error none

The work is :func:`hypo.evaluate.advisor.job.advisor_job`; this is its command-line front.
"""

from __future__ import annotations

from typing import Any

from hypo.config import CUFF_ERRORS, INFLATION_S
from hypo.errors import ConfigError
from hypo.evaluate.advisor.closed_loop import BASE_INTERVAL_S, MIN_SPACING_S, STRIDE_S, LoopConfig
from hypo.evaluate.advisor.job import SCHEDULES_S, TREND_LEVELS, AdvisorRequest, advisor_job
from hypo.evaluate.advisor.scoring import BUDGET_PER_H
from hypo.runtime import OneLineParser, one_line_errors

PROG = "hypo advisor"


def _numbers(text: str, kind=int) -> tuple:
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}") from None


def main(argv: list[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Entry point of ``hypo advisor``; user errors end in one line on stderr with status 2."""
    p = OneLineParser(prog=prog, description="Simulate a model that asks for a cuff reading (closed-loop, cuff "
                                             "readings simulated from the arterial line) against fixed schedules "
                                             "and a trend trigger; detection delay against extra inflations/h.")
    p.add_argument("model", help="a model.pt (hypo export) or a search's experiment folder (runs/NAME)")
    p.add_argument("--data", default=None, help="window dataset with ART labels (default: the experiment's)")
    p.add_argument("--trial", default=None, help="trial id of an experiment (default: the leaderboard's first)")
    p.add_argument("--out", required=True, help="output folder: advisor.md, advisor.json, advisor.png")
    p.add_argument("--budget", type=float, default=BUDGET_PER_H,
                   help=f"extra inflations per hour allowed on validation (default {BUDGET_PER_H:g})")
    p.add_argument("--base-interval", type=int, default=BASE_INTERVAL_S,
                   help=f"the fixed schedule the advisor adds to, s (default {BASE_INTERVAL_S})")
    p.add_argument("--stride", type=int, default=STRIDE_S, help=f"seconds between decisions (default {STRIDE_S})")
    p.add_argument("--min-spacing", type=int, default=MIN_SPACING_S,
                   help=f"a request at least this long after the last inflation began, s (default {MIN_SPACING_S})")
    p.add_argument("--inflation", type=int, default=INFLATION_S,
                   help=f"seconds an inflation takes; it reports at its end (default {INFLATION_S})")
    p.add_argument("--cuff-error", choices=CUFF_ERRORS, default="published", help="the simulated cuff's error")
    p.add_argument("--schedules", default=",".join(map(str, SCHEDULES_S)), help="fixed schedules, s")
    p.add_argument("--trend-levels", default=",".join(f"{v:g}" for v in TREND_LEVELS),
                   help="trend trigger levels, mmHg")
    p.add_argument("--thresholds", type=int, default=16, help="advisor thresholds in the grid (default 16)")
    p.add_argument("--cases", type=int, default=None, help="at most this many recordings per split")
    p.add_argument("--bootstrap", type=int, default=1000, help="subject-bootstrap replicates (0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cuff's error draws")
    args = p.parse_args(argv)
    with one_line_errors(prog):
        loop = LoopConfig(base_interval_s=args.base_interval, stride_s=args.stride, min_spacing_s=args.min_spacing,
                          inflation_s=args.inflation, cuff_error=args.cuff_error, seed=args.seed)
        req = AdvisorRequest(model=args.model, out=args.out, data=args.data, trial=args.trial, loop=loop,
                             budget_per_h=args.budget, schedules=_numbers(args.schedules),
                             trend_levels=_numbers(args.trend_levels, float), n_thresholds=args.thresholds,
                             max_cases=args.cases, n_boot=args.bootstrap)
        return advisor_job(req)
