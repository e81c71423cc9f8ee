"""Evaluate layer: a chosen model judged on data it was not selected on.

The test split (:mod:`~hypo.evaluate.final_test`, every look recorded by :mod:`~hypo.evaluate.test_looks`, and
each model under channel loss, :mod:`~hypo.evaluate.channel_loss`),
the HTML report (:mod:`~hypo.evaluate.report` with its bootstrap, figures and page), and the export of a search's
trial (:mod:`~hypo.evaluate.export_trial`); external validation of a frozen model on another source's windows
(:mod:`~hypo.evaluate.external`, with :mod:`~hypo.evaluate.frozen`, :mod:`~hypo.evaluate.calibration` and
:mod:`~hypo.evaluate.external_figures`). May import every layer below: search, infer, learn, data.
"""
