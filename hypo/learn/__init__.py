"""Learn layer: one configuration trained and scored.

Models (:mod:`~hypo.learn.models`), losses (:mod:`~hypo.learn.losses`), metrics (:mod:`~hypo.learn.metrics`),
the training loop (:mod:`~hypo.learn.train`, config in :mod:`~hypo.learn.train_config`), checkpoints, the
baselines (:mod:`~hypo.learn.baselines`: last reading, feature model on window statistics, last ART minute), the
comparators (:mod:`~hypo.learn.comparators`: fixed MAP rules, MAP extrapolation, last DBP) and the operating point
(alarm thresholds fixed on validation), and recalibration maps of a trained model's probabilities
(:mod:`~hypo.learn.recalibration`). Start at :func:`hypo.learn.train.fit_arrays`. May import :mod:`hypo.data` and
the top-level modules.
"""
