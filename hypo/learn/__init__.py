"""Learn layer: one configuration trained and scored.

Models (:mod:`~hypo.learn.models`), losses (:mod:`~hypo.learn.losses`), metrics (:mod:`~hypo.learn.metrics`),
the training loop (:mod:`~hypo.learn.train`, config in :mod:`~hypo.learn.train_config`), checkpoints, the
last-reading baseline and the operating point (alarm thresholds fixed on validation). Start at
:func:`hypo.learn.train.fit_arrays`. May import :mod:`hypo.data` and the top-level modules.
"""
