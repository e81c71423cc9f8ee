r"""Write demo cases as genuine ``.vital`` files, so the ``.vital`` reader path runs end to end.

    python -m hypo.sources.demo_files --out data/demo-vital --cases 5
    python preprocessing/build_windows.py --source vital-dir --path data/demo-vital \\
        --subjects data/demo-vital/subjects.csv --out data/demo-vital-windows

The files use VitalDB's track names (``SNUADC/ECG_II``, ``Solar8000/NIBP_SBP``, ...), hold the simulated values
exactly, and come with ``subjects.csv`` (caseid,subjectid), so the folder source yields the same cases, subjects
and windows as ``--source demo``. Simulated, not clinical.
"""

from __future__ import annotations

import argparse
import csv
import os

from hypo.sources.demo import simulate_case
from hypo.sources.vital import write_vital_case


def write_demo_vital_files(out: str, n_cases: int, seed: int = 0, first: int = 1) -> list[str]:
    """Write demo cases ``first .. first + n_cases - 1`` as ``<caseid>.vital`` plus ``subjects.csv``.

    Args:
        out: Folder to write into (created).
        n_cases: How many cases.
        seed: Simulator seed.
        first: First case id.

    Returns:
        The paths of the ``.vital`` files.
    """
    os.makedirs(out, exist_ok=True)
    paths, subjects = [], []
    for cid in range(first, first + n_cases):
        case = simulate_case(cid, seed)
        path = os.path.join(out, f"{cid}.vital")
        write_vital_case(case, path)
        paths.append(path)
        subjects.append((case.caseid, case.subjectid))
    with open(os.path.join(out, "subjects.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["caseid", "subjectid"])
        w.writerows(subjects)
    return paths


def main(argv: list[str] | None = None) -> None:
    """Command line: write demo ``.vital`` files."""
    p = argparse.ArgumentParser(prog="python -m hypo.sources.demo_files", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for the .vital files")
    p.add_argument("--cases", type=int, default=5, help="number of cases")
    p.add_argument("--seed", type=int, default=0, help="simulator seed")
    args = p.parse_args(argv)
    if args.cases < 1:
        p.error("--cases must be >= 1")
    paths = write_demo_vital_files(args.out, args.cases, args.seed)
    print(f"wrote {len(paths)} demo .vital files and subjects.csv to {args.out} (simulated, not clinical)")


if __name__ == "__main__":
    main()
