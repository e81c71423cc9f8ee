"""``--cuff-from-art``, ``--cuff-error``, ``--cuff-inflation``: a cuff simulated from the arterial line.

Shared by ``hypo windows`` (the dataset's NIBP readings replaced) and the alarm replays (``hypo leaderboard
--alarms``, ``hypo report``, ``hypo evaluate --alarms``, ``hypo export``: the replayed recordings' cuff replaced).
The simulation is :func:`hypo.data.cuff.simulate_readings`.
"""

from __future__ import annotations

import argparse

from hypo.config import CUFF_ERRORS, INFLATION_S, CuffModel, CuffSchedule
from hypo.errors import ConfigError

CUFF_FLAGS = {"--cuff-from-art": "cuff_from_art", "--cuff-error": "cuff_error", "--cuff-inflation": "cuff_inflation"}


def add_cuff_arguments(p, what: str) -> None:
    """Add the simulated-cuff options to a parser or argument group; ``what`` says what the cuff replaces."""
    p.add_argument("--cuff-from-art", type=int, default=None, metavar="INTERVAL",
                   help=f"replace {what} by a cuff SIMULATED from the arterial line every INTERVAL seconds "
                        "(needs ART labels; the labels stay those of the line)")
    p.add_argument("--cuff-error", choices=CUFF_ERRORS, default=None,
                   help="with --cuff-from-art: published (default; the oscillometric bias and SD per pressure of "
                        "Ribezzo et al. 2014) or none (an ideal cuff)")
    p.add_argument("--cuff-inflation", type=int, default=None, metavar="S",
                   help=f"with --cuff-from-art: seconds one inflation takes; it reports at its end (default "
                        f"{INFLATION_S})")


def cuff_schedule(args: argparse.Namespace) -> CuffSchedule | None:
    """The schedule the options describe, or None without ``--cuff-from-art``.

    Raises:
        ConfigError: ``--cuff-error`` or ``--cuff-inflation`` without ``--cuff-from-art``, or a value out of range.
    """
    if getattr(args, "cuff_from_art", None) is None:
        given = [flag for flag, attr in CUFF_FLAGS.items() if getattr(args, attr, None) is not None]
        if given:
            one = len(given) == 1
            raise ConfigError(f"{' and '.join(given)} {'describes' if one else 'describe'} the cuff simulated with "
                              f"--cuff-from-art INTERVAL; add it or leave {'it' if one else 'them'} out")
        return None
    cuff = CuffModel(inflation_s=INFLATION_S if args.cuff_inflation is None else args.cuff_inflation,
                     error=args.cuff_error or "published")
    return CuffSchedule(interval_s=args.cuff_from_art, cuff=cuff)
