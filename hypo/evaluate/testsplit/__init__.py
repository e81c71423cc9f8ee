"""The one look at the test split: the chosen trials and the baselines scored once, and the report.

Entry points: :func:`~hypo.evaluate.testsplit.top_trials.score_top_trials` (``hypo leaderboard --test N``, each
look recorded by :mod:`~hypo.evaluate.testsplit.looks`), :func:`~hypo.evaluate.testsplit.report.make_report`
(``hypo report``: bootstrap intervals, figures, a self-contained HTML page) and the channel-loss tables of
:mod:`~hypo.evaluate.testsplit.channel_loss`.
"""
