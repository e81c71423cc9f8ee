r"""``hypo demo-files``: write demo cases as genuine ``.vital`` files (see :mod:`hypo.data.sources.demo_files`).

hypo demo-files --out data/demo-vital --cases 5
hypo windows --source vital-dir --path data/demo-vital --subjects data/demo-vital/subjects.csv \\
        --out data/demo-vital-windows
"""

from __future__ import annotations

from hypo.data.sources.demo_files import write_demo_vital_files
from hypo.runtime import OneLineParser

PROG = "hypo demo-files"


def main(argv: list[str] | None = None, prog: str = PROG) -> None:
    """Entry point of ``hypo demo-files``: write demo ``.vital`` files."""
    p = OneLineParser(prog=prog, description="Write demo cases as genuine .vital files (simulated, not clinical).")
    p.add_argument("--out", required=True, help="folder for the .vital files")
    p.add_argument("--cases", type=int, default=5, help="number of cases")
    p.add_argument("--seed", type=int, default=0, help="simulator seed")
    args = p.parse_args(argv)
    if args.cases < 1:
        p.error("--cases must be >= 1")
    paths = write_demo_vital_files(args.out, args.cases, args.seed)
    print(f"wrote {len(paths)} demo .vital files and subjects.csv to {args.out} (simulated, not clinical)")
