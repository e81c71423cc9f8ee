"""The one replaceable place where a bed's recent seconds become a window and windows become probabilities.

    scorer = BedScorer("model.pt", stride_s=10)
    prepared = scorer.prepare(rows, end)             # rows: float32 [scorer.history_s, 7] ending at second `end`
    probs = scorer.predict_proba(np.stack([prepared.x, ...]))    # [n, 3], batched across beds

Phase 1 prepares a window with the infer layer's offline functions: the bed's last ``history_s`` seconds go
through :func:`hypo.infer.predict.prepare_case` (unit check, cuff merge, artefacts, gap filling, completeness:
exactly what ``hypo predict`` does to a file) and the window ending at ``end`` is kept. The buffer holds only the
past, so nothing after ``end`` is used; what ``prepare_case`` decides on the whole buffer (a group absent, the units)
is decided on these ``history_s`` seconds. Phase 2 replaces :meth:`BedScorer.prepare` with the shared causal
pipeline that ``hypo evaluate --alarms`` also runs, and the model with ``ExportedModel``: both live only here
(:func:`load_model` and :meth:`BedScorer.predict_proba` are the only uses of the exported model in ``hypo.serve``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from hypo.data.signals import GROUP_NAMES, GROUPS
from hypo.errors import HypoError
from hypo.infer.alarm_policy import HYSTERESIS_DEFAULT, M_DEFAULT


def load_model(path: str):
    """The exported model (:class:`hypo.infer.model.ExportedModel`; the only place ``hypo.serve`` loads one)."""
    from hypo.infer.model import ExportedModel

    return ExportedModel.load(path)


@dataclasses.dataclass(frozen=True)
class AlarmPolicy:
    """The alarm a bed runs: threshold on p(hypotension), ``m`` consecutive predictions, hysteresis."""

    threshold: float
    m: int = M_DEFAULT
    hysteresis: float = HYSTERESIS_DEFAULT

    def __post_init__(self) -> None:
        if self.m < 1 or not self.hysteresis >= 0:
            raise HypoError(f"alarm policy: need m >= 1 and hysteresis >= 0, got {self.m} and {self.hysteresis}")


@dataclasses.dataclass(frozen=True)
class PreparedWindow:
    """One bed's window ending at ``end``, ready to score, or why there is none.

    Attributes:
        end: The window's last second (from the case start).
        x: float32 [window_s, 7], the model input; None when the window cannot be scored.
        status: ``ready``, ``incomplete`` (a gap left after filling, or a waveform missing at the end) or
            ``waiting`` (the recent seconds cannot be prepared yet: a signal never recorded, implausible units).
        detail: Why, for ``waiting``.
        availability: Share of the window's seconds the model gets a value for (recorded, or filled by the
            training data's rule), per signal group.
    """

    end: int
    x: np.ndarray | None
    status: str
    detail: str = ""
    availability: dict[str, float] = dataclasses.field(default_factory=dict)


class BedScorer:
    """Prepares and scores beds' windows with an exported model (see the module docstring).

    Args:
        model_path: The exported TorchScript model (``hypo export``).
        stride_s: Seconds between a bed's predictions.
        threshold: Alarm threshold on p(hypotension); default the sidecar's (fixed on validation).
        m: Consecutive predictions at or above it that start an alarm.
        hysteresis: The alarm ends below ``threshold - hysteresis``.

    Raises:
        HypoError: A model that cannot be loaded, a bad stride, or no alarm threshold at all.
    """

    def __init__(self, model_path: str, stride_s: int = 10, threshold: float | None = None, m: int = M_DEFAULT,
                 hysteresis: float = HYSTERESIS_DEFAULT) -> None:
        from hypo.infer.sidecar import window_config

        self.model_path = model_path
        self.model = load_model(model_path)
        self.sidecar = self.model.sidecar
        if isinstance(stride_s, bool) or int(stride_s) != stride_s or stride_s < 1:
            raise HypoError(f"--stride must be a positive whole number of seconds, got {stride_s}")
        self.stride_s = int(stride_s)
        self.cfg = window_config(self.sidecar, self.stride_s)
        self.window_s = self.cfg.window_s
        fill = self.cfg.fill
        # Seconds behind a window end that can change its filled values: the longest carry, a waveform gap, the
        # cuff merge; at least the training data's minimum case length (prepare_case refuses shorter arrays).
        need = self.window_s + max(fill.nibp_max_carry_s, fill.numeric_max_carry_s) + fill.waveform_max_gap_s + \
            self.cfg.nibp_merge_s + 1
        self.history_s = int(max(need, self.cfg.min_case_s))
        if threshold is None:
            threshold = self.sidecar.thresholds.p_hypotension if self.sidecar.thresholds else None
        if threshold is None or not math.isfinite(float(threshold)):
            raise HypoError(f"{model_path}: its sidecar holds no alarm threshold for hypotension; give --threshold")
        self.policy = AlarmPolicy(float(threshold), int(m), float(hysteresis))

    def describe(self) -> dict[str, Any]:
        """What the scorer runs (for the page and the log's notes)."""
        model = self.sidecar.model
        return {"model": self.model_path, "name": model.name, "k": model.k,
                "window_s": self.window_s, "stride_s": self.stride_s, "history_s": self.history_s,
                "horizon_s": self.sidecar.horizon_s, "threshold": self.policy.threshold,
                "m": self.policy.m, "hysteresis": self.policy.hysteresis,
                "simulated": bool(self.sidecar.source and self.sidecar.source.simulated)}

    def prepare(self, rows: np.ndarray, end: int) -> PreparedWindow:
        """The window ending at the last of ``rows`` (second ``end``), prepared as the training data were.

        Args:
            rows: float32 [history_s, 7], the bed's seconds ``end - history_s + 1 .. end`` as recorded (NaN where
                nothing was).
            end: The window's last second.
        """
        from hypo.data.sources.base import Case
        from hypo.infer.predict import prepare_case

        n, w = len(rows), self.window_s
        if n < max(w + 1, self.cfg.min_case_s):
            raise ValueError(f"need at least {max(w + 1, self.cfg.min_case_s)} rows, got {n}")
        try:
            prep = prepare_case(Case("live", "live", rows), self.sidecar, stride_s=n - w)
        except HypoError as exc:  # CaseRejected is one: a signal never recorded in the buffer, implausible units
            return PreparedWindow(end, None, "waiting", _one_line(exc))
        filled = prep.filled[n - w:]
        avail = {g: float(np.isfinite(filled[:, list(GROUPS[g])]).all(axis=1).mean()) for g in GROUP_NAMES}
        if not prep.complete_for(self.sidecar)[-1]:
            return PreparedWindow(end, None, "incomplete", "a gap left after filling, or a waveform missing at the "
                                                           "window end", avail)
        return PreparedWindow(end, np.ascontiguousarray(prep.windows[-1].T), "ready", "", avail)

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        """Class probabilities of windows (float32 [n, window_s, 7]) -> float32 [n, 3], in batches."""
        return self.model.predict_proba(np.ascontiguousarray(windows, np.float32))


def _one_line(exc: Exception) -> str:
    detail = getattr(exc, "detail", None)
    reason = getattr(exc, "reason", None)
    text = f"{reason}: {detail}" if reason and detail else str(exc)
    return " ".join(text.split()).replace("case live: ", "")
