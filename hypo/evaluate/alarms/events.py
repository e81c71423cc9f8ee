"""Hypotension episodes along a whole recording: the events an alarm is scored against.

- **Arterial-line labels** (``label.source == "art"``): the episodes of :func:`hypo.data.art.hypotension_episodes`
  (runs of >= ``event_s`` seconds in which every valid ART MAP sample is below ``hypo_map``: the very rule the
  labels come from), then merged when the quiet stretch between two is shorter than ``merge_gap_s`` (5 min): a
  patient whose pressure recovers for two minutes has had one episode, not two.
- **Cuff labels**: a reading with MAP below ``hypo_map`` is hypotension; consecutive low readings are one episode,
  from the first low reading to the next reading that is not low, but at most ``hold_s`` (one usual cuff interval,
  5 min) after the last low reading: with sparse readings nothing says the pressure stayed low longer.

The onset is the episode's first second (or reading). Each episode is also given a kind:

- ``scored``: its onset lies in the scored span, after the induction period;
- ``induction``: its onset lies in the first ``induction_s`` seconds of the recording (reported apart: the
  induction dip is a different question from intraoperative hypotension);
- ``under way``: it had begun before scoring started (its onset is before the scored span), so no alarm could have
  announced it; left out.

The **scored span** is where alarms are judged: from the first window end (the first moment a prediction can exist)
to the end of the recording; with arterial-line labels also only where the line was in place (from its first to its
last valid sample), since hypotension cannot be seen, nor an alarm judged, without it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hypo.config import LabelConfig

SCORED, INDUCTION, UNDER_WAY = "scored", "induction", "under way"
KINDS: tuple[str, ...] = (SCORED, INDUCTION, UNDER_WAY)


@dataclasses.dataclass
class CaseEvents:
    """The events of one recording and the span in which alarms are scored.

    Attributes:
        caseid: Case id.
        subjectid: Subject id (the bootstrap draws subjects).
        duration_s: Length of the recording (s).
        span: ``(start, end)``: alarms are judged in ``[start, end)`` seconds.
        episodes: int64 [e, 2] ``[onset, end)`` seconds of each episode, in order.
        kind: [e] each episode's kind (:data:`KINDS`).
        source: ``"art"`` or ``"cuff"``: what the events come from.
        hypo_s: Seconds of hypotension in the scored span, before episodes are merged (the burden: ART seconds
            in runs of the label rule, or cuff episode seconds).
    """

    caseid: str
    subjectid: str
    duration_s: int
    span: tuple[int, int]
    episodes: np.ndarray
    kind: np.ndarray
    source: str
    hypo_s: float = 0.0

    @property
    def onsets(self) -> np.ndarray:
        """int64 [e] onset of every episode (of any kind)."""
        return self.episodes[:, 0]

    def of_kind(self, kind: str) -> np.ndarray:
        """int64 [k, 2] the episodes of one kind."""
        return self.episodes[self.kind == kind]


def merge_episodes(episodes: np.ndarray, gap_s: int) -> np.ndarray:
    """Merge episodes separated by less than ``gap_s`` seconds (end of one to onset of the next).

    Args:
        episodes: int [e, 2] ``[onset, end)`` in order, not overlapping.
        gap_s: Episodes closer than this become one.

    Returns:
        int64 [e', 2].
    """
    ep = np.asarray(episodes, np.int64).reshape(-1, 2)
    if len(ep) < 2:
        return ep.copy()
    new = np.r_[True, ep[1:, 0] - ep[:-1, 1] >= gap_s]  # an episode that starts a merged group
    group = np.cumsum(new) - 1
    ends = np.zeros(int(group[-1]) + 1, np.int64)
    np.maximum.at(ends, group, ep[:, 1])
    return np.stack([ep[new, 0], ends], axis=1)


def cuff_episodes(times, maps, duration_s: int, hypo_map: float, hold_s: int | None = None) -> np.ndarray:
    """Episodes from cuff readings: runs of consecutive readings with MAP below ``hypo_map``.

    Args:
        times: int [r] reading times (s), increasing (artefacts removed).
        maps: float [r] their MAP.
        duration_s: Length of the recording (the end of a run that no reading closes).
        hypo_map: The threshold (mmHg).
        hold_s: An episode lasts at most this long after its last low reading (None: no cap).

    Returns:
        int64 [e, 2]: ``[first low reading, next reading that is not low)``, or to ``duration_s``, and no later
        than the last low reading + ``hold_s``.
    """
    t = np.asarray(times, np.int64)
    with np.errstate(invalid="ignore"):
        low = np.asarray(maps, np.float64) < hypo_map
    if not low.any():
        return np.zeros((0, 2), np.int64)
    edges = np.flatnonzero(np.diff(np.r_[0, low.astype(np.int8), 0]))
    first, stop = edges[0::2], edges[1::2]  # stop: index of the first reading after the run
    ends = np.where(stop < len(t), t[np.minimum(stop, len(t) - 1)], duration_s)
    if hold_s is not None:
        ends = np.minimum(ends, t[stop - 1] + hold_s)
    return np.stack([t[first], ends], axis=1).astype(np.int64)


def classify_episodes(episodes: np.ndarray, span: tuple[int, int], induction_s: int) -> np.ndarray:
    """Each episode's kind (see the module docstring).

    Args:
        episodes: int [e, 2].
        span: The scored span ``(start, end)``.
        induction_s: The induction period from the recording's start (s).

    Returns:
        object [e] of :data:`KINDS`; an episode whose onset lies at or after the span's end is ``under way`` too
        (outside what can be judged).
    """
    on = np.asarray(episodes, np.int64).reshape(-1, 2)[:, 0]
    kind = np.full(len(on), SCORED, dtype=object)
    kind[on < induction_s] = INDUCTION
    kind[(on < span[0]) | (on >= span[1])] = UNDER_WAY
    return kind


def _seconds_within(episodes: np.ndarray, span: tuple[int, int]) -> float:
    ep = np.asarray(episodes, np.int64).reshape(-1, 2)
    return float(np.clip(np.minimum(ep[:, 1], span[1]) - np.maximum(ep[:, 0], span[0]), 0, None).sum())


def case_events(caseid: str, subjectid: str, duration_s: int, label: LabelConfig, first_end_s: int, *,
                readings: dict | None = None, line=None, merge_gap_s: int = 300,
                induction_s: int = 600, cuff_hold_s: int | None = 300) -> CaseEvents:
    """The events of one recording under the dataset's label source.

    Args:
        caseid: Case id.
        subjectid: Subject id.
        duration_s: Length of the recording.
        label: The dataset's label rule; ``label.source`` chooses arterial line or cuff.
        first_end_s: The first window end (the first second a prediction can exist): scoring starts there.
        readings: Cuff labels: ``{"time", "map"}`` of the cleaned readings.
        line: Arterial-line labels: the cleaned line.
        merge_gap_s: ART episodes closer than this are merged.
        induction_s: The induction period.
        cuff_hold_s: Cuff episodes end at most this long after their last low reading.

    Raises:
        ValueError: When the label source's input is missing.
    """
    if label.source == "art":
        if line is None or len(line) == 0:
            raise ValueError("arterial-line events need the case's cleaned arterial line")
        from hypo.data.art import hypotension_episodes

        raw = hypotension_episodes(line, duration_s, label)
        episodes = merge_episodes(raw, merge_gap_s)
        span = (max(int(first_end_s), int(np.floor(line.time[0]))),
                min(int(duration_s), int(np.floor(line.time[-1])) + 1))
    else:
        if readings is None:
            raise ValueError("cuff events need the case's readings")
        raw = episodes = cuff_episodes(readings["time"], readings["map"], duration_s, label.hypo_map, cuff_hold_s)
        span = (int(first_end_s), int(duration_s))
    span = (span[0], max(span[0], span[1]))
    return CaseEvents(str(caseid), str(subjectid), int(duration_s), span, episodes,
                      classify_episodes(episodes, span, induction_s), "art" if label.source == "art" else "cuff",
                      hypo_s=_seconds_within(raw, span))


def event_rule_text(label: LabelConfig, merge_gap_s: int = 300, induction_s: int = 600, cuff_hold_s: int = 300) -> str:
    """One sentence stating the event definition of a dataset's labels (its manifest's ``label``)."""
    if label.source == "art":
        return (f"hypotension episode: a run of >= {label.event_s} s in which every valid arterial-line "
                f"MAP sample is < {label.hypo_map:g} mmHg (the ART label's rule), episodes closer than "
                f"{merge_gap_s / 60:g} min merged; onset = its first second; scored where the line is in place; "
                f"onsets in the first {induction_s / 60:g} min (induction) reported apart")
    return (f"hypotension episode: a cuff reading with MAP < {label.hypo_map:g} mmHg, consecutive low readings "
            f"one episode, ending at the next reading that is not low or {cuff_hold_s / 60:g} min after the last low "
            f"one; onset = its first low reading; onsets in the first {induction_s / 60:g} min (induction) "
            "reported apart")
