"""Search layer: many configurations trained under Ray Tune + Optuna, and the leaderboard that ranks them.

:mod:`~hypo.search.tuner` runs the search (trainable, searcher, ASHA, resume), :mod:`~hypo.search.space` defines
the spaces, :mod:`~hypo.search.record` is the search's typed record (``hypo_search.json``),
:mod:`~hypo.search.claim` claims a new search's name atomically, :mod:`~hypo.search.experiments` finds experiments
and reads those on an object store through a local mirror, :mod:`~hypo.search.leaderboard` reads an experiment's
trials and ranks them on validation, and :mod:`~hypo.search.hypotension_board` sets the comparators beside them.
May import :mod:`hypo.learn`, :mod:`hypo.data` and the top-level modules, never :mod:`hypo.infer`.
"""
