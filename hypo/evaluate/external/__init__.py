"""External validation: a frozen model scored on another source's windows, and recalibrated on a share of them.

Entry points: :func:`~hypo.evaluate.external.job.evaluate_job` (``hypo evaluate``: an
:class:`~hypo.evaluate.external.request.EvaluateRequest`) and
:func:`~hypo.evaluate.external.validation.evaluate_external`: discrimination, calibration and the decision curve,
with recalibration maps from :mod:`hypo.learn.recalibration`, the recalibrated export of
:mod:`~hypo.evaluate.external.recalibrated`, and the figures of :mod:`~hypo.evaluate.external.figures`. The result
is the typed record of :mod:`~hypo.evaluate.external.result` (``ExternalResult``: ``evaluation.json``).
"""
