"""Cuff labels against labels from the arterial line on the demo cohort: what a cuff reading every 2.5-5 min misses.

Counts, not timings. For demo cases ``1..N`` (with their simulated arterial line) it builds windows with cuff labels
(the default: the reading nearest to end + 5 min, within 90 s) and with ART labels (the minute centred on
end + 5 min, ``hypo.data.art``), and reports

- the prevalence of hypotension windows under each label source, over all their windows and over the windows both
  label (same case, same end), with the cross-tabulation of the two labels there;
- the hypotensive minutes of the arterial line (a fixed grid of whole minutes, each classified by the same event
  rule as the labels) and how many of them hold no cuff reading at all: minutes that fall between cuff readings,
  which no cuff label can see; and the hypotension episodes (``hypo.data.art.hypotension_episodes``) during which
  no cuff reading showed MAP < 65.

Simulated data: the figures describe the simulator, not patients. Run::

    python bench/label_sources.py            # 100 cases
    python bench/label_sources.py --cases 20
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from hypo.config import LabelConfig, WindowConfig  # noqa: E402
from hypo.data.art import hypotension_episodes, stretch_stats  # noqa: E402
from hypo.data.pipeline import clean_case, process_case, usable_arterial_line  # noqa: E402
from hypo.data.signals import CLASSES, HYPOTENSION  # noqa: E402
from hypo.data.sources.demo import simulate_case  # noqa: E402
from hypo.data.windows import Readings  # noqa: E402
from hypo.errors import CaseRejected  # noqa: E402


def compare_case(case, cuff_win, cuff_cfg: WindowConfig, art_cfg: WindowConfig) -> dict | None:
    """Cuff and ART labels of one case, and its hypotensive minutes; ``None`` when it has no usable line.

    ``cuff_win`` is the case's cuff-labelled windows (``None`` when the cuff build rejected it).
    """
    try:
        art_win, _ = process_case(case, art_cfg)
    except CaseRejected:
        return None
    cleaned = clean_case(case, cuff_cfg).cleaned
    readings = Readings.from_signals(cleaned)
    line, _ = usable_arterial_line(case)
    half = art_cfg.label.event_s // 2
    centres = np.arange(half, case.duration_s - half + 1, art_cfg.label.event_s)
    hypo = stretch_stats(line, centres, art_cfg.label).label == HYPOTENSION
    starts = centres[hypo] - half
    n_in = np.searchsorted(readings.time, starts + 2 * half) - np.searchsorted(readings.time, starts)
    episodes = hypotension_episodes(line, case.duration_s, art_cfg.label)
    low = readings.time[readings.map < art_cfg.label.hypo_map]
    seen = [bool(((low >= a) & (low < b)).any()) for a, b in episodes]
    return {"cuff": cuff_win, "art": art_win, "hypo_minutes": int(hypo.sum()),
            "hypo_minutes_no_reading": int((n_in == 0).sum()), "minutes": int((centres >= 0).sum()),
            "episodes": len(episodes), "episodes_unseen": int(len(seen) - sum(seen))}


def main(argv: list[str] | None = None) -> None:
    """Print the comparison."""
    p = argparse.ArgumentParser(description="Cuff vs arterial-line labels on the demo cohort (simulated).")
    p.add_argument("--cases", type=int, default=100, help="demo cases 1..N")
    p.add_argument("--seed", type=int, default=0, help="demo simulator seed")
    args = p.parse_args(argv)
    if args.cases < 1:
        p.error(f"--cases must be >= 1, got {args.cases}")
    cuff_cfg, art_cfg = WindowConfig(), WindowConfig(label=LabelConfig(source="art"))
    used, cuff_all = [], []
    for i in range(1, args.cases + 1):
        case = simulate_case(i, args.seed)
        try:
            cuff_win = process_case(case, cuff_cfg)[0]
            cuff_all.append(cuff_win.label)
        except CaseRejected:
            cuff_win = None
        r = compare_case(case, cuff_win, cuff_cfg, art_cfg)
        if r is not None:
            used.append(r)
    if not cuff_all or not any(r["cuff"] is not None for r in used):
        sys.exit(f"label_sources.py: no case of 1-{args.cases} gave both cuff and ART windows; try more --cases")
    cuff_all = np.concatenate(cuff_all)
    cuff_line = np.concatenate([r["cuff"].label for r in used if r["cuff"] is not None])
    art_all = np.concatenate([r["art"].label for r in used])
    pairs = []
    for r in used:
        if r["cuff"] is None:
            continue
        common, ic, ia = np.intersect1d(r["cuff"].t_end, r["art"].t_end, return_indices=True)
        pairs.append(np.stack([r["cuff"].label[ic], r["art"].label[ia]], axis=1))
    pairs = np.concatenate(pairs)

    def prev(labels: np.ndarray) -> str:
        return f"{100 * np.mean(labels == HYPOTENSION):5.1f}% of {len(labels):,}"

    print(f"SIMULATED demo cohort, cases 1-{args.cases} (seed {args.seed}); {len(used)} have a usable arterial line.")
    print("Not clinical data: these counts describe hypo's simulator.\n")
    print(f"{'windows':<58} hypotension prevalence")
    print(f"{'cuff labels, all cases':<58} {prev(cuff_all)}")
    print(f"{'cuff labels, cases with an arterial line':<58} {prev(cuff_line)}")
    print(f"{'ART labels (cases with an arterial line)':<58} {prev(art_all)}")
    print(f"{'cuff labels, windows both sources label':<58} {prev(pairs[:, 0])}")
    print(f"{'ART labels, the same windows':<58} {prev(pairs[:, 1])}")
    print("\nthe same windows, cuff label (rows) x ART label (columns):")
    print(f"{'':>14}" + "".join(f"{c:>14}" for c in CLASSES))
    for i, c in enumerate(CLASSES):
        print(f"{c:>14}" + "".join(f"{int(((pairs[:, 0] == i) & (pairs[:, 1] == j)).sum()):>14,}"
                                   for j in range(len(CLASSES))))
    minutes = sum(r["hypo_minutes"] for r in used)
    between = sum(r["hypo_minutes_no_reading"] for r in used)
    episodes = sum(r["episodes"] for r in used)
    unseen = sum(r["episodes_unseen"] for r in used)
    print(f"\nART-hypotensive minutes (whole-minute grid, every valid ART MAP < 65): {minutes:,} of "
          f"{sum(r['minutes'] for r in used):,} minutes;")
    print(f"  holding no cuff reading (between cuff readings, invisible to cuff labels): {between:,} "
          f"({100 * between / max(minutes, 1):.1f}%)")
    print(f"ART hypotension episodes (MAP < 65 for >= 1 min): {episodes:,}; with no cuff reading < 65 during them: "
          f"{unseen:,} ({100 * unseen / max(episodes, 1):.1f}%)")


if __name__ == "__main__":
    main()
