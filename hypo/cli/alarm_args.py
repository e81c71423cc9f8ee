"""The alarm-evaluation options shared by ``hypo report``, ``hypo leaderboard`` (and ``hypo evaluate --alarms``).

Usage::

    p = OneLineParser(...)
    add_alarm_arguments(p)
    cfg = alarm_config(p.parse_args(argv))        # an AlarmConfig (ConfigError, one line, on a bad value)
"""

from __future__ import annotations

import argparse

from hypo.evaluate.alarms.metrics import AlarmConfig

DEFAULTS = AlarmConfig()


def add_alarm_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--alarm-stride``, ``--alarm-cases`` and the policy and scoring options (defaults of AlarmConfig)."""
    g = p.add_argument_group("alarm evaluation (whole recordings replayed; thresholds fixed on validation)")
    g.add_argument("--alarm-stride", type=int, default=DEFAULTS.stride_s, metavar="S",
                   help="seconds between predictions along each recording (default: %(default)s)")
    g.add_argument("--alarm-cases", type=int, default=None, metavar="N",
                   help="score at most N recordings per split (a deterministic subsample; default: all)")
    g.add_argument("--alarm-m", type=int, default=DEFAULTS.m, metavar="M",
                   help="consecutive predictions >= threshold that start an alarm (default: %(default)s)")
    g.add_argument("--alarm-hysteresis", type=float, default=DEFAULTS.hysteresis, metavar="H",
                   help="an alarm ends below threshold - H (default: %(default)s)")
    g.add_argument("--alarm-max-gap", type=int, default=DEFAULTS.max_gap_s, metavar="S",
                   help="missing predictions for up to S seconds hold an alarm's state; a longer gap ends it "
                        "(default: %(default)s)")
    g.add_argument("--alarm-fa-target", type=float, default=DEFAULTS.fa_target_per_h, metavar="PER_H",
                   help="false alarms per hour of the first threshold chosen on validation (default: %(default)s)")
    g.add_argument("--alarm-sens-target", type=float, default=DEFAULTS.sens_target, metavar="SHARE",
                   help="episode sensitivity of the second threshold chosen on validation (default: %(default)s)")
    g.add_argument("--alarm-lead-max", type=int, default=DEFAULTS.lead_max_s // 60, metavar="MIN",
                   help="earliest warning that counts, minutes before onset (default: %(default)s)")
    g.add_argument("--alarm-lead-min", type=int, default=DEFAULTS.lead_min_s // 60, metavar="MIN",
                   help="latest warning that counts, minutes before onset (default: %(default)s)")


def alarm_config(args: argparse.Namespace) -> AlarmConfig:
    """The AlarmConfig of parsed arguments (:func:`add_alarm_arguments`).

    Raises:
        ConfigError: A value out of range, naming its flag.
    """
    from hypo.errors import ConfigError

    if args.alarm_cases is not None and args.alarm_cases < 1:
        raise ConfigError(f"--alarm-cases must be >= 1, got {args.alarm_cases}")
    return AlarmConfig(stride_s=args.alarm_stride, m=args.alarm_m, hysteresis=args.alarm_hysteresis,
                       max_gap_s=args.alarm_max_gap,
                       fa_target_per_h=args.alarm_fa_target, sens_target=args.alarm_sens_target,
                       lead_max_s=60 * args.alarm_lead_max, lead_min_s=60 * args.alarm_lead_min)
