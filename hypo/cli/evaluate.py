"""``hypo evaluate``: a frozen model on a dataset from another source, optionally recalibrated there.

    hypo evaluate model.pt --data data/site-b
    hypo evaluate runs/NAME --data data/site-b --recalibrate temperature --write-export model-b.pt

The work is :func:`hypo.evaluate.external.evaluate_external`; this is its command-line front. The parser is built
in :func:`build_parser` and the reported sections listed by :func:`sections`, so further options and sections
(alarm scoring) slot in at the marked places.
"""

from __future__ import annotations

import argparse
from typing import Any

from hypo.evaluate.external import CALIBRATION_SHARE, N_BOOT, Section, default_sections, evaluate_external
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
    # ---- MERGE POINT (issue 13, alarm scoring): add `--alarms` (and its options) here; see sections() below ----
    return p


def sections(args: argparse.Namespace) -> list[tuple[str, Section]]:
    """The sections reported on each evaluation set, in order.

    Each is ``(name, function)``; the function takes a :class:`hypo.evaluate.external.EvalSet` (the windows, the
    probabilities, the alarm thresholds that apply to them, OTHER's manifest, the model's sidecar) and returns a
    JSON-ready dict, stored under ``sections[name][stage]`` in ``evaluation.json``.
    """
    out = default_sections(n_boot=args.bootstrap, seed=args.seed)
    # ---- MERGE POINT (issue 13, alarm scoring): `if args.alarms: out.append(("alarms", <its function of an
    #      EvalSet>))`; it is then computed before and after recalibration like the others ----
    return out


def main(argv: list[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Entry point of ``hypo evaluate``; user errors end in one line on stderr with status 2."""
    args = build_parser(prog).parse_args(argv)
    with one_line_errors(prog):
        return evaluate_external(args.model_or_run, args.data, trial=args.trial, recalibrate=args.recalibrate,
                                 calibration_share=args.calibration_share, seed=args.seed, n_boot=args.bootstrap,
                                 write_export=args.write_export, out=args.out, sections=sections(args))
