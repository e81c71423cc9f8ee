"""The preprocessing job: cases -> sharded, labelled, subject-split Parquet windows, as a Ray Data pipeline.

Each Ray task (``num_cpus_per_task`` settable) takes a few cases (``cases_per_task``) and, one case at a time,
loads it from its source, removes artefacts, fills gaps, cuts and labels windows, assigns the subject's split
and writes one Parquet shard plus a small JSON summary. Grouping cases amortises Ray Data's per-task overhead,
which is several times the work of one case (``bench/preprocess.py``); a task still holds one case at a time.
The driver only collects summaries, so memory stays flat however many cases stream through.
A re-run skips cases already written (and final rejections); a killed run re-run finishes with no duplicate
and no missing window. A re-run also repairs: a done case whose shard is missing or not what its summary says was
written is built again, and named (:mod:`hypo.data.integrity`). The manifest (``DIR/manifest.json``) is rebuilt
from all summaries at the end, so a re-run also rewrites a damaged or edited manifest.

Layout of ``DIR``::

    config.json                      the WindowConfig and source fingerprint the folder was built with
    manifest.json                    signals, rules, counts, train-only z-score, rejections, fingerprints
    windows/{train,val,test}/case_<id>.parquet
    cases/case_<id>.json             per-case summary (done marker), with its shard's rows, size and SHA-256
    rejected/case_<id>.json          per-case rejection with its reason
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import itertools
import math
import time
from typing import Any

import numpy as np

from hypo import __version__, storage
from hypo.config import LabelConfig, WindowConfig, fingerprint, from_dict, to_dict
from hypo.data.art import ART_RULE_TEXT, ART_RULES, samples_needed
from hypo.data.artefacts import RULES
from hypo.data.integrity import check_done_cases, zscore_checksum
from hypo.data.manifest import FORMAT, SCHEMA_VERSION, Manifest, write_manifest
from hypo.data.moments import Moments
from hypo.data.pipeline import TRANSIENT_REASONS, run_case, shard_name
from hypo.data.signals import CLASSES, SIGNALS, UNITS
from hypo.data.sources.base import Source
from hypo.data.splits import SPLITS
from hypo.errors import ConfigError, DatasetError


def _map_row(row: dict[str, Any], source: Source, cfg: dict[str, Any], out: str) -> dict[str, Any]:
    """Ray Data map function: one case reference in, its JSON summary out (one flat string column)."""
    import json

    summary = run_case(json.loads(row["ref"]), source, from_dict(WindowConfig, cfg), out)
    return {"summary": json.dumps(summary)}


def _check_folder_config(out: str, cfg: WindowConfig, source: Source) -> None:
    """Refuse to mix windows built with another config or source in one folder."""
    want = {"config": to_dict(cfg), "source": source.name, "source_fingerprint": source.fingerprint()}
    path = storage.join(out, "config.json")
    if storage.exists(path):
        try:
            have = storage.read_json(path)
        except (ValueError, OSError) as exc:
            why = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise ConfigError(f"{path}: unreadable ({why}); it records what the folder was built with: restore it, "
                              "or build into a new --out folder") from None
        if have != want:
            diff = sorted(k for k in want if have.get(k) != want[k])
            raise ConfigError(
                f"{out} holds windows built with another {'/'.join(diff)}; use a new --out folder"
            )
    else:
        storage.write_json(path, want)


def _done_cases(out: str) -> tuple[set[str], set[str]]:
    """Shard names already finished: (ok, finally rejected)."""
    ok = {n[: -len(".json")] for n in storage.list_files(storage.join(out, "cases"), ".json")}
    rejected = set()
    for n in storage.list_files(storage.join(out, "rejected"), ".json"):
        try:
            s = storage.read_json(storage.join(out, "rejected", n))
        except (ValueError, OSError):  # damaged: tried again, and its summary written again
            continue
        if isinstance(s, dict) and s.get("reason") not in TRANSIENT_REASONS:
            rejected.add(n[: -len(".json")])
    return ok, rejected - ok


def _check_unique_shards(refs: list[dict[str, Any]]) -> None:
    """Refuse case ids that would share a shard file (e.g. ``a b`` and ``a_b``), which would overwrite data."""
    seen: dict[str, str] = {}
    for r in refs:
        cid = str(r["caseid"])
        name = shard_name(cid)
        if name in seen:
            raise ConfigError(f"case ids {seen[name]!r} and {cid!r} both map to the file name {name}; "
                              "rename one of them")
        seen[name] = cid


def num_tasks(n_cases: int, cases_per_task: int, cpu_slots: int) -> int:
    """How many Ray tasks share ``n_cases``.

    About ``cases_per_task`` cases each, but at least two tasks per CPU slot when there are cases enough (so no
    slot idles while one task finishes its batch), and never more tasks than cases.

    Args:
        n_cases: Cases still to process.
        cases_per_task: Cases one task should take in turn.
        cpu_slots: Tasks the cluster can run at once.

    Returns:
        The number of blocks to split the case list into (at least 1).
    """
    return max(1, min(n_cases, max(math.ceil(n_cases / cases_per_task), 2 * max(1, cpu_slots))))


def _cpu_slots(num_cpus_per_task: float) -> int:
    """Tasks of ``num_cpus_per_task`` CPUs the running Ray cluster (else this machine) can run at once."""
    import os

    import ray

    cpus = ray.cluster_resources().get("CPU", 1) if ray.is_initialized() else os.cpu_count() or 1
    return max(1, int(cpus // num_cpus_per_task))


def _check_request(source: Source, cfg: WindowConfig, cases_per_task: int, num_cpus_per_task: float) -> None:
    """Refuse settings :func:`build_windows` cannot run with, and a source that cannot give what ``cfg`` asks."""
    if cases_per_task < 1:
        raise ConfigError(f"--cases-per-task must be >= 1, got {cases_per_task}")
    if not num_cpus_per_task > 0:
        raise ConfigError(f"--num-cpus-per-task must be > 0, got {num_cpus_per_task}")
    if cfg.label.source == "art" and getattr(source, "arterial", True) is False:
        raise ConfigError(f"ART labels need a source that reads the arterial line; make it with arterial=True "
                          f"({source!r})")
    lacking = sorted(set(cfg.allow_missing) - set(getattr(source, "allow_missing", cfg.allow_missing)))
    if lacking:
        raise ConfigError(f"--allow-missing {','.join(cfg.allow_missing)}: the source still rejects files without "
                          f"{' or '.join(lacking)}; make it with allow_missing={cfg.allow_missing!r}")


def build_windows(
    source: Source,
    cfg: WindowConfig,
    out: str,
    *,
    num_cpus_per_task: float = 1.0,
    cases_per_task: int = 16,
    progress: bool = True,
    log=print,
) -> Manifest:
    """Run the preprocessing job (Ray must be initialised, or is started locally by Ray Data).

    Args:
        source: Where cases come from.
        cfg: Window, label, fill and split rules.
        out: Output folder (local path or ``s3://...``).
        num_cpus_per_task: CPUs reserved by each task.
        cases_per_task: Cases one task processes, one after another (each still gets its own shard and
            summary, so resuming works case by case). Lowered when that would leave CPUs idle.
        progress: Show Ray Data's progress bars.
        log: Where the summary lines go.

    Returns:
        The manifest (also written to ``out/manifest.json``).
    """
    import json

    import ray

    _check_request(source, cfg, cases_per_task, num_cpus_per_task)
    start = time.perf_counter()
    out = storage.absolute(out)
    storage.makedirs(out)
    _check_folder_config(out, cfg, source)
    refs = source.case_refs()
    _check_unique_shards(refs)
    for line in getattr(source, "notes", list)():  # e.g. files a subjects file does not list
        log(f"note: {line}")
    ok, final_rej = _done_cases(out)
    # a done case counts only while its shard is what its summary says was written; the others are built again
    intact = check_done_cases(out, ok & {shard_name(r["caseid"]) for r in refs}, log)
    todo = [r for r in refs if shard_name(r["caseid"]) not in intact.keys() | final_rej]
    skipped = len(refs) - len(todo)
    if skipped:
        log(f"resuming: {skipped} of {len(refs)} cases already done in {out}")

    new: dict[str, dict[str, Any]] = {}
    if todo:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        blocks = num_tasks(len(todo), cases_per_task, _cpu_slots(num_cpus_per_task))
        ds = ray.data.from_items([{"ref": json.dumps(r)} for r in todo], override_num_blocks=blocks)
        ds = ds.map(_map_row, fn_kwargs={"source": source, "cfg": to_dict(cfg), "out": out},
                    num_cpus=num_cpus_per_task)
        for row in ds.iter_rows():
            s = json.loads(row["summary"])
            new[shard_name(s["caseid"])] = s

    summaries = []
    for r in refs:
        name = shard_name(r["caseid"])
        if name in new:
            summaries.append(new[name])
        elif name in intact:
            summaries.append(intact[name])
        elif name in final_rej:
            summaries.append(storage.read_json(storage.join(out, "rejected", name + ".json")))
    manifest = make_manifest(summaries, cfg, source, wall_s=time.perf_counter() - start)
    write_manifest(out, manifest)
    for line in summary_lines(manifest):
        log(line)
    for line in manifest.warnings:
        log(f"warning: {line}")
    return manifest


def art_label_section(label: LabelConfig, summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's description of ART labels: the event definition, coverage rule and artefact counts."""
    half = label.event_s // 2
    artefacts, samples, intervals = dict.fromkeys(ART_RULES, 0), 0, []
    for s in summaries:
        if s["status"] == "ok" and "art" in s:
            samples += s["art"]["samples"]
            intervals.append(s["art"]["interval_s"])
            for k, v in s["art"]["artefacts"].items():
                artefacts[k] = artefacts.get(k, 0) + v
    return {
        "event": (f"class of the arterial pressure over [t_end + {label.horizon_s - half} s, t_end + "
                  f"{label.horizon_s + half} s): hypotension when every valid ART MAP sample is < {label.hypo_map:g}"
                  f" mmHg, else hypertension when every valid ART SBP sample is > {label.hyper_sbp:g} mmHg, "
                  "else normal"),
        "coverage": (f"at least {100 * label.min_coverage:g}% of the samples the line's own interval promises in "
                     f"{label.event_s} s, counted at their native times (e.g. {samples_needed(2.0, label)} of "
                     f"{round(label.event_s / 2.0)} at 2 s); windows below are dropped as no_label"),
        "label_map_sbp": f"medians of the valid ART MAP / SBP samples of that {label.event_s} s",
        "art_last": (f"art_last_map / art_last_sbp: medians of the window's last {label.event_s} s of ART "
                     "(NaN below coverage)"),
        "artefact_rules": dict(ART_RULE_TEXT),
        "artefacts": artefacts,
        "samples": samples,
        "removed_share": sum(artefacts.values()) / samples if samples else 0.0,
        "median_interval_s": float(np.median(intervals)) if intervals else None,
    }


def horizon_section(label: LabelConfig, tally: CaseTally) -> dict[str, Any] | None:
    """The manifest's ``horizons`` section of a multi-horizon build (None for one horizon)."""
    if not label.horizons_s:
        return None
    rule = ("each horizon's label: the arterial stretch centred that long after the window end" if label.source == "art"
            else f"each horizon's label: the cuff rule ({label.mode} mode) at that horizon, tolerance "
                 f"min({label.tolerance_s} s, horizon - 1 s)" if label.mode == "reading"
            else f"each horizon's label: the cuff rule ({label.mode} mode) at that horizon")
    counts = {}
    for sp in SPLITS:
        arr = tally.horizons.get(sp, np.zeros((len(label.horizons_s), 4), np.int64))
        counts[sp] = {str(h): dict(zip((*CLASSES, "missing"), map(int, row)))
                      for h, row in zip(label.horizons_s, arr)}
    return {"horizons_s": list(label.horizons_s), "primary_s": label.horizon_s, "missing_label": -1,
            "rule": rule + "; the windows kept are those labelled at the primary horizon", "counts": counts}


def class_warnings(counts: dict[str, dict[str, int]]) -> list[str]:
    """One line per split that lacks a class (evaluation metrics of that class are then undefined there)."""
    out = []
    for sp, c in counts.items():
        if c["windows"] == 0:
            out.append(f"the {sp} split has no window")
            continue
        missing = [k for k in CLASSES if c[k] == 0]
        if missing:
            out.append(f"the {sp} split has no {' and no '.join(missing)} window; use more cases for metrics of "
                       f"{'that class' if len(missing) == 1 else 'those classes'} there")
    return out


@dataclasses.dataclass
class CaseTally:
    """Per-case summaries added up, split by split (the first stage of :func:`make_manifest`)."""

    allow_missing: tuple[str, ...]
    counts: dict[str, dict[str, int]] = dataclasses.field(
        default_factory=lambda: {s: {"cases": 0, "subjects": 0, "windows": 0, **dict.fromkeys(CLASSES, 0)}
                                 for s in SPLITS})
    subjects: dict[str, set] = dataclasses.field(default_factory=lambda: {s: set() for s in SPLITS})
    moments: Moments = dataclasses.field(default_factory=lambda: Moments.empty(len(SIGNALS)))
    artefacts: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(RULES, 0))
    artefacts_rejected: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(RULES, 0))
    dropped: dict[str, int] = dataclasses.field(default_factory=lambda: {"incomplete": 0, "no_label": 0})
    rejected: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    ok_cases: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    at_or_before: int = 0
    case_hours: float = 0.0
    merged: int = 0
    absent: dict[str, Any] = dataclasses.field(default_factory=dict)
    horizons: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # split -> int [H, 4] (classes, missing)

    def __post_init__(self) -> None:
        self.absent = {"cases": dict.fromkeys(self.allow_missing, 0),
                       "windows": {sp: dict.fromkeys(self.allow_missing, 0) for sp in SPLITS}}

    def add(self, s: dict[str, Any]) -> None:
        """Count one case's summary (a rejection, or the windows it gave its split)."""
        if s["status"] != "ok":
            self.rejected.append({k: s.get(k, "") for k in ("caseid", "reason", "detail")})
            for k, v in (s.get("artefacts") or {}).items():
                self.artefacts_rejected[k] = self.artefacts_rejected.get(k, 0) + v
            return
        sp = s["split"]
        c = self.counts[sp]
        c["cases"] += 1
        c["windows"] += s["n_windows"]
        for name, n in zip(CLASSES, s["class_counts"]):
            c[name] += n
        self.subjects[sp].add(s["subjectid"])
        for k, v in s["artefacts"].items():
            self.artefacts[k] = self.artefacts.get(k, 0) + v
        for k, v in s["dropped"].items():
            self.dropped[k] += v
        self.merged += s.get("nibp_merged", 0)
        for g in s.get("absent", ()):
            self.absent["cases"][g] = self.absent["cases"].get(g, 0) + 1
            self.absent["windows"][sp][g] = self.absent["windows"][sp].get(g, 0) + s["n_windows"]
        if "horizon_class_counts" in s:
            hc = np.asarray(s["horizon_class_counts"], np.int64)
            self.horizons[sp] = self.horizons.get(sp, np.zeros_like(hc)) + hc
        self.at_or_before += s["label_at_or_before_end"]
        self.case_hours += s["duration_s"] / 3600
        if sp == "train":
            self.moments = self.moments.combine(Moments.from_dict(s["moments"]))
        self.ok_cases.append((s["caseid"], s["n_windows"]))

    @property
    def total_windows(self) -> int:
        """Windows of every split."""
        return sum(c["windows"] for c in self.counts.values())


def tally_cases(summaries: list[dict[str, Any]], allow_missing: tuple[str, ...]) -> CaseTally:
    """Add up per-case summaries, and check what the dataset must hold.

    Raises:
        DatasetError: Every case rejected, or a subject in two splits.
        ConfigError: Usable cases, but none in the train split (more cases or a larger train share).
    """
    tally = CaseTally(allow_missing)
    for s in summaries:
        tally.add(s)
    for sp in SPLITS:
        tally.counts[sp]["subjects"] = len(tally.subjects[sp])
    if np.all(tally.moments.n == 0):
        rejected = tally.rejected
        reasons = collections.Counter(r["reason"] for r in rejected).most_common()
        why = ", ".join(f"{k} {v}" for k, v in reasons)
        if not tally.ok_cases:
            raise DatasetError(f"no window landed in the train split: all {len(rejected)} cases were rejected ({why})"
                               if rejected else "no window landed in the train split: the source listed no case")
        raise ConfigError(f"no window landed in the train split: {len(tally.ok_cases)} usable cases"
                          + (f" ({len(rejected)} rejected: {why})" if rejected else "")
                          + " gave it none; use more cases or a larger train share (--split)")
    for a, b in itertools.combinations(SPLITS, 2):  # guaranteed by assign_split; checked, as it matters most
        both = tally.subjects[a] & tally.subjects[b]
        if both:
            raise DatasetError(f"subjects in both the {a} and {b} splits: {', '.join(sorted(both)[:5])}")
    return tally


def make_manifest(summaries: list[dict[str, Any]], cfg: WindowConfig, source: Source, wall_s: float) -> Manifest:
    """Aggregate per-case summaries into the dataset manifest (:func:`tally_cases`, then the record)."""
    t = tally_cases(summaries, cfg.allow_missing)
    total = t.total_windows
    describe = getattr(source, "describe", None)  # a source that cannot describe itself cannot be replayed
    src = {"name": source.name, "fingerprint": source.fingerprint(), "report": source.report(),
           "spec": describe() if describe is not None else None}
    body = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "signals": list(SIGNALS),
        "units": dict(UNITS),
        "window_s": cfg.window_s,
        "stride_s": cfg.stride_s,
        "horizon_s": cfg.label.horizon_s,
        "label": cfg.label,
        "classes": list(CLASSES),
        "counts": t.counts,
        "zscore": {"mean": t.moments.mean.tolist(), "std": t.moments.std.tolist(), "fitted_on": "train",
                   "n_values": t.moments.n_total, "checksum": zscore_checksum(t.moments.mean, t.moments.std)},
        "cases": {"listed": len(summaries), "ok": len(t.ok_cases), "rejected": len(t.rejected),
                  "case_hours": round(t.case_hours, 3)},
        "rejected_counts": dict(collections.Counter(r["reason"] for r in t.rejected).most_common()),
        "rejected": t.rejected,
        "artefacts": t.artefacts,
        "artefacts_in_rejected_cases": t.artefacts_rejected,
        "nibp_merge_s": cfg.nibp_merge_s,
        "nibp_merged_readings": t.merged,
        "absent_groups": ({"allowed": list(cfg.allow_missing), **t.absent,
                           "note": "windows of cases lacking a group hold NaN there (column absent names it)"}
                          if cfg.allow_missing else None),
        "dropped_windows": t.dropped,
        "labels_at_or_before_window_end": {"count": t.at_or_before, "share": t.at_or_before / total if total else 0.0},
        "label_source": cfg.label.source,
        "art_label": art_label_section(cfg.label, summaries) if cfg.label.source == "art" else None,
        "horizons": horizon_section(cfg.label, t),
        "warnings": class_warnings(t.counts),
        "config": cfg,
        "source": src,
        # the dataset's identity: its rules, its source and the cases it used (never this record's layout)
        "fingerprint": fingerprint({"config": to_dict(cfg), "source": src["fingerprint"], "cases": t.ok_cases}),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hypo_version": __version__,
        "wall_s": round(wall_s, 2),
    }
    return Manifest.model_validate(body)


def summary_lines(manifest: Manifest) -> list[str]:
    """Human summary of a manifest: cases read / rejected by reason, windows per split and class, wall time."""
    c = manifest.cases
    lines = [
        f"cases: {c.listed} listed, {c.ok} used ({c.case_hours:.1f} case-hours), {c.rejected} rejected"
    ]
    for reason, n in manifest.rejected_counts.items():
        lines.append(f"  rejected {n:>6}  {reason}")
    lines.append(f"{'split':<6} {'cases':>6} {'subjects':>8} {'windows':>9} " + " ".join(f"{k:>12}" for k in CLASSES))
    for sp, cnt in manifest.counts.items():
        w = max(cnt.windows, 1)
        cls = " ".join(f"{cnt.of(k):>6} {100 * cnt.of(k) / w:4.1f}%" for k in CLASSES)
        lines.append(f"{sp:<6} {cnt.cases:>6} {cnt.subjects:>8} {cnt.windows:>9} {cls}")
    d = manifest.dropped_windows
    art_label = manifest.art_label
    why = "whose labelled ART minute lacks coverage" if art_label else "without a label reading"
    lines.append(f"windows dropped: {d.incomplete} incomplete after filling, {d.no_label} {why}")
    art = {k: v for k, v in manifest.artefacts.items() if v}
    lines.append("artefacts removed: " + (", ".join(f"{k} {v}" for k, v in art.items()) or "none"))
    rej = {k: v for k, v in manifest.artefacts_in_rejected_cases.items() if v}
    if rej:
        lines.append("artefacts removed in rejected cases: " + ", ".join(f"{k} {v}" for k, v in rej.items()))
    schedule = manifest.config.cuff_from_art if manifest.config is not None else None
    if schedule is not None:
        from hypo.data.cuff import schedule_text

        lines.append(schedule_text(schedule))
    if manifest.nibp_merged_readings:
        lines.append(f"cuff readings grouped from values stamped up to {manifest.nibp_merge_s} s apart: "
                     f"{manifest.nibp_merged_readings}")
    gone = manifest.absent_groups
    if gone:
        cases = ", ".join(f"{g} {n} cases" for g, n in gone.cases.items())
        wins = ", ".join(f"{g} {sum(w.get(g, 0) for w in gone.windows.values())} windows" for g in gone.allowed)
        lines.append(f"kept without a group (--allow-missing {','.join(gone.allowed)}): {cases}; {wins}")
    if art_label:
        removed = {k: v for k, v in art_label.artefacts.items() if v}
        lines.append(f"arterial line: {art_label.samples} samples, removed "
                     + (", ".join(f"{k} {v}" for k, v in removed.items()) or "none")
                     + f" ({100 * art_label.removed_share:.1f}%)")
        lines.append(f"label source art: {art_label.event}")
    else:
        lead = manifest.labels_at_or_before_window_end
        lines.append(
            f"label mode {manifest.label.mode}: {100 * lead.share:.1f}% of labels come from a reading at "
            "or before the window end"
        )
    lines += horizon_lines(manifest)
    lines.append(f"fingerprint {manifest.fingerprint}  wall time {manifest.wall_s:.1f} s")
    return lines


def horizon_lines(manifest: Manifest) -> list[str]:
    """Per horizon of a multi-horizon dataset: the windows labelled there, missing, and hypotension share."""
    sec = manifest.horizons
    if sec is None:
        return []
    lines = [f"horizons {','.join(map(str, sec.horizons_s))} s (primary {sec.primary_s} s keeps the windows; "
             f"a label missing at another horizon is {sec.missing_label}):"]
    for h in sec.horizons_s:
        rows = [c[str(h)] for c in sec.counts.values() if str(h) in c]
        labelled = sum(r.normal + r.hypotension + r.hypertension for r in rows)
        hypo = sum(r.hypotension for r in rows)
        lines.append(f"  {h:>5} s  labelled {labelled:>8}  missing {sum(r.missing for r in rows):>7}  "
                     f"hypotension {100 * hypo / max(labelled, 1):4.1f}%")
    return lines
