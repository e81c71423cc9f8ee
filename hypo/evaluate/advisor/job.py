"""``hypo advisor``: the cuff advisor against fixed schedules and the trend trigger, on a dataset's recordings.

    result = advisor_job(AdvisorRequest(model="runs/demo-art", out="runs/demo-art/advisor"))

Every validation and test recording with an arterial line (a dataset built with ``--label-source art``) is reloaded
from its source (:class:`hypo.evaluate.alarms.replay.Recordings`) and run closed-loop
(:class:`~hypo.evaluate.advisor.closed_loop.CaseLoop`) under:

- **fixed schedules**: an inflation every 60, 150 and 300 s (no model);
- **the trend trigger**: the base schedule plus a request whenever the last readings' MAP trend, extrapolated to the
  horizon, is below a level (55-85 mmHg);
- **the advisor**: the base schedule plus a request whenever the model's p(hypotension) is >= a trigger threshold,
  over a grid of thresholds taken from the validation split's risks; the threshold is fixed on validation at the
  budget (:func:`~hypo.evaluate.advisor.scoring.choose_threshold`) and then applied to test.

It writes ``advisor.json`` (every point of both splits), ``advisor.md`` (the test table) and ``advisor.png`` (median
delay and episodes detected against extra inflations per hour) in ``out``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any

import numpy as np

from hypo.errors import HypoError
from hypo.evaluate.advisor.closed_loop import CaseLoop, LoopConfig, PolicyRun
from hypo.evaluate.advisor.scoring import BUDGET_PER_H, PolicyScore, choose_threshold, detection_delays, threshold_grid

SCHEDULES_S: tuple[int, ...] = (60, 150, 300)
TREND_LEVELS: tuple[float, ...] = (55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0)
ADVISOR, SCHEDULE, TREND = "advisor", "schedule", "trend"


@dataclasses.dataclass(frozen=True)
class AdvisorRequest:
    """What ``hypo advisor`` runs.

    Attributes:
        model: A ``model.pt`` (``hypo export``) or a search's experiment folder (its first trial, or ``trial``).
        out: Output folder.
        data: The window dataset whose recordings are replayed (default: the experiment's).
        trial: Trial id of an experiment.
        loop: The simulated cuff and the policies' timing.
        budget_per_h: Extra inflations per hour the advisor may cost on validation.
        schedules: Fixed schedules (s).
        trend_levels: Levels of the trend trigger (mmHg).
        n_thresholds: Advisor thresholds in the grid.
        max_cases: At most this many recordings per split (a deterministic subsample).
        n_boot: Subject-bootstrap replicates of the median delay (0: none).
    """

    model: str
    out: str
    data: str | None = None
    trial: str | None = None
    loop: LoopConfig = dataclasses.field(default_factory=LoopConfig)
    budget_per_h: float = BUDGET_PER_H
    schedules: tuple[int, ...] = SCHEDULES_S
    trend_levels: tuple[float, ...] = TREND_LEVELS
    n_thresholds: int = 16
    max_cases: int | None = None
    n_boot: int = 1000


@dataclasses.dataclass
class SplitRun:
    """One split's recordings run closed-loop: every policy's score, and the cases that failed."""

    split: str
    scores: list[PolicyScore]
    n_cases: int
    failures: list[dict[str, Any]]
    hours: float

    def family(self, name: str) -> list[PolicyScore]:
        """The points of one family, in parameter order."""
        return sorted((s for s in self.scores if s.family == name), key=lambda s: s.param)


def _score(family: str, param: float, loops: list[CaseLoop], runs: list[PolicyRun], hypo_map: float) -> PolicyScore:
    delays, subjects = [], []
    for loop, run in zip(loops, runs):
        ep = loop.events.of_kind("scored")
        delays.append(detection_delays(ep, run.time, run.map, hypo_map, loop.cfg.inflation_s))
        subjects += [loop.case.subjectid] * len(ep)
    return PolicyScore(family, float(param), np.concatenate(delays) if delays else np.zeros(0),
                       np.asarray(subjects, dtype=object), int(sum(len(r.requests) for r in runs)),
                       int(sum(len(lo.base_requests) for lo in loops)), float(sum(lo.hours for lo in loops)))


def load_loops(recordings, split: str, model, cfg: LoopConfig, max_cases: int | None, log=print
               ) -> tuple[list[CaseLoop], list[dict[str, Any]]]:
    """Every recording of a split, loaded and prepared for closed-loop runs; failures counted with their reason."""
    from hypo.evaluate.alarms.replay import case_failure, split_cases, subsample

    chosen = subsample(split_cases(recordings.data_dir, split), max_cases)
    refs = {str(r["caseid"]): r for r in recordings.source.case_refs()}
    loops, failures = [], []
    for info in chosen:
        try:
            case = recordings.source.load_case(refs.get(info["caseid"], {"caseid": info["caseid"]}))
            loops.append(CaseLoop(case, model, recordings.manifest.label, cfg))
        except Exception as exc:  # noqa: BLE001 - one bad recording must never end the run
            failures.append(case_failure(info["caseid"], exc))
    if failures:
        log(f"advisor, {split} split: {len(failures)} of {len(chosen)} cases could not be run "
            f"({', '.join(sorted({f['reason'] for f in failures}))})")
    return loops, failures


def run_split(loops: list[CaseLoop], split: str, thresholds, req: AdvisorRequest, hypo_map: float,
              failures=()) -> SplitRun:
    """Every policy on every recording of one split, scored."""
    scores = [_score(SCHEDULE, s, loops, [lo.schedule(s) for lo in loops], hypo_map) for s in req.schedules]
    scores += [_score(TREND, v, loops, [lo.trend(v) for lo in loops], hypo_map) for v in req.trend_levels]
    scores += [_score(ADVISOR, t, loops, [lo.advisor(t) for lo in loops], hypo_map) for t in thresholds]
    return SplitRun(split, scores, len(loops), list(failures), float(sum(lo.hours for lo in loops)))


def test_look(model) -> str:
    """Record this look at an experiment's test split (``test_looks.jsonl``) and say which look it is.

    A model file is not an experiment: its looks are not recorded (``""``).
    """
    from hypo.evaluate.testsplit.looks import describe_looks, record_look

    if model.origin != "run" or not os.path.isdir(model.path):
        return ""
    t, f = model.sidecar.trial, model.sidecar.fingerprints
    looks = record_look(model.path, "hypo advisor", [{"trial": t.id if t else None, "rank": t.rank if t else None,
                                                      "checkpoint_sha256": f.checkpoint_sha256 if f else None}])
    return describe_looks(looks)


def advisor_job(req: AdvisorRequest, log=print) -> dict[str, Any]:
    """Run every policy on validation and test; fix the threshold on validation; write and print the test table.

    See the module docstring. Run on an experiment's trial, the look at its test split is recorded.

    Raises:
        HypoError: A dataset without arterial-line labels, or no recording that could be run.
    """
    from hypo.evaluate.export_trial import load_model_or_trial
    from hypo.search.experiments import experiment_dataset

    model = load_model_or_trial(req.model, req.trial)
    data = req.data or (experiment_dataset(req.model) if os.path.isdir(req.model) else None)
    if not data:
        raise HypoError("give --data: the window dataset whose recordings the advisor replays")
    return run_advisor(model, data, req, test_look(model), log)


def run_advisor(model, data: str, req: AdvisorRequest, looks: str = "", log=print, print_table: bool = True
                ) -> dict[str, Any]:
    """The advisor, the schedules and the trend trigger of one model on one dataset's recordings, written.

    Args:
        model: The :class:`~hypo.infer.model.ExportedModel`.
        data: Its window dataset (ART labels).
        req: What to run and where to write (``req.model`` is not read).
        looks: Which look at the test split this is (:func:`test_look`; ``""``: not said).
        log: Where progress lines and the table go.
        print_table: Log the table too.

    Returns:
        What ``advisor.json`` holds, with ``files`` (its table, figure and JSON) and ``table`` (the Markdown).

    Raises:
        HypoError: A dataset without arterial-line labels, or no recording that could be run.
    """
    from hypo.evaluate.advisor.report import advisor_table, write_outputs
    from hypo.evaluate.alarms.replay import Recordings

    t0 = time.perf_counter()
    recordings = Recordings.of(data)
    label = recordings.manifest.label
    if label.source != "art":
        raise HypoError(f"{data}: the advisor needs recordings with an arterial line (a dataset built with "
                        f"--label-source art); this one is labelled from the {label.source}")
    trained = getattr(recordings.manifest.config, "cuff_from_art", None)
    if trained is not None and (trained.interval_s, trained.cuff) != (req.loop.base_interval_s, req.loop.cuff()):
        log(f"advisor: note: the model was trained on a cuff simulated every {trained.interval_s} s "
            f"({trained.cuff.inflation_s} s inflation, error {trained.cuff.error}); the advisor's base schedule is "
            f"every {req.loop.base_interval_s} s ({req.loop.inflation_s} s, error {req.loop.cuff_error})")
    runs, chosen, how = {}, math.nan, ""
    for split in ("val", "test"):
        loops, failures = load_loops(recordings, split, model, req.loop, req.max_cases, log)
        if not loops:
            raise HypoError(f"{data}: no {split} recording could be run closed-loop")
        if split == "val":
            grid = threshold_grid(np.concatenate([lo.base_risk for lo in loops]), req.n_thresholds)
            if not len(grid):
                raise HypoError(f"{data}: the model scored no window of the validation recordings (every window "
                                "incomplete): no trigger threshold to choose")
        runs[split] = run_split(loops, split, grid if split == "val" else np.unique(np.r_[grid, chosen]), req,
                                label.hypo_map, failures)
        if split == "val":
            chosen, how = choose_threshold(runs["val"].family(ADVISOR), req.budget_per_h)
        log(f"advisor, {split} split: {len(loops)} recordings, {runs[split].hours:.1f} h "
            f"({time.perf_counter() - t0:.0f} s)")
    table = advisor_table(runs["test"], chosen, how, req, recordings.manifest, model, looks)
    if print_table:
        log(table)
    return {**write_outputs(req, runs, chosen, how, table, recordings.manifest, model), "table": table}


def report_advisor(chosen, out_dir: str, n_boot: int, max_cases: int | None = None, log=print) -> dict[str, Any]:
    """``hypo report --advisor``: the report's trial run by :func:`run_advisor` into ``out_dir/advisor``.

    The report records its own look at the test split; this one is not recorded again.

    Returns:
        What ``advisor.json`` holds, or ``{"error": why}`` when the recordings cannot be run (no arterial line...).
    """
    from hypo.evaluate.export_trial import trial_model

    try:
        model = trial_model(chosen.exp_path, chosen.trial_id)[0]
        req = AdvisorRequest(model=chosen.exp_path, out=os.path.join(out_dir, "advisor"), n_boot=n_boot,
                             max_cases=max_cases)
        return run_advisor(model, chosen.data_dir, req, log=log, print_table=False)
    except HypoError as exc:
        log(f"  cuff advisor not possible: {exc}")
        return {"error": str(exc)}
