"""A straightforward single-process pandas implementation of the preprocessing steps, for benchmarks.

This is how a researcher would typically write the job without Ray: one DataFrame per case, the artefact
rules as boolean masks, ``interpolate(limit_area="inside")`` for waveforms and ``ffill(limit=...)`` for
numerics, windows and labels cut with a plain loop over ``iloc`` slices, one Parquet file per case written
with pandas, and the train-only z-score from running sums. It follows the same rules as
:mod:`hypo.data.pipeline` (``tests/test_pandas_reference.py`` checks that both give the same windows), so
``bench/preprocess.py`` can compare their speed on the same cases.

Run on its own (no Ray)::

    python bench/pandas_reference.py --cases 20 --out /tmp/ref
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pandas as pd

from hypo.config import WindowConfig
from hypo.data.signals import CLASSES, SIGNALS
from hypo.data.sources.base import Case
from hypo.data.splits import SPLITS, assign_split
from hypo.errors import CaseRejected

NIBP_COLS = ["nibp_sbp", "nibp_mbp", "nibp_dbp"]
WAVEFORM_COLS = ["ecg", "pleth"]
RULES = ("non_finite", "nibp_incomplete", "nibp_zero", "map_out_of_range", "sbp_le_dbp", "bis_out_of_range",
         "mac_negative")


def remove_artefacts(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Blank implausible values (PITFALLS.md 8); a cuff reading is counted under the first rule it breaks.

    Args:
        df: One case, a column per signal, one row per second.

    Returns:
        ``(cleaned copy, counts per rule)``.
    """
    df = df.copy()
    counts = dict.fromkeys(RULES, 0)
    inf = np.isinf(df)
    counts["non_finite"] = int(inf.sum().sum())
    df = df.mask(inf)

    nibp = df[NIBP_COLS]
    present = nibp.notna()
    any_present = present.any(axis=1)
    checks = {
        "nibp_incomplete": any_present & ~present.all(axis=1),
        "nibp_zero": any_present & (nibp == 0).any(axis=1),
        "map_out_of_range": any_present & ((df["nibp_mbp"] < 20) | (df["nibp_mbp"] > 200)),
        "sbp_le_dbp": any_present & (df["nibp_sbp"] <= df["nibp_dbp"]),
    }
    bad = pd.Series(False, index=df.index)
    for rule, hit in checks.items():
        counts[rule] = int((hit & ~bad).sum())
        bad = bad | hit
    df.loc[bad, NIBP_COLS] = np.nan

    bis_bad = (df["bis"] < 0) | (df["bis"] > 100)
    mac_bad = df["mac"] < 0
    counts["bis_out_of_range"] = int(bis_bad.sum())
    counts["mac_negative"] = int(mac_bad.sum())
    df.loc[bis_bad, "bis"] = np.nan
    df.loc[mac_bad, "mac"] = np.nan
    return df, counts


def fill_gaps(cleaned: pd.DataFrame, cfg: WindowConfig) -> pd.DataFrame:
    """Interpolate short interior waveform gaps; carry numerics forward within their limits.

    ``interpolate(limit=...)`` would fill the first samples of a longer gap too, so gaps longer than the
    limit are blanked again afterwards (the rule: such a gap stays NaN as a whole).
    """
    filled = cleaned.copy()
    for col in WAVEFORM_COLS:
        s = cleaned[col]
        missing = s.isna()
        gap_len = missing.groupby((~missing).cumsum()).transform("sum")
        filled[col] = s.interpolate(limit_area="inside").where(~missing | (gap_len <= cfg.fill.waveform_max_gap_s))
    for col in NIBP_COLS:
        filled[col] = cleaned[col].ffill(limit=cfg.fill.nibp_max_carry_s)
    for col in ("mac", "bis"):
        filled[col] = cleaned[col].ffill(limit=cfg.fill.numeric_max_carry_s)
    return filled


def cut_windows(cleaned: pd.DataFrame, filled: pd.DataFrame, cfg: WindowConfig) -> tuple[list[dict], dict]:
    """Cut complete, labelled windows with a loop; return the rows and the drop counts."""
    lab = cfg.label
    n = len(filled)
    readings = cleaned.dropna(subset=NIBP_COLS)
    rows, dropped = [], {"incomplete": 0, "no_label": 0}
    for start in range(0, n - cfg.window_s + 1, cfg.stride_s):
        end = start + cfg.window_s - 1
        window = filled.iloc[start : end + 1]
        if window.isna().any().any() or cleaned.iloc[end][WAVEFORM_COLS].isna().any():  # no interpolating from after
            dropped["incomplete"] += 1
            continue
        target = end + lab.horizon_s
        if lab.mode == "reading":  # nearest reading after the window end, within the tolerance
            cand = readings[(readings.index > end) & (abs(readings.index - target) <= lab.tolerance_s)]
            if cand.empty:
                dropped["no_label"] += 1
                continue
            label_row = cand.iloc[int(np.argmin(np.abs(cand.index.to_numpy() - target)))]  # earlier on a tie
        else:  # the paper: the value carried forward to exactly end + horizon
            before = readings[readings.index <= target]
            if target >= n or before.empty or target - before.index[-1] > cfg.fill.nibp_max_carry_s:
                dropped["no_label"] += 1
                continue
            label_row = before.iloc[-1]
        last = readings[readings.index <= end]
        map_, sbp = float(label_row["nibp_mbp"]), float(label_row["nibp_sbp"])
        cls = 1 if map_ < lab.hypo_map else 2 if sbp > lab.hyper_sbp else 0
        rows.append({
            "t_end": end,
            "x": window.to_numpy(dtype=np.float32).reshape(-1),
            "label": cls,
            "label_time": int(label_row.name),
            "label_map": map_,
            "label_sbp": sbp,
            "last_map": float(last["nibp_mbp"].iloc[-1]) if len(last) else np.nan,
            "last_sbp": float(last["nibp_sbp"].iloc[-1]) if len(last) else np.nan,
            "last_time": int(last.index[-1]) if len(last) else -1,
        })
    return rows, dropped


def process_case(case: Case, cfg: WindowConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """All steps on one case: the windows as a DataFrame (one row each) and a summary.

    Raises:
        CaseRejected: ``too short``, ``all-NaN signal`` or ``no usable window``, as the pipeline does.
    """
    df = pd.DataFrame(case.signals, columns=list(SIGNALS))
    if len(df) < cfg.min_case_s:
        raise CaseRejected("too short", f"case {case.caseid}")
    if df.replace([np.inf, -np.inf], np.nan).isna().all().any():
        raise CaseRejected("all-NaN signal", f"case {case.caseid}")
    cleaned, artefacts = remove_artefacts(df)
    if cleaned.isna().all().any():
        raise CaseRejected("all-NaN signal", f"case {case.caseid}")
    filled = fill_gaps(cleaned, cfg)
    rows, dropped = cut_windows(cleaned, filled, cfg)
    if not rows:
        raise CaseRejected("no usable window", f"case {case.caseid}")
    split = assign_split(case.subjectid, cfg.split)
    win = pd.DataFrame(rows)
    win.insert(0, "split", split)
    win.insert(0, "subjectid", case.subjectid)
    win.insert(0, "caseid", case.caseid)
    summary = {
        "caseid": case.caseid,
        "subjectid": case.subjectid,
        "split": split,
        "duration_s": len(df),
        "n_windows": len(win),
        "class_counts": [int((win["label"] == k).sum()) for k in range(len(CLASSES))],
        "dropped": dropped,
        "artefacts": artefacts,
    }
    return win, summary


def build_reference(source, cfg: WindowConfig, out: str, refs: list[dict] | None = None) -> dict[str, Any]:
    """Run every step on ``refs`` (default: all of the source's cases), one after another, in this process.

    Args:
        source: Where cases come from (any :class:`hypo.data.sources.base.Source`).
        cfg: Window, label, fill and split rules.
        out: Folder for ``windows/{split}/case_<id>.parquet``.
        refs: Case references to process.

    Returns:
        Counts per split and class, case-hours, rejections by reason, the train-only z-score, per-case
        summaries and the wall time.
    """
    start = time.perf_counter()
    refs = source.case_refs() if refs is None else refs
    counts = {sp: dict.fromkeys(("cases", "windows", *CLASSES), 0) for sp in SPLITS}
    rejected: dict[str, int] = {}
    summaries, case_s = [], 0
    n, total, total_sq = 0, np.zeros(len(SIGNALS)), np.zeros(len(SIGNALS))
    for ref in refs:
        try:
            case = source.load_case(ref)
            win, summary = process_case(case, cfg)
        except CaseRejected as exc:
            rejected[exc.reason] = rejected.get(exc.reason, 0) + 1
            continue
        folder = os.path.join(out, "windows", summary["split"])
        os.makedirs(folder, exist_ok=True)
        win.to_parquet(os.path.join(folder, f"case_{case.caseid}.parquet"), compression="zstd", index=False)
        c = counts[summary["split"]]
        c["cases"] += 1
        c["windows"] += len(win)
        for k, name in enumerate(CLASSES):
            c[name] += summary["class_counts"][k]
        if summary["split"] == "train":
            x = np.stack(win["x"].to_list()).reshape(-1, len(SIGNALS)).astype(np.float64)
            n += len(x)
            total += x.sum(axis=0)
            total_sq += (x**2).sum(axis=0)
        case_s += summary["duration_s"]
        summaries.append(summary)
    mean = total / max(n, 1)
    std = np.sqrt(np.maximum(total_sq / max(n, 1) - mean**2, 0))
    return {
        "counts": counts,
        "case_hours": case_s / 3600,
        "cases_ok": len(summaries),
        "rejected_counts": rejected,
        "zscore": {"mean": mean.tolist(), "std": np.where(std > 0, std, 1.0).tolist(), "n_values": n},
        "summaries": summaries,
        "wall_s": time.perf_counter() - start,
    }


def main() -> None:
    """Run the reference on the demo cohort and print its counts."""
    import argparse
    import json

    from hypo.data.sources.factory import make_source

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=20)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    result = build_reference(make_source("demo", cases=args.cases), WindowConfig(), args.out)
    result.pop("summaries")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
