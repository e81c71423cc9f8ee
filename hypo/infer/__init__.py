"""Infer layer: a trained model applied to signals.

:mod:`~hypo.infer.model` is the one model object every caller shares (:class:`~hypo.infer.model.ExportedModel`:
``load``, ``predict_proba``, ``predict``, ``describe``); :mod:`~hypo.infer.export` is the self-contained
TorchScript format (trace, input guard, and the pair ``write_exported`` / ``load_exported``) and
:mod:`~hypo.infer.sidecar` the sidecar's typed record (schema version, migration of older exports), on the record
base every layer shares (:mod:`hypo.records`); :mod:`~hypo.infer.predict` prepares a recording exactly as the
training data were and predicts along it (:func:`~hypo.infer.predict.predict_case`,
:func:`~hypo.infer.predict.predict_file`); :mod:`~hypo.infer.timeline` draws it; :mod:`~hypo.infer.alarm_policy` is
the deployed alarm policy. May import :mod:`hypo.learn`, :mod:`hypo.data` and the top-level modules, never
:mod:`hypo.search`.
"""
