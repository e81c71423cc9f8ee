"""External validation: a frozen model scored on another source's windows, and recalibrated on a share of them.

Entry point: :func:`~hypo.evaluate.external.validation.evaluate_external` (``hypo evaluate``): discrimination,
calibration and the decision curve, with recalibration maps from :mod:`hypo.learn.recalibration`, and the figures
of :mod:`~hypo.evaluate.external.figures`.
"""
