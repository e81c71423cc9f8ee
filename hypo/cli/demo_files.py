r"""``hypo demo-files``: write demo cases as genuine ``.vital`` files (see :mod:`hypo.data.sources.demo_files`).

hypo demo-files --out data/demo-vital --cases 5
hypo windows --source vital-dir --path data/demo-vital --subjects data/demo-vital/subjects.csv \\
        --out data/demo-vital-windows
hypo demo-files --site b --out data/site-b-vital --cases 200      # another hospital: needs its track_map.json
"""

from __future__ import annotations

from hypo.data.sources.demo_files import TRACK_MAP_FILE, write_demo_vital_files
from hypo.runtime import OneLineParser, one_line_errors

PROG = "hypo demo-files"


def main(argv: list[str] | None = None, prog: str = PROG) -> None:
    """Entry point of ``hypo demo-files``: write demo ``.vital`` files."""
    p = OneLineParser(prog=prog, description="Write demo cases as genuine .vital files (simulated, not clinical).")
    p.add_argument("--out", required=True, help="folder for the .vital files")
    p.add_argument("--cases", type=int, default=5, help="number of cases")
    p.add_argument("--seed", type=int, default=0, help="simulator seed")
    p.add_argument("--site", choices=("a", "b"), default="a",
                   help="simulated hospital: a (default; VitalDB track names) or b (another monitor's track names, "
                        "cuff values stamped apart, an older and sicker mix, TIVA cases; writes track_map.json)")
    args = p.parse_args(argv)
    if args.cases < 1:
        p.error("--cases must be >= 1")
    with one_line_errors(prog):
        paths = write_demo_vital_files(args.out, args.cases, args.seed, site=args.site)
    extra = f", subjects.csv and {TRACK_MAP_FILE} (pass it as --track-map)" if args.site != "a" else " and subjects.csv"
    site = f" site {args.site}" if args.site != "a" else ""
    print(f"wrote {len(paths)} demo .vital files{extra} to {args.out} (simulated{site}, not clinical)")
