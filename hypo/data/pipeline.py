"""One case through the preprocessing steps: artefacts, gap filling, windows and labels, split, shard.

:func:`process_case` is pure (array in, windows and a summary out) so it is easy to test and to reuse in
``hypo.infer.predict``; :func:`run_case` adds the source and the storage and is what each Ray task runs.
"""

from __future__ import annotations

import re
import traceback
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from hypo import storage
from hypo.config import WindowConfig
from hypo.data.art import ArterialLine, clean_arterial
from hypo.data.artefacts import NIBP_RULES, merge_cuff_values, remove_artefacts
from hypo.data.cuff import with_simulated_cuff
from hypo.data.filling import fill_gaps
from hypo.data.integrity import shard_record
from hypo.data.moments import Moments
from hypo.data.signals import N_SIGNALS, NIBP, group_channels
from hypo.data.sources.base import Case, Source
from hypo.data.splits import assign_split
from hypo.data.windows import ART_EARLIER_S, EARLIER_READINGS, Windows, make_windows
from hypo.errors import CaseRejected, HypoError

# Rejections that may pass on a re-run (network, unexpected errors); all others are final for the config.
TRANSIENT_REASONS = frozenset({"download failed", "error"})


def window_schema(window_s: int, art: bool = False, absent: bool = False, n_horizons: int = 0) -> pa.Schema:
    """Arrow schema of the window shards.

    Every window carries what the current-pressure comparators read (dataset schema 3,
    :mod:`hypo.data.manifest`): ``last_dbp``, and ``earlier_map`` / ``earlier_time``, the readings before the
    last one (most recent first; NaN / -1 where there are fewer). ART-labelled datasets add ``art_last_map``,
    ``art_last_sbp``, ``art_last_dbp`` and ``art_earlier_map`` (the minutes ending
    :data:`~hypo.data.windows.ART_EARLIER_S` seconds before the window end); datasets built with ``allow_missing``
    add ``absent``: the signal groups the window's case lacks (NaN in ``x``), ``+``-joined, ``""`` when none.
    Multi-horizon datasets (``n_horizons`` > 0, ``hypo windows --horizons``) add ``horizon_labels``: int8
    fixed-size list, the window's class at each horizon of the manifest's ``horizons.horizons_s`` (ascending), -1
    where that horizon has no label; ``label`` stays the primary horizon's.
    """
    extra = [("last_dbp", pa.float32()), ("earlier_map", pa.list_(pa.float32(), EARLIER_READINGS)),
             ("earlier_time", pa.list_(pa.int32(), EARLIER_READINGS))]
    if art:
        extra += [("art_last_map", pa.float32()), ("art_last_sbp", pa.float32()), ("art_last_dbp", pa.float32()),
                  ("art_earlier_map", pa.list_(pa.float32(), len(ART_EARLIER_S)))]
    extra += [("absent", pa.string())] if absent else []
    extra += [("horizon_labels", pa.list_(pa.int8(), n_horizons))] if n_horizons else []
    return pa.schema(
        [
            ("caseid", pa.string()),
            ("subjectid", pa.string()),
            ("split", pa.string()),
            ("t_end", pa.int32()),
            ("x", pa.list_(pa.float32(), window_s * N_SIGNALS)),
            ("label", pa.int8()),
            ("label_time", pa.int32()),
            ("label_map", pa.float32()),
            ("label_sbp", pa.float32()),
            ("last_map", pa.float32()),
            ("last_sbp", pa.float32()),
            ("last_time", pa.int32()),
            *extra,
        ]
    )


class CleanCase(NamedTuple):
    """A case after artefact removal and gap filling (:func:`clean_case`)."""

    cleaned: np.ndarray  # [seconds, 7] artefact-free, unfilled: defines the cuff readings
    filled: np.ndarray  # the same after gap filling: the model input
    artefacts: dict[str, int]  # rule -> readings or samples removed
    merged: int  # cuff readings formed from values stamped apart (within WindowConfig.nibp_merge_s)
    absent: tuple[str, ...]  # allowed groups (WindowConfig.allow_missing) with no value in the whole case


def clean_case(case: Case, cfg: WindowConfig) -> CleanCase:
    """Check a case, group its cuff values into readings, remove its artefacts and fill its gaps.

    Returns:
        The cleaned and filled arrays, the artefact counts, the number of merged cuff readings and the groups of
        ``cfg.allow_missing`` the case lacks entirely.

    Raises:
        CaseRejected: ``too short`` or ``all-NaN signal`` (before or after artefact removal; a group of
            ``cfg.allow_missing`` may be empty), or, when artefact removal left no cuff reading, ``no complete cuff
            reading`` (SBP, MAP and DBP never together) or ``no valid cuff reading``; with the artefact counts.
    """
    if case.duration_s < cfg.min_case_s:
        raise CaseRejected("too short", f"case {case.caseid}: {case.duration_s} s < {cfg.min_case_s} s")
    case.check_signals(cfg.allow_missing)
    merged, n_merged = merge_cuff_values(case.signals, cfg.nibp_merge_s)
    cleaned, artefacts = remove_artefacts(merged)
    try:
        Case(case.caseid, case.subjectid, cleaned).check_signals(cfg.allow_missing)
    except CaseRejected as exc:
        raise _after_artefacts(exc, case.caseid, cleaned, artefacts, cfg) from None
    absent = tuple(g for g in cfg.allow_missing if not np.isfinite(cleaned[:, group_channels([g])]).any())
    return CleanCase(cleaned, fill_gaps(cleaned, cfg.fill), artefacts, n_merged, absent)


def _after_artefacts(exc: CaseRejected, caseid: str, cleaned: np.ndarray, artefacts: dict[str, int],
                     cfg: WindowConfig) -> CaseRejected:
    """The rejection of a case that artefact removal emptied, saying what happened, with the artefact counts."""
    removed = {k: v for k, v in artefacts.items() if v}
    if np.isfinite(cleaned[:, NIBP]).any():
        what = ", ".join(f"{k} {v}" for k, v in removed.items())
        return CaseRejected(exc.reason, f"{exc.detail} after artefact removal ({what})", artefacts)
    cuff = {k: v for k, v in removed.items() if k in NIBP_RULES}
    if set(cuff) == {"nibp_incomplete"}:
        return CaseRejected("no complete cuff reading",
                            f"SBP/MAP/DBP never in the same reading (case {caseid}: {cuff['nibp_incomplete']} partial "
                            f"readings removed; values more than --nibp-merge-s {cfg.nibp_merge_s} s apart are not "
                            "grouped)", artefacts)
    what = ", ".join(f"{k} {v}" for k, v in cuff.items())
    return CaseRejected("no valid cuff reading", f"case {caseid}: every cuff reading was an artefact ({what})",
                        artefacts)


def usable_arterial_line(case: Case) -> tuple[ArterialLine, dict[str, Any]]:
    """The case's arterial line after artefact removal, and what was removed.

    Returns:
        ``(clean, info)``; ``info`` holds the number of raw samples, the line's sampling interval and the
        samples each artefact rule removed.

    Raises:
        CaseRejected: ``no arterial line`` when the case has none, or none of its samples is valid.
    """
    raw = case.art.crop(case.duration_s) if case.art is not None else None
    if raw is None or len(raw) == 0:
        raise CaseRejected("no arterial line", f"case {case.caseid}: no arterial pressure samples")
    clean, counts = clean_arterial(raw)
    if len(clean) == 0:
        raise CaseRejected("no arterial line", f"case {case.caseid}: all {len(raw)} arterial samples are artefacts")
    return clean, {"samples": len(raw), "interval_s": raw.interval_s, "artefacts": counts}


def process_case(case: Case, cfg: WindowConfig) -> tuple[Windows, dict[str, Any]]:
    """Run the preprocessing steps on one case.

    Args:
        case: The case as a source yields it.
        cfg: Window, label, fill and split rules.

    Returns:
        ``(windows, summary)``; the summary holds counts (windows per class, drops, artefacts), the split and
        the window moments used for the train-only z-score.

    Raises:
        CaseRejected: When the case cannot be used (see :func:`clean_case`), has no usable arterial line when
            labels come from it (:func:`usable_arterial_line`), or yields no usable window.

    With ``cfg.cuff_from_art`` the case's cuff readings are first replaced by a cuff simulated from its arterial
    line (:func:`hypo.data.cuff.with_simulated_cuff`; counted in the summary's ``cuff_from_art``).
    """
    simulated = None
    if cfg.cuff_from_art is not None:
        case, simulated = with_simulated_cuff(case, cfg.cuff_from_art)
    cleaned, filled, artefacts, merged, absent = clean_case(case, cfg)
    try:
        art, art_info = usable_arterial_line(case) if cfg.label.source == "art" else (None, None)
        win = make_windows(cleaned, filled, cfg, art=art, absent=group_channels(absent))
        if len(win) == 0:
            raise CaseRejected(
                "no usable window",
                f"case {case.caseid}: {win.dropped_incomplete} incomplete, {win.dropped_no_label} without a label",
            )
    except CaseRejected as exc:  # rejected after artefact removal: its counts still go into the manifest
        raise CaseRejected(exc.reason, exc.detail, artefacts) from None
    split = assign_split(case.subjectid, cfg.split)
    summary = {
        "caseid": case.caseid,
        "subjectid": case.subjectid,
        "status": "ok",
        "split": split,
        "duration_s": int(case.duration_s),
        "n_windows": len(win),
        "class_counts": np.bincount(win.label, minlength=3).tolist(),
        "dropped": {"incomplete": win.dropped_incomplete, "no_label": win.dropped_no_label},
        "label_at_or_before_end": int((win.label_time <= win.t_end).sum()),
        "artefacts": artefacts,
        "nibp_merged": merged,
        "moments": Moments.of(win.x).to_dict(),
    }
    if cfg.allow_missing:
        summary["absent"] = list(absent)
    if win.horizon_labels is not None:  # per horizon: windows per class, then those without a label there
        summary["horizon_class_counts"] = [np.bincount(col + 1, minlength=4)[[1, 2, 3, 0]].tolist()
                                           for col in win.horizon_labels.T.astype(np.int64)]
    if art_info is not None:
        summary["art"] = art_info
    if simulated is not None:
        summary["cuff_from_art"] = simulated.to_dict()
    return win, summary


def windows_table(win: Windows, caseid: str, subjectid: str, split: str, window_s: int,
                  absent: list[str] | None = None) -> pa.Table:
    """The windows of one case as an Arrow table in :func:`window_schema`.

    ``absent`` (datasets built with ``allow_missing``): the groups the case lacks, marked on every window.
    """
    n = len(win)
    flat = pa.array(win.x.reshape(-1), type=pa.float32())
    cols = {
        "caseid": pa.array([caseid] * n, pa.string()),
        "subjectid": pa.array([subjectid] * n, pa.string()),
        "split": pa.array([split] * n, pa.string()),
        "t_end": pa.array(win.t_end, pa.int32()),
        "x": pa.FixedSizeListArray.from_arrays(flat, window_s * N_SIGNALS),
        "label": pa.array(win.label, pa.int8()),
        "label_time": pa.array(win.label_time, pa.int32()),
        "label_map": pa.array(win.label_map, pa.float32()),
        "label_sbp": pa.array(win.label_sbp, pa.float32()),
        "last_map": pa.array(win.last_map, pa.float32()),
        "last_sbp": pa.array(win.last_sbp, pa.float32()),
        "last_time": pa.array(win.last_time, pa.int32()),
        "last_dbp": pa.array(win.last_dbp, pa.float32()),
        "earlier_map": _fixed_list(win.earlier_map, pa.float32()),
        "earlier_time": _fixed_list(win.earlier_time, pa.int32()),
    }
    art = win.art_last_map is not None
    if art:
        cols["art_last_map"] = pa.array(win.art_last_map, pa.float32())
        cols["art_last_sbp"] = pa.array(win.art_last_sbp, pa.float32())
        cols["art_last_dbp"] = pa.array(win.art_last_dbp, pa.float32())
        cols["art_earlier_map"] = _fixed_list(win.art_earlier_map, pa.float32())
    if absent is not None:
        cols["absent"] = pa.array(["+".join(absent)] * n, pa.string())
    n_horizons = 0 if win.horizon_labels is None else win.horizon_labels.shape[1]
    if n_horizons:
        cols["horizon_labels"] = _fixed_list(win.horizon_labels, pa.int8())
    return pa.Table.from_pydict(cols, schema=window_schema(window_s, art, absent is not None, n_horizons))


def _fixed_list(values: np.ndarray, type_: pa.DataType) -> pa.FixedSizeListArray:
    """A [n, k] array as a fixed-size list column (NaN kept: a value, not a null)."""
    values = np.asarray(values)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type_), values.shape[1])


def shard_name(caseid: str) -> str:
    """File-safe shard name of a case."""
    return "case_" + re.sub(r"[^A-Za-z0-9._-]", "_", str(caseid))


def run_case(ref: dict[str, Any], source: Source, cfg: WindowConfig, out: str) -> dict[str, Any]:
    """Load, process and write one case; never raises for a bad case.

    The shard is written before the summary, both atomically, so a case counts as done only when its
    windows are complete on disk; the summary records the shard's rows, size and SHA-256
    (:func:`hypo.data.integrity.shard_record`), which a resumed build checks.

    Returns:
        The summary; ``status`` is ``"ok"`` or ``"rejected"`` (with ``reason`` and ``detail``).
    """
    caseid = str(ref.get("caseid"))
    try:
        case = source.load_case(ref)
        win, summary = process_case(case, cfg)
        name = shard_name(case.caseid)
        sha, size = storage.write_parquet(
            storage.join(out, "windows", summary["split"], name + ".parquet"),
            windows_table(win, case.caseid, case.subjectid, summary["split"], cfg.window_s, summary.get("absent")),
        )
        summary["shard"] = shard_record(summary["split"], name, len(win), sha, size)  # checked when a build resumes
        storage.write_json(storage.join(out, "cases", name + ".json"), summary)
        return summary
    except CaseRejected as exc:
        summary = {"caseid": caseid, "status": "rejected", "reason": exc.reason, "detail": exc.detail}
        if exc.artefacts is not None:
            summary["artefacts"] = exc.artefacts
    except HypoError as exc:  # e.g. the network went away mid-run: worth a retry later
        summary = {"caseid": caseid, "status": "rejected", "reason": "download failed", "detail": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a bad case must never take the job down
        last = traceback.extract_tb(exc.__traceback__)[-1]
        detail = f"{type(exc).__name__}: {exc} ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
        summary = {"caseid": caseid, "status": "rejected", "reason": "error", "detail": detail.splitlines()[0]}
    storage.write_json(storage.join(out, "rejected", shard_name(caseid) + ".json"), summary)
    return summary

