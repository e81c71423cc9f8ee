"""Alarms on whole recordings: the chosen model and the baselines replayed along each recording and scored.

Entry points: :func:`~hypo.evaluate.alarms.evaluation.alarm_evaluation` (validation-fixed thresholds applied to a
split) and :func:`~hypo.evaluate.alarms.evaluation.validation_alarms` (``hypo leaderboard --alarms``). Inside:
:mod:`~hypo.evaluate.alarms.replay` (recordings replayed through the prediction code),
:mod:`~hypo.evaluate.alarms.events` (episodes from the arterial line or the cuff),
:mod:`~hypo.evaluate.alarms.metrics` (sensitivity, lead time, false alarms per hour, the operating curve), and
for the report :mod:`~hypo.evaluate.alarms.report` and :mod:`~hypo.evaluate.alarms.figures`. The alarm policy
itself is the deployed one, :mod:`hypo.infer.alarm_policy`.
"""
