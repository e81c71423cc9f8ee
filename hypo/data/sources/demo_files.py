r"""Write demo cases as genuine ``.vital`` files, so the ``.vital`` reader path runs end to end.

    hypo demo-files --out data/demo-vital --cases 5
    python preprocessing/build_windows.py --source vital-dir --path data/demo-vital \\
        --subjects data/demo-vital/subjects.csv --out data/demo-vital-windows

The files use VitalDB's track names (``SNUADC/ECG_II``, ``Solar8000/NIBP_SBP``, ...; the arterial line of the
cases that have one as ``Solar8000/ART_SBP``, ``ART_MBP``, ``ART_DBP`` at its samples' own times), hold the
simulated values exactly, and come with ``subjects.csv`` (caseid,subjectid), so the folder source yields the same
cases, subjects and windows as ``--source demo``, with cuff or ART labels. Simulated, not clinical.
"""

from __future__ import annotations

import csv
import os

from hypo.data.sources.demo import simulate_case
from hypo.data.sources.vital import write_vital_case


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


