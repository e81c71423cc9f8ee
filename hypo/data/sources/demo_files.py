r"""Write demo cases as genuine ``.vital`` files, so the ``.vital`` reader path runs end to end.

    hypo demo-files --out data/demo-vital --cases 5
    python preprocessing/build_windows.py --source vital-dir --path data/demo-vital \\
        --subjects data/demo-vital/subjects.csv --out data/demo-vital-windows

The files use VitalDB's track names (``SNUADC/ECG_II``, ``Solar8000/NIBP_SBP``, ...; the arterial line of the
cases that have one as ``Solar8000/ART_SBP``, ``ART_MBP``, ``ART_DBP`` at its samples' own times), hold the
simulated values exactly, and come with ``subjects.csv`` (caseid,subjectid), so the folder source yields the same
cases, subjects and windows as ``--source demo``, with cuff or ART labels. Simulated, not clinical: the folder
also gets ``hypo_simulated.json`` (:data:`hypo.data.sources.vital.SIMULATED_MARKER`), so datasets, leaderboards,
reports and evaluations built from it are marked simulated like those of ``--source demo``.

``site="b"`` (``hypo demo-files --site b``) writes the second simulated hospital
(:mod:`hypo.data.sources.demo_sites`): another monitor's track names (``Intellivue/NIBP_SYS``, ...), so the folder
also gets ``track_map.json``, the ``--track-map`` that reads it; its TIVA cases have no MAC track at all.
"""

from __future__ import annotations

import csv
import json
import os

from hypo.data.sources.demo import NOT_CLINICAL, simulate_case, site_profile
from hypo.data.sources.demo_sites import track_map
from hypo.data.sources.vital import SIMULATED_MARKER, write_vital_case

TRACK_MAP_FILE = "track_map.json"


def check_folder(out: str, names: list[str], site: str, seed: int) -> None:
    """Refuse to write demo files into a folder that holds other recordings (another site, seed or case count).

    Writing there would keep the other ``.vital`` files while ``subjects.csv`` and the simulated marker describe only
    the new ones. The same command run again (same files, site and seed) is fine: it writes the same bytes.

    Raises:
        ConfigError: ``out`` is a file, or holds recordings other than those this call writes.
    """
    from hypo.errors import ConfigError

    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"--out {out} is a file, not a folder")
    if not os.path.isdir(out):
        return
    have = sorted(n for n in os.listdir(out) if n.endswith(".vital"))
    marker = os.path.join(out, SIMULATED_MARKER)
    made = {}
    if os.path.exists(marker):
        try:
            with open(marker) as f:
                made = json.load(f)
        except (OSError, ValueError):
            made = {}
    if not have and not made:
        return
    same = (have == sorted(names) and made.get("site", "a") == site and made.get("seed", 0) == seed)
    if not same:
        what = (f"{len(have)} .vital files of site {made.get('site', 'a')}, seed {made.get('seed', 0)}" if made
                else f"{len(have)} .vital files not written by hypo demo-files")
        raise ConfigError(f"--out {out} already holds {what}; writing {len(names)} cases of site {site}, seed {seed} "
                          "there would mix them with a subjects.csv describing only the new ones: use a new --out "
                          "folder (or delete this one)")


def write_demo_vital_files(out: str, n_cases: int, seed: int = 0, first: int = 1, site: str = "a") -> list[str]:
    """Write demo cases ``first .. first + n_cases - 1`` as ``<caseid>.vital`` plus ``subjects.csv``.

    Args:
        out: Folder to write into (created).
        n_cases: How many cases.
        seed: Simulator seed.
        first: First case id.
        site: Simulated hospital, ``"a"`` (VitalDB track names) or ``"b"`` (another monitor's; ``track_map.json``
            is written beside the files).

    Returns:
        The paths of the ``.vital`` files.
    """
    import numpy as np

    from hypo.data.signals import MAC

    prof = site_profile(site)
    check_folder(out, [f"{cid}.vital" for cid in range(first, first + n_cases)], prof.name, seed)
    os.makedirs(out, exist_ok=True)
    paths, subjects = [], []
    for cid in range(first, first + n_cases):
        case = simulate_case(cid, seed, site=prof.name)
        tracks = list(prof.tracks)
        if prof.p_tiva and not np.isfinite(case.signals[:, MAC]).any():
            tracks[MAC] = None  # TIVA: no gas monitoring, no MAC track
        path = os.path.join(out, f"{cid}.vital")
        write_vital_case(case, path, tracks=tracks, art_tracks=prof.art_tracks)
        paths.append(path)
        subjects.append((case.caseid, case.subjectid))
    with open(os.path.join(out, "subjects.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["caseid", "subjectid"])
        w.writerows(subjects)
    if prof.name != "a":
        with open(os.path.join(out, TRACK_MAP_FILE), "w") as f:
            json.dump(track_map(prof), f, indent=2)
    with open(os.path.join(out, SIMULATED_MARKER), "w") as f:
        json.dump({"simulated": True, "note": NOT_CLINICAL, "simulator_version": prof.simulator_version,
                   "site": prof.name, "seed": int(seed)}, f, indent=2)
    return paths
