"""The one replaceable place where a bed's recent seconds become a window and windows become probabilities.

    scorer = BedScorer("model.pt", stride_s=10)
    prepared = scorer.prepare(rows, end, known)      # rows: float32 [scorer.history_s, 7] ending at second `end`
    probs = scorer.predict_proba(np.stack([prepared.x, ...]))    # [n, 3], batched across beds

A window is prepared by the causal pipeline :func:`hypo.infer.causal.prepare_windows`, the one ``hypo predict``
and the alarm evaluation (``hypo evaluate --alarms``, ``hypo report``, ``leaderboard --alarms``) run on whole
recordings: cuff merge, artefacts, gap filling, completeness, and the decisions taken with what is known at the
window's end (a group the model may lack absent so far, the units plausible so far), from the bed's last
``history_s`` seconds and the counts the bed keeps of every second since the case start. The buffer holds only the
past, so nothing after ``end`` is used. The model is the infer layer's :class:`~hypo.infer.model.ExportedModel`
(:func:`load_model` and :meth:`BedScorer.predict_proba` are its only uses in ``hypo.serve``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from hypo.data.signals import GROUP_NAMES, GROUPS
from hypo.errors import HypoError
from hypo.infer.alarm_policy import deployed_policy


def load_model(path: str):
    """The exported model (:class:`hypo.infer.model.ExportedModel`; the only place ``hypo.serve`` loads one)."""
    from hypo.infer.model import ExportedModel

    return ExportedModel.load(path)


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
        stride_s: Seconds between a bed's predictions (default: the stride its alarm policy was validated at).
        threshold: Override of the alarm policy validated with the model's threshold
            (:func:`hypo.infer.alarm_policy.deployed_policy`; each override said in :attr:`notes`).
        m: Override of its ``m``.
        hysteresis: Override of its hysteresis.
        max_gap_s: Override of its max gap.

    Attributes:
        policy: The :class:`~hypo.infer.alarm_policy.Policy` every bed runs.
        notes: What to say about it (where it comes from, what was overridden).

    Raises:
        HypoError: A model that cannot be loaded, a bad stride, or no alarm threshold at all.
    """

    def __init__(self, model_path: str, stride_s: int | None = None, threshold: float | None = None,
                 m: int | None = None, hysteresis: float | None = None, max_gap_s: int | None = None) -> None:
        from hypo.infer.sidecar import window_config

        self.model_path = model_path
        self.model = load_model(model_path)
        self.sidecar = self.model.sidecar
        valid = self.sidecar.alarm_policy
        if valid is not None and valid.horizon_s is not None:  # validated on the risk by that horizon: score it
            self.model = self.model.at_horizon(valid.horizon_s, f"{model_path}: alarm policy: ")
        if stride_s is not None and (isinstance(stride_s, bool) or int(stride_s) != stride_s or stride_s < 1):
            raise HypoError(f"--stride must be a positive whole number of seconds, got {stride_s}")
        try:
            self.policy, self.notes = deployed_policy(self.sidecar, stride_s, threshold, m, hysteresis, max_gap_s)
        except ValueError as exc:
            raise HypoError(f"{model_path}: {exc}") from None
        self.stride_s = self.policy.stride_s
        self.cfg = window_config(self.sidecar, self.stride_s)
        self.window_s = self.cfg.window_s
        fill = self.cfg.fill
        # Seconds behind a window end that can change its filled values: the longest carry, a waveform gap, the
        # cuff merge; with a margin, at least the training data's minimum case length (20 min by default).
        need = self.window_s + max(fill.nibp_max_carry_s, fill.numeric_max_carry_s) + fill.waveform_max_gap_s + \
            self.cfg.nibp_merge_s + 1
        self.history_s = int(max(need, self.cfg.min_case_s))

    def describe(self) -> dict[str, Any]:
        """What the scorer runs (for the page and the log's notes)."""
        model = self.sidecar.model
        p = self.policy
        return {"model": self.model_path, "name": model.name, "k": model.k,
                "window_s": self.window_s, "stride_s": self.stride_s, "history_s": self.history_s,
                "nibp_merge_s": self.cfg.nibp_merge_s,
                "horizon_s": self.sidecar.horizon_s, "alarm_horizon_s": self.model.hypotension_by_s,
                "threshold": p.threshold, "m": p.m,
                "hysteresis": p.hysteresis, "max_gap_s": p.max_gap_s, "policy_notes": list(self.notes),
                "label": dataclasses.asdict(self.sidecar.label), "sha256": self.sidecar.model_sha256,
                "simulated": bool(self.sidecar.source and self.sidecar.source.simulated)}

    def prepare(self, rows: np.ndarray, end: int, known: np.ndarray | None = None) -> PreparedWindow:
        """The window ending at the last of ``rows`` (second ``end``), prepared by the causal pipeline.

        Args:
            rows: float32 [history_s, 7], the bed's seconds ``end - history_s + 1 .. end`` as recorded (NaN where
                nothing was, or before the case start).
            end: The window's last second.
            known: int64 [K] what is known of the case up to ``end``: the counts of every second since the case start
                (:func:`hypo.infer.causal.known_at`, kept by the bed); default: counted from ``rows`` alone.
        """
        from hypo.infer.causal import known_at, prepare_windows

        n, w = len(rows), self.window_s
        if n < w:
            raise ValueError(f"need at least {w} rows, got {n}")
        last = np.array([n - 1])
        known = known_at(rows, last) if known is None else np.asarray(known, np.int64).reshape(1, -1)
        prep = prepare_windows(rows, self.cfg, last, known)
        filled = prep.filled[n - w:]
        avail = {g: float(np.isfinite(filled[:, list(GROUPS[g])]).all(axis=1).mean()) for g in GROUP_NAMES}
        if prep.units[0]:
            return PreparedWindow(end, None, "waiting", prep.units[0], avail)
        if not prep.complete_for(self.sidecar)[0]:
            return PreparedWindow(end, None, "incomplete", "a gap left after filling, or a waveform missing at the "
                                                           "window end", avail)
        return PreparedWindow(end, np.ascontiguousarray(prep.windows[0].T), "ready", "", avail)

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        """Class probabilities of windows (float32 [n, window_s, 7]) -> float32 [n, 3], in batches.

        With an alarm policy validated on a horizon's risk (``alarm_policy.horizon_s``, ``hypo export
        --alarm-horizon``), p(hypotension) is that risk, as the alarm evaluation scored it.
        """
        return self.model.predict_proba(np.ascontiguousarray(windows, np.float32))
