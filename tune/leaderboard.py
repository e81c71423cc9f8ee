"""Rank the trials of a search: table, leaderboard.csv, leaderboard.md and leaderboard.png.

Examples:
    python tune/leaderboard.py runs/search-20261124-120000
    python tune/leaderboard.py runs/search-20261124-120000 --rank-by val_sum_auprc,val_mean_auroc
    python tune/leaderboard.py runs/search-20261124-120000 --test 3     # top 3 once on the test split
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from hypo.cli.leaderboard import main  # noqa: E402

if __name__ == "__main__":
    main(prog="tune/leaderboard.py")
