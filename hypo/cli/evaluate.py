"""``hypo evaluate``: a frozen model on a dataset from another source, optionally recalibrated there.

    hypo evaluate model.pt --data data/site-b
    hypo evaluate runs/NAME --data data/site-b --recalibrate temperature --write-export model-b.pt

    hypo evaluate model.pt --data data/site-b --alarms        # also as an alarm on site B's test recordings
    hypo evaluate --shadow serve-log --recordings recordings/   # a silent trial: the logged alarms, scored

The work is :func:`hypo.evaluate.external.job.evaluate_job` (the external evaluation and, with ``--alarms``, the
alarm evaluation) and :func:`hypo.evaluate.alarms.shadow.shadow_evaluation` (``--shadow``); this is their
command-line front.
"""

from __future__ import annotations

from hypo.cli.alarm_args import add_alarm_arguments, alarm_config, refuse_unused_alarm_flags
from hypo.errors import ConfigError
from hypo.evaluate.external.job import THRESHOLDS_FROM_MODEL, EvaluateRequest, evaluate_job
from hypo.evaluate.external.result import ExternalRun
from hypo.evaluate.external.validation import CALIBRATION_SHARE, N_BOOT
from hypo.learn.recalibration import METHODS
from hypo.runtime import OneLineParser, one_line_errors

PROG = "hypo evaluate"


def build_parser(prog: str = PROG) -> OneLineParser:
    """The options of ``hypo evaluate``."""
    p = OneLineParser(prog=prog, description="Score a frozen model on a window dataset from another source "
                                             "(external validation), optionally recalibrated on a share of its "
                                             "subjects. No retraining.")
    p.add_argument("model_or_run", metavar="MODEL_OR_RUN", nargs="?",
                   help="an exported model.pt (hypo export), or a search's experiment folder (its leaderboard's "
                        "first trial, or --trial)")
    p.add_argument("--data", metavar="OTHER",
                   help="window dataset built from another source (hypo windows ... --out OTHER); all its splits "
                        "are pooled")
    p.add_argument("--trial", default=None, help="trial id of an experiment folder (default: the leaderboard's first)")
    p.add_argument("--recalibrate", choices=METHODS, default="none",
                   help="fit a recalibration map on a share of OTHER's subjects and report before and after on the "
                        "rest: temperature scaling of the logits, vector scaling of the log-probabilities, or "
                        "isotonic per class (renormalised)")
    p.add_argument("--calibration-share", type=float, default=None,
                   help=f"share of OTHER's subjects the map is fitted on (default {CALIBRATION_SHARE})")
    p.add_argument("--write-export", default=None, metavar="MODEL_PT",
                   help="write the recalibrated model (the map inside the TorchScript file; hypo predict applies it)")
    p.add_argument("--bootstrap", type=int, default=N_BOOT, help="bootstrap replicates over subjects")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration split and the bootstrap")
    p.add_argument("--out", default="evaluation", help="folder for evaluation.json, evaluation.md and the figures")
    p.add_argument("--alarms", action="store_true",
                   help="also score the frozen model as an alarm on OTHER's test recordings (hypo report's alarm "
                        "section: episodes caught, lead time, false alarms per hour; the baselines beside it)")
    p.add_argument("--alarm-thresholds-from", default=None, metavar="model|other|DIR",
                   help="where the alarm thresholds are fixed: model (default: the validation split of the dataset "
                        "the model was developed on, as deployed), other (OTHER's own validation split: a local "
                        "threshold, reported as such), or a dataset folder's validation split")
    p.add_argument("--exclude-in-hypotension", action="store_true",
                   help="also show the hypotension figures without the windows whose last cuff reading is already "
                        "below the threshold, beside the full ones (the headline; evaluation.json always has both)")
    add_alarm_arguments(p)
    g = p.add_argument_group("a silent trial (instead of MODEL_OR_RUN and --data)")
    g.add_argument("--shadow", metavar="LOGDIR", default=None,
                   help="score the predictions and alarms hypo serve logged in LOGDIR (as logged, not recomputed) "
                        "against events from --recordings, in the alarm evaluation's table")
    g.add_argument("--recordings", metavar="FOLDER", default=None,
                   help="the rooms' .vital recordings (ROOM.vital, as hypo replay names rooms)")
    g.add_argument("--track-map", default=None, help="JSON track map of the recordings, as for .vital folders")
    return p


def shadow(args) -> None:
    """``hypo evaluate --shadow LOGDIR --recordings FOLDER``: the silent trial's table, written to ``--out``."""
    import os

    from hypo.data.sources.vital import load_track_map
    from hypo.evaluate.alarms.result import format_alarm_table
    from hypo.evaluate.alarms.shadow import shadow_evaluation
    from hypo.storage import writable_folder

    given = [f for f, v in (("MODEL_OR_RUN", args.model_or_run), ("--data", args.data), ("--alarms", args.alarms),
                            ("--trial", args.trial), ("--write-export", args.write_export),
                            ("--alarm-thresholds-from", args.alarm_thresholds_from),
                            ("--alarm-stride", args.alarm_stride), ("--alarm-m", args.alarm_m),
                            ("--alarm-hysteresis", args.alarm_hysteresis), ("--alarm-max-gap", args.alarm_max_gap),
                            ("--alarm-horizon", args.alarm_horizon),
                            ("--recalibrate", args.recalibrate != "none")) if v]
    if given:
        raise ConfigError(f"--shadow scores what the server logged (its model, threshold and policy); "
                          f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply")
    if not args.recordings:
        raise ConfigError("--shadow needs --recordings FOLDER (the rooms' .vital recordings)")
    writable_folder(args.out)
    cfg = alarm_config(args)
    result = shadow_evaluation(args.shadow, args.recordings, load_track_map(args.track_map) if args.track_map else None,
                               cfg, n_boot=args.bootstrap, seed=args.seed)
    print(format_alarm_table(result))
    path = result.write(os.path.join(args.out, "alarms_shadow.json"))
    print(f"wrote {path}")


def main(argv: list[str] | None = None, prog: str = PROG) -> ExternalRun | None:
    """Entry point of ``hypo evaluate``; user errors end in one line on stderr with status 2."""
    args = build_parser(prog).parse_args(argv)
    with one_line_errors(prog):
        if args.shadow is not None:
            return shadow(args)
        if args.recordings or args.track_map:
            raise ConfigError("--recordings and --track-map go with --shadow LOGDIR")
        if not args.model_or_run or not args.data:
            raise ConfigError("give MODEL_OR_RUN and --data OTHER (or --shadow LOGDIR --recordings FOLDER)")
        if not args.alarms:
            refuse_unused_alarm_flags(args, "runs only with --alarms")
            if args.alarm_thresholds_from is not None:
                raise ConfigError("--alarm-thresholds-from fixes the thresholds of --alarms; add --alarms")
        req = EvaluateRequest(
            model_or_run=args.model_or_run, data=args.data, trial=args.trial, recalibrate=args.recalibrate,
            calibration_share=args.calibration_share, seed=args.seed, n_boot=args.bootstrap,
            write_export=args.write_export, out=args.out, alarms=args.alarms,
            thresholds_from=args.alarm_thresholds_from or THRESHOLDS_FROM_MODEL, alarm=alarm_config(args),
            alarm_cases=args.alarm_cases, exclude_in_hypotension=args.exclude_in_hypotension)
        return evaluate_job(req)
