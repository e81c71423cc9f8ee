"""``hypo serve``: run an exported model live on monitor streams, in silent mode (a Ray Serve application).

    hypo serve model.pt --log serve-log                            # http://127.0.0.1:8000, a local Ray
    hypo serve model.pt --log serve-log --host 0.0.0.0 --tokens tokens.json --scorers 4

The server is :func:`hypo.serve.server.run`; this is its command-line front.
"""

from __future__ import annotations

from hypo.runtime import OneLineParser, one_line_errors
from hypo.serve.server import config_from_args, run

PROG = "hypo serve"


def main(argv: list[str] | None = None, prog: str = PROG) -> None:
    """Entry point of ``hypo serve``; user errors end in one line on stderr with status 2."""
    p = OneLineParser(prog=prog, description="Run a model live on Vital Recorder streams, in silent mode: "
                                             "predictions and alarms are logged and shown on a research screen.")
    p.add_argument("model", help="exported model (hypo export ... --out model.pt)")
    p.add_argument("--log", required=True, help="silent-trial log folder (Parquet by room and day); a restart on "
                                                "the same folder continues every bed")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only; any "
                                                       "other needs viewer tokens for the page)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--stride", type=int, default=None, help="seconds between a bed's predictions (default: the "
                                                             "stride the model's alarm policy was validated at, "
                                                             "else 10)")
    p.add_argument("--track-map", default=None, help="JSON track map, as for .vital folders")
    p.add_argument("--tokens", default=None, help="tokens file {recorders: {name: token}, viewers: {...}} "
                                                  "(default LOG/tokens.json, created when missing)")
    g = p.add_argument_group("alarm policy (default: the one validated with the model, stored in its sidecar by "
                             "hypo export; a value given here overrides it, and the server says so)")
    g.add_argument("--threshold", type=float, default=None, help="alarm threshold on p(hypotension)")
    g.add_argument("--alarm-m", type=int, default=None, help="consecutive predictions >= threshold that start an "
                                                              "alarm")
    g.add_argument("--alarm-hysteresis", type=float, default=None, help="the alarm ends below threshold - H")
    g.add_argument("--alarm-max-gap", type=int, default=None, metavar="S",
                   help="missing predictions for up to S seconds hold the alarm's state")
    p.add_argument("--stale-after", type=float, default=30.0, help="seconds without data before a bed shows "
                                                                   "stale (default 30)")
    p.add_argument("--max-clock-skew", type=float, default=300.0, help="records stamped more than this many "
                                                                       "seconds after the server's clock are "
                                                                       "refused (default 300)")
    p.add_argument("--scorers", type=int, default=1, help="replicas of the scoring deployment (default 1)")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: as every verb, else a local Ray)")
    p.add_argument("--local", action="store_true", help="run in this process without Ray Serve (development)")
    args = p.parse_args(argv)
    with one_line_errors(prog, on_interrupt="the log is written; the same command continues every bed"):
        cfg = config_from_args(model=args.model, log_dir=args.log, host=args.host, port=args.port,
                               stride_s=args.stride, track_map=args.track_map, tokens=args.tokens,
                               threshold=args.threshold, m=args.alarm_m, hysteresis=args.alarm_hysteresis,
                               max_gap_s=args.alarm_max_gap,
                               stale_after_s=args.stale_after, max_clock_skew_s=args.max_clock_skew,
                               scorers=args.scorers)
        run(cfg, local=args.local, address=args.address)
