"""``hypo export``: a search's trial as a self-contained TorchScript model with its JSON sidecar.

    hypo export runs/hypo-search --out model.pt               # the leaderboard's first trial
    hypo export runs/hypo-search --out model.pt --trial 3f2a_00001
    hypo export runs/hypo-search --out model.pt --alarm-m 3 --alarm-fa-target 0.5   # another alarm policy

The export stores the alarm policy ``hypo serve`` runs: the threshold fixed on the validation recordings (the alarm
evaluation's replay) at the false-alarm target, with ``m``, the hysteresis, the max gap and the stride it was
scored under (``--alarm-*``, defaults as ``hypo report``'s; ``--no-alarm-policy`` stores none). With
``--alarm-horizon S`` (a model with per-horizon risks) it is fixed on the risk of hypotension by S and the policy
records ``horizon_s``, the column ``hypo serve`` then scores. The format is
:mod:`hypo.infer.export`; choosing and exporting a trial is :mod:`hypo.evaluate.export_trial`.
"""

from __future__ import annotations

from hypo.cli.alarm_args import add_alarm_arguments, alarm_config, refuse_unused_alarm_flags
from hypo.evaluate.export_job import export_model
from hypo.infer.sidecar import Sidecar
from hypo.learn.operating_point import SPECIFICITY
from hypo.runtime import OneLineParser, one_line_errors

PROG = "hypo export"


def main(argv: list[str] | None = None, prog: str = PROG) -> Sidecar:
    """Entry point of ``hypo export``; user errors end in one line on stderr with status 2."""
    p = OneLineParser(prog=prog, description="Export a trial as TorchScript + JSON sidecar.")
    p.add_argument("experiment", help="experiment folder of a hypo search (storage/name)")
    p.add_argument("--out", default="model.pt", help="TorchScript file to write (sidecar: same name, .json)")
    p.add_argument("--trial", default=None, help="trial id (default: the leaderboard's first)")
    p.add_argument("--specificity", type=float, default=SPECIFICITY,
                   help="specificity of the window operating point's thresholds, fixed on the validation split")
    p.add_argument("--no-alarm-policy", action="store_true",
                   help="store no alarm policy (hypo serve then needs --threshold, or runs the window operating "
                        "point's threshold with the default policy, and says so)")
    add_alarm_arguments(p)
    args = p.parse_args(argv)
    with one_line_errors(prog):
        if args.no_alarm_policy:
            refuse_unused_alarm_flags(args, "--no-alarm-policy leaves out")
        alarm = None if args.no_alarm_policy else alarm_config(args)
        return export_model(args.experiment, args.out, args.trial, args.specificity, alarm=alarm,
                            alarm_cases=args.alarm_cases)
