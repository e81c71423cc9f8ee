"""Infer layer: a trained model applied to signals.

:mod:`~hypo.infer.export` is the self-contained TorchScript format (write, load, input guard, sidecar);
:mod:`~hypo.infer.predict` prepares a recording exactly as the training data were and predicts along it
(:func:`~hypo.infer.predict.predict_case`, :func:`~hypo.infer.predict.predict_file`); :mod:`~hypo.infer.timeline`
draws it. May import :mod:`hypo.learn`, :mod:`hypo.data` and the top-level modules, never :mod:`hypo.search`.
"""
