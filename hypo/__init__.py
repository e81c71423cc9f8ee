"""hypo: intraoperative hypotension prediction from non-invasive monitor data.

The package is layered; each layer imports only the layers below it (import-linter checks this in CI):

    cli        every command (``hypo windows|demo-files|train|search|leaderboard|report|export|predict``)
    evaluate   the test split, reports, exports of a chosen trial
    search     Ray Tune + Optuna, the leaderboard        infer   exported models applied to recordings
    learn      models, losses, metrics, training, checkpoints, baselines, operating points
    data       case sources, artefacts, gap filling, windows, labels, splits, the Ray Data job

``config``, ``errors``, ``storage``, ``runtime``, ``records`` (the typed records' base) and ``jsonio`` at the top are
shared by every layer and import none.
Start reading at :mod:`hypo.data.preprocess` (cases to windows) and :mod:`hypo.learn.train`.
Nothing here does work at import time.
"""

__version__ = "0.1.0"
