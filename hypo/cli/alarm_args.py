"""The alarm-evaluation options shared by ``hypo report``, ``hypo leaderboard`` (and ``hypo evaluate --alarms``).

Usage::

    p = OneLineParser(...)
    add_alarm_arguments(p)
    args = p.parse_args(argv)
    cfg = alarm_config(args)                      # an AlarmConfig (ConfigError, one line, on a bad value)
    alarm_flags_given(args)                       # the alarm options the user set, to refuse them where unused
"""

from __future__ import annotations

import argparse

from hypo.cli.cuff_args import CUFF_FLAGS, add_cuff_arguments, cuff_schedule
from hypo.errors import ConfigError
from hypo.evaluate.alarms.metrics import AlarmConfig

DEFAULTS = AlarmConfig()
# option -> (attribute, default): None in the parser, so that a flag the user gave can be told from its default
_OPTIONS = {
    "--alarm-stride": ("alarm_stride", DEFAULTS.stride_s),
    "--alarm-cases": ("alarm_cases", None),
    "--alarm-m": ("alarm_m", DEFAULTS.m),
    "--alarm-hysteresis": ("alarm_hysteresis", DEFAULTS.hysteresis),
    "--alarm-max-gap": ("alarm_max_gap", DEFAULTS.max_gap_s),
    "--alarm-fa-target": ("alarm_fa_target", DEFAULTS.fa_target_per_h),
    "--alarm-sens-target": ("alarm_sens_target", DEFAULTS.sens_target),
    "--alarm-lead-max": ("alarm_lead_max", DEFAULTS.lead_max_s // 60),
    "--alarm-lead-min": ("alarm_lead_min", DEFAULTS.lead_min_s // 60),
    "--alarm-horizon": ("alarm_horizon", None),
}


def add_alarm_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--alarm-stride``, ``--alarm-cases`` and the policy and scoring options (defaults of AlarmConfig)."""
    d = {flag: default for flag, (_, default) in _OPTIONS.items()}
    g = p.add_argument_group("alarm evaluation (whole recordings replayed; thresholds fixed on validation)")
    g.add_argument("--alarm-stride", type=int, default=None, metavar="S",
                   help=f"seconds between predictions along each recording (default: {d['--alarm-stride']})")
    g.add_argument("--alarm-cases", type=int, default=None, metavar="N",
                   help="score at most N recordings per split (a deterministic subsample; default: all)")
    g.add_argument("--alarm-m", type=int, default=None, metavar="M",
                   help=f"consecutive predictions >= threshold that start an alarm (default: {d['--alarm-m']})")
    g.add_argument("--alarm-hysteresis", type=float, default=None, metavar="H",
                   help=f"an alarm ends below threshold - H (default: {d['--alarm-hysteresis']})")
    g.add_argument("--alarm-max-gap", type=int, default=None, metavar="S",
                   help="missing predictions for up to S seconds hold an alarm's state; a longer gap ends it "
                        f"(default: {d['--alarm-max-gap']})")
    g.add_argument("--alarm-fa-target", type=float, default=None, metavar="PER_H",
                   help="false alarms per hour of the first threshold chosen on validation (default: "
                        f"{d['--alarm-fa-target']})")
    g.add_argument("--alarm-sens-target", type=float, default=None, metavar="SHARE",
                   help="episode sensitivity of the second threshold chosen on validation (default: "
                        f"{d['--alarm-sens-target']})")
    g.add_argument("--alarm-lead-max", type=int, default=None, metavar="MIN",
                   help=f"earliest warning that counts, minutes before onset (default: {d['--alarm-lead-max']})")
    g.add_argument("--alarm-lead-min", type=int, default=None, metavar="MIN",
                   help=f"latest warning that counts, minutes before onset (default: {d['--alarm-lead-min']})")
    g.add_argument("--alarm-horizon", type=int, default=None, metavar="S",
                   help="the models' alarm score is their risk of hypotension by S seconds (a horizon of a model "
                        "with per-horizon risks and of the dataset, --horizons); the baselines, the episodes and "
                        "--alarm-lead-max stay as they are (default: p(hypotension) at the primary horizon)")
    add_cuff_arguments(g, "the replayed recordings' cuff readings")


def alarm_flags_given(args: argparse.Namespace) -> list[str]:
    """The alarm options given on the command line (so a command can refuse them where nothing uses them)."""
    options = {**{flag: attr for flag, (attr, _) in _OPTIONS.items()}, **CUFF_FLAGS}
    return [flag for flag, attr in options.items() if getattr(args, attr, None) is not None]


def refuse_unused_alarm_flags(args: argparse.Namespace, why: str) -> None:
    """Refuse alarm options that nothing will use, in one line ending with ``why``.

    Raises:
        ConfigError: When any alarm option was given.
    """
    given = alarm_flags_given(args)
    if given:
        raise ConfigError(f"{', '.join(given)} {'sets' if len(given) == 1 else 'set'} the alarm evaluation, "
                          f"which {why}")


def alarm_config(args: argparse.Namespace) -> AlarmConfig:
    """The AlarmConfig of parsed arguments (:func:`add_alarm_arguments`).

    Raises:
        ConfigError: A value out of range, naming its flag.
    """
    v = {attr: default if getattr(args, attr, None) is None else getattr(args, attr)
         for attr, default in _OPTIONS.values()}
    if v["alarm_cases"] is not None and v["alarm_cases"] < 1:
        raise ConfigError(f"--alarm-cases must be >= 1, got {v['alarm_cases']}")
    return AlarmConfig(stride_s=v["alarm_stride"], m=v["alarm_m"], hysteresis=v["alarm_hysteresis"],
                       max_gap_s=v["alarm_max_gap"], fa_target_per_h=v["alarm_fa_target"],
                       sens_target=v["alarm_sens_target"], lead_max_s=60 * v["alarm_lead_max"],
                       lead_min_s=60 * v["alarm_lead_min"], cuff_from_art=cuff_schedule(args),
                       horizon_s=v["alarm_horizon"])
