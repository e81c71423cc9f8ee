"""``hypo predict``: predict hypotension along one ``.vital`` recording with an exported model.

    hypo predict case.vital --model model.pt                       # a window every 60 s
    hypo predict case.vital --model model.pt --stride 10 --track-map map.json --out predictions/

The prediction is :func:`hypo.infer.predict.predict_file`; this is its command-line front.
"""

from __future__ import annotations

from typing import Any

from hypo.infer.predict import predict_file
from hypo.runtime import OneLineParser, one_line_errors

PROG = "hypo predict"


def main(argv: list[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Entry point of ``hypo predict``; user errors end in one line on stderr with status 2."""
    p = OneLineParser(prog=prog, description="Predict hypotension along one .vital recording.")
    p.add_argument("recording", help="a .vital file")
    p.add_argument("--model", required=True, help="exported model (hypo export ... --out model.pt)")
    p.add_argument("--stride", type=int, default=60, help="seconds between window ends (default 60)")
    p.add_argument("--track-map", default=None, help="JSON file mapping signal names to track names")
    p.add_argument("--out", default=".", help="output folder for <name>_predictions.csv and <name>_timeline.png")
    p.add_argument("--no-plot", action="store_true", help="write the CSV only")
    args = p.parse_args(argv)
    with one_line_errors(prog):
        return predict_file(args.recording, args.model, args.stride, args.track_map, args.out, not args.no_plot)
