"""Alarms on whole recordings: the chosen model and the baselines replayed along each recording and scored.

Entry points: :func:`~hypo.evaluate.alarms.evaluation.alarm_evaluation` (a model file or a run's trial, with an
:class:`~hypo.evaluate.alarms.evaluation.AlarmOptions`: validation-fixed thresholds applied to a split),
:func:`~hypo.evaluate.alarms.evaluation.evaluate_alarms` (several models at once) and
:func:`~hypo.evaluate.alarms.evaluation.validation_alarms` (``hypo leaderboard --alarms``). Their results are the
typed records of :mod:`~hypo.evaluate.alarms.result` (``AlarmResult``: ``alarms.json``; ``ValidationAlarms``:
``alarms_val.json``), printed by its ``format_alarm_table``. Inside: :mod:`~hypo.evaluate.alarms.replay`
(recordings replayed through the prediction code, scoring :class:`hypo.infer.model.ExportedModel`),
:mod:`~hypo.evaluate.alarms.events` (episodes from the arterial line or the cuff),
:mod:`~hypo.evaluate.alarms.metrics` (sensitivity, lead time, false alarms per hour, the operating curve), and
for the report :mod:`~hypo.evaluate.alarms.report` and :mod:`~hypo.evaluate.alarms.figures`. The alarm policy
itself is the deployed one, :mod:`hypo.infer.alarm_policy`.
"""
