"""``hypo windows`` (also ``python preprocessing/build_windows.py``): build the window dataset with Ray Data.

    hypo windows --source demo --cases 200 --out data/demo
    hypo windows --source demo --site b --cases 200 --out data/site-b       # a second simulated hospital
    hypo windows --source vital-dir --path /data/vital --out data/hospital
    hypo windows --source vitaldb --cases 500 --cache ~/.cache/hypo --out s3://bucket/w
    hypo windows --source demo --label-source art --cuff-from-art 150 --out data/cuff150   # a simulated cuff
    hypo windows --source demo --cases 40 --horizons 60,180,300,600,900 --out data/horizons   # a label per horizon

The work is :func:`hypo.data.windows_job.windows_job` (the Ray Data job: :func:`hypo.data.preprocess.build_windows`);
this is its command-line front.
"""

from __future__ import annotations

import argparse
import re

from hypo.cli.cuff_args import add_cuff_arguments, cuff_schedule
from hypo.config import CUFF_MODE, CUFF_TOLERANCE_S, NIBP_MERGE_S, FillConfig, LabelConfig, SplitConfig, WindowConfig
from hypo.data.manifest import Manifest
from hypo.data.signals import MAY_BE_MISSING, parse_groups
from hypo.data.sources.factory import SOURCE_NAMES, spec_from_flags
from hypo.data.windows_job import WindowsRequest, windows_job
from hypo.errors import ConfigError
from hypo.runtime import OneLineParser, one_line_errors

PROG = "hypo windows"
DEFAULT_HORIZON_S = 300


def parse_args(argv: list[str] | None = None, prog: str = PROG) -> argparse.Namespace:
    """Command-line arguments of ``hypo windows`` (``preprocessing/build_windows.py``)."""
    p = OneLineParser(
        prog=prog,
        description="Turn surgical cases into sharded, labelled, subject-split Parquet windows (Ray Data).",
    )
    p.add_argument("--source", required=True, choices=SOURCE_NAMES, help="where cases come from")
    p.add_argument("--out", required=True, help="output folder (local path or s3://...)")
    p.add_argument("--cases", type=int, default=None, help="number of cases (demo: default 200; vitaldb: all)")
    p.add_argument("--seed", type=int, default=0, help="demo simulator seed")
    p.add_argument("--site", choices=("a", "b"), default=None,
                   help="demo: the simulated hospital, a (default) or b (another monitor and patient mix, for "
                        "hypo evaluate)")
    p.add_argument("--path", help="vital-dir: folder of .vital files")
    p.add_argument("--track-map", help="vital-dir: JSON file mapping signal names to track names")
    p.add_argument("--subjects", help="vital-dir: CSV with columns caseid,subjectid")
    p.add_argument("--cache", help="vitaldb: download cache folder (local or s3://...)")
    p.add_argument("--api-url", help="vitaldb: API address (default api.vitaldb.net or $HYPO_VITALDB_URL)")
    p.add_argument("--window", type=int, default=60, help="window length in seconds")
    p.add_argument("--stride", type=int, default=60, help="seconds between window starts")
    p.add_argument("--horizon", type=int, default=None,
                   help=f"seconds from window end to the labelled pressure (default {DEFAULT_HORIZON_S}); with "
                        "--horizons: the primary horizon, whose labels decide which windows are kept")
    p.add_argument("--horizons", default=None, metavar="S,S,...",
                   help="several horizons (seconds, e.g. 60,180,300,600,900): each window also carries its label at "
                        f"each, by the same rule (-1 where missing); the primary (--horizon, default "
                        f"{DEFAULT_HORIZON_S}) must be among them")
    p.add_argument("--label-source", choices=("cuff", "art"), default="cuff",
                   help="cuff: label from cuff readings; art: from the invasive arterial line (the minute centred "
                        "on end + horizon; inputs stay the 7 non-invasive signals)")
    p.add_argument("--label-mode", choices=("reading", "ffill"), default=None,
                   help="cuff labels: reading (default; honest: a cuff reading after the window end) or ffill "
                        "(the paper's carry-forward)")
    p.add_argument("--tolerance", type=int, default=None,
                   help=f"cuff reading mode: max seconds from end + horizon (default {CUFF_TOLERANCE_S})")
    p.add_argument("--hypo-map", type=float, default=65.0, help="hypotension: MAP below this (mmHg)")
    p.add_argument("--hyper-sbp", type=float, default=160.0, help="hypertension: SBP above this (mmHg)")
    p.add_argument("--min-case", type=int, default=1200, help="reject cases shorter than this (s)")
    p.add_argument("--allow-missing", default="", metavar="GROUPS",
                   help="keep cases that lack these signal groups entirely (mac,bis: TIVA, no BIS sensor) with the "
                        "group NaN in their windows (marked and counted), instead of rejecting them")
    p.add_argument("--nibp-merge-s", type=int, default=NIBP_MERGE_S, metavar="S",
                   help="cuff SBP/MAP/DBP values stamped at most S seconds apart form one reading, stamped at the "
                        f"latest (default {NIBP_MERGE_S}; 0: only values in the same second)")
    add_cuff_arguments(p, "the cases' cuff (NIBP) readings")
    p.add_argument("--split", type=float, nargs=3, default=(0.7, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"),
                   help="subject split fractions")
    p.add_argument("--split-seed", type=int, default=0, help="seed assigning subjects to splits")
    p.add_argument("--num-cpus-per-task", type=float, default=1.0, help="CPUs reserved by each task")
    p.add_argument("--cases-per-task", type=int, default=16,
                   help="cases each task processes in turn (amortises Ray's per-task overhead)")
    p.add_argument("--address",
                   help="Ray cluster: HOST:PORT, auto or local (default $RAY_ADDRESS, else the cluster `ray start`"
                        " recorded on this machine if it answers, else a local Ray)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default all)")
    p.add_argument("--no-progress", action="store_true", help="hide Ray Data's progress bars")
    return p.parse_args(argv)


# config field -> the flag a user typed, so that errors name what the user can change
FLAGS = {"window_s": "--window", "stride_s": "--stride", "min_case_s": "--min-case", "horizon_s": "--horizon",
         "horizons_s": "--horizons",
         "tolerance_s": "--tolerance", "hypo_map": "--hypo-map", "hyper_sbp": "--hyper-sbp",
         "split fractions": "--split fractions", "the train fraction": "the --split train fraction",
         "allow_missing": "--allow-missing", "nibp_merge_s": "--nibp-merge-s"}


def in_flags(message: str) -> str:
    """A config error's message with the config's field names replaced by the flags that set them."""
    for field, flag in FLAGS.items():
        message = re.sub(rf"(?<![\w-]){re.escape(field)}\b", flag, message)
    return message


def parse_horizons(text: str | None, primary: int | None) -> tuple[int, tuple[int, ...]]:
    """``(horizon_s, horizons_s)`` from ``--horizon`` and ``--horizons``.

    Raises:
        ConfigError: A value that is not a whole number of seconds > 0, one given twice, or a primary horizon not
            among them (``--horizon`` given or the default).
    """
    if text is None:
        return (DEFAULT_HORIZON_S if primary is None else primary), ()
    parts = [p.strip() for p in text.split(",")]
    if not all(re.fullmatch(r"[0-9]+", p) for p in parts):
        bad = next(p for p in parts if not re.fullmatch(r"[0-9]+", p))
        raise ConfigError(f"--horizons: {bad!r} is not a whole number of seconds (e.g. --horizons 60,180,300,600,900)")
    hs = [int(p) for p in parts]
    if any(h <= 0 for h in hs):
        raise ConfigError(f"--horizons: every horizon must be > 0 s, got {min(hs)}")
    dup = sorted({h for h in hs if hs.count(h) > 1})
    if dup:
        raise ConfigError(f"--horizons: {', '.join(map(str, dup))} given twice")
    if primary is not None and primary not in hs:
        raise ConfigError(f"--horizon {primary} is not among --horizons {text}: the primary horizon must be one of "
                          "them")
    primary = DEFAULT_HORIZON_S if primary is None else primary
    if primary not in hs:
        raise ConfigError(f"--horizons {text} lacks the primary horizon {DEFAULT_HORIZON_S} s: add it, or name "
                          "another primary with --horizon S")
    return primary, tuple(sorted(hs))


def config_from_args(args) -> WindowConfig:
    """The WindowConfig the command-line arguments describe (validated; errors name the flags).

    Raises:
        ConfigError: On an invalid value, naming the flag.
    """
    if args.label_source == "art":
        typed = [flag for flag, value in (("--label-mode", args.label_mode), ("--tolerance", args.tolerance))
                 if value is not None]
        if len(typed) == 1:
            raise ConfigError(f"{typed[0]} describes cuff labels; leave it out with --label-source art")
        if typed:
            raise ConfigError(f"{' and '.join(typed)} describe cuff labels; leave them out with --label-source art")
    horizon, horizons = parse_horizons(args.horizons, args.horizon)
    try:
        label = LabelConfig(mode=args.label_mode or CUFF_MODE, horizon_s=horizon, horizons_s=horizons,
                            tolerance_s=CUFF_TOLERANCE_S if args.tolerance is None else args.tolerance,
                            hypo_map=args.hypo_map, hyper_sbp=args.hyper_sbp, source=args.label_source)
        split = SplitConfig(*args.split, seed=args.split_seed)
        try:
            allow = parse_groups(args.allow_missing, MAY_BE_MISSING, "group for --allow-missing")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return WindowConfig(window_s=args.window, stride_s=args.stride, min_case_s=args.min_case, label=label,
                            fill=FillConfig(), split=split, allow_missing=allow, nibp_merge_s=args.nibp_merge_s,
                            cuff_from_art=cuff_schedule(args))
    except ConfigError as exc:
        raise ConfigError(in_flags(str(exc))) from None


def main(argv: list[str] | None = None, prog: str = PROG) -> Manifest:
    """Entry point of ``hypo windows``; bad arguments and inputs end in one line."""
    args = parse_args(argv, prog)
    with one_line_errors(prog):
        cfg = config_from_args(args)
        spec = spec_from_flags(args.source, cases=args.cases, seed=args.seed, site=args.site, path=args.path,
                               track_map=args.track_map, subjects=args.subjects, cache=args.cache,
                               api_url=args.api_url)
        return windows_job(WindowsRequest(source=spec, config=cfg, out=args.out, address=args.address,
                                          num_cpus=args.num_cpus, num_cpus_per_task=args.num_cpus_per_task,
                                          cases_per_task=args.cases_per_task, progress=not args.no_progress))
