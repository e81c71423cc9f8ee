"""``hypo evaluate``: a frozen model on a dataset from another source, optionally recalibrated there.

    hypo evaluate model.pt --data data/site-b
    hypo evaluate runs/NAME --data data/site-b --recalibrate temperature --write-export model-b.pt

    hypo evaluate model.pt --data data/site-b --alarms        # also as an alarm on site B's test recordings

The work is :func:`hypo.evaluate.external.validation.evaluate_external` (and, with ``--alarms``,
:func:`hypo.evaluate.alarms.evaluation.alarm_evaluation`); this is its command-line front.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from hypo.cli.alarm_args import add_alarm_arguments, alarm_config
from hypo.evaluate.external.validation import CALIBRATION_SHARE, N_BOOT, Section, default_sections, evaluate_external
from hypo.learn.recalibration import METHODS
from hypo.runtime import OneLineParser, one_line_errors

PROG = "hypo evaluate"


def build_parser(prog: str = PROG) -> OneLineParser:
    """The options of ``hypo evaluate``."""
    p = OneLineParser(prog=prog, description="Score a frozen model on a window dataset from another source "
                                             "(external validation), optionally recalibrated on a share of its "
                                             "subjects. No retraining.")
    p.add_argument("model_or_run", metavar="MODEL_OR_RUN",
                   help="an exported model.pt (hypo export), or a search's experiment folder (its leaderboard's "
                        "first trial, or --trial)")
    p.add_argument("--data", required=True, metavar="OTHER",
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
    p.add_argument("--alarm-thresholds-from", default="model", metavar="model|other|DIR",
                   help="where the alarm thresholds are fixed: model (default: the validation split of the dataset "
                        "the model was developed on, as deployed), other (OTHER's own validation split: a local "
                        "threshold, reported as such), or a dataset folder's validation split")
    add_alarm_arguments(p)
    return p


def sections(args: argparse.Namespace) -> list[tuple[str, Section]]:
    """The sections reported on each evaluation set, in order.

    Each is ``(name, function)``; the function takes a :class:`~hypo.evaluate.external.validation.EvalSet` (the
    windows, the
    probabilities, the alarm thresholds that apply to them, OTHER's manifest, the model's sidecar) and returns a
    JSON-ready dict, stored under ``sections[name][stage]`` in ``evaluation.json``.
    """
    return default_sections(n_boot=args.bootstrap, seed=args.seed)


def development_data(model_or_run: str, trial: str | None = None) -> str:
    """The window dataset a model was developed on (its search's ``hypo_search.json``), for fixing alarm thresholds.

    Raises:
        HypoError: When it cannot be found or read from here.
    """
    from hypo.errors import HypoError
    from hypo.search.leaderboard import read_search_meta

    exp = model_or_run
    if os.path.isfile(model_or_run):
        from hypo.infer.export import load_exported

        _, sidecar = load_exported(model_or_run)
        exp = (sidecar.get("trial") or {}).get("experiment") or ""
    data = read_search_meta(exp).get("data") if exp and os.path.isdir(exp) else None
    if not data or not os.path.exists(os.path.join(data, "manifest.json")):
        raise HypoError("--alarms: the dataset this model was developed on is not readable here (its validation "
                        "split fixes the alarm thresholds as deployed); pass --alarm-thresholds-from DIR, or "
                        "--alarm-thresholds-from other for thresholds fixed on OTHER's validation split")
    return data


def alarm_thresholds(args: argparse.Namespace) -> tuple[str, str]:
    """``--alarm-thresholds-from`` resolved and checked (before any work): where the alarm thresholds are fixed.

    Returns:
        ``(thresholds_from, where)``: what :func:`~hypo.evaluate.alarms.evaluation.alarm_evaluation` takes
        (``"val"`` or a
        dataset folder) and how the result says it.

    Raises:
        HypoError: When the development dataset is not readable here, or DIR holds no window dataset (one line
            naming the flag).
    """
    from hypo.data.dataset import read_manifest
    from hypo.errors import ConfigError, HypoError

    source = args.alarm_thresholds_from
    if source == "other":
        return "val", "OTHER's own validation split (a local threshold, not the deployed one)"
    if source == "model":
        data = development_data(args.model_or_run, args.trial)
        return data, f"the development dataset's validation split ({data}), as deployed"
    try:
        read_manifest(source)
    except HypoError as exc:
        raise ConfigError(f"--alarm-thresholds-from: {exc}") from None
    return source, f"the validation split of {source}"


def alarm_section(args: argparse.Namespace, frozen=None, thresholds: tuple[str, str] | None = None,
                  log=print) -> dict[str, Any]:
    """``--alarms``: the frozen model and the baselines as alarms on OTHER's test recordings; also ``alarms.json``.

    Args:
        args: The parsed options.
        frozen: The :class:`~hypo.evaluate.frozen.FrozenModel` the external evaluation scored (loaded again from
            ``MODEL_OR_RUN`` when None).
        thresholds: :func:`alarm_thresholds` of ``args``, already resolved (resolved here when None).
        log: Where progress lines go.
    """
    import json

    from hypo.evaluate.alarms.evaluation import alarm_evaluation, format_alarm_table

    thresholds_from, where = thresholds if thresholds is not None else alarm_thresholds(args)
    model = frozen if frozen is not None else args.model_or_run
    result = alarm_evaluation(model, args.data, split="test", thresholds_from=thresholds_from,
                              stride_s=args.alarm_stride, max_cases=args.alarm_cases, config=alarm_config(args),
                              trial=args.trial, log=log)
    result["thresholds_fixed_on"] = where
    log(f"as an alarm on {args.data}'s test recordings (frozen model; thresholds fixed on {where}):")
    log(format_alarm_table(result))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "alarms.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def main(argv: list[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Entry point of ``hypo evaluate``; user errors end in one line on stderr with status 2."""
    args = build_parser(prog).parse_args(argv)
    with one_line_errors(prog):
        thresholds = None
        if args.alarms:  # checked before any work (a missing model is the evaluation's own one-line error)
            alarm_config(args)
            if args.alarm_thresholds_from != "model" or os.path.exists(args.model_or_run):
                thresholds = alarm_thresholds(args)
        result = evaluate_external(args.model_or_run, args.data, trial=args.trial, recalibrate=args.recalibrate,
                                   calibration_share=args.calibration_share, seed=args.seed, n_boot=args.bootstrap,
                                   write_export=args.write_export, out=args.out, sections=sections(args))
        if args.alarms:
            result["alarms"] = alarm_section(args, result["frozen"], thresholds)
        return result
