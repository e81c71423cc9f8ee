"""Evaluate layer: a chosen model judged on data it was not selected on, in one room per job.

- :mod:`hypo.evaluate.testsplit`: the one look at the test split (the top trials and the baselines, channel loss)
  and the HTML report;
- :mod:`hypo.evaluate.alarms`: the model and the baselines as alarms along whole recordings;
- :mod:`hypo.evaluate.external`: a frozen model on another source's windows, and its recalibration.

Shared by the three: the chosen trial (:mod:`~hypo.evaluate.trials`) and its export
(:mod:`~hypo.evaluate.export_trial`: written, or held in memory as the infer layer's
:class:`~hypo.infer.model.ExportedModel`, and ``load_model_or_trial`` for a model file or a run), the subject
bootstrap (:mod:`~hypo.evaluate.bootstrap`), calibration statistics (:mod:`~hypo.evaluate.calibration`), the
comparators and the gray zone (:mod:`~hypo.evaluate.comparison`) and the TRIPOD+AI model card
(:mod:`~hypo.evaluate.model_card`). The
results the rooms write are typed records (``alarms/result``, ``external/result``, on the one record base of
:mod:`hypo.records`). May import every layer below: search, infer, learn, data.
"""
