"""Search model type, width k, loss and focal gamma with Ray Tune + Optuna, then print the leaderboard.

Examples:
    python tune/search.py                       # the whole job on the embedded demo cohort
    python tune/search.py --smoke-test          # a tiny search, to check a set-up
    python tune/search.py --data data/vdb --samples 64 --gpus-per-trial 0.25 --epochs 35
    python tune/search.py --space paper --data data/vdb   # the study's own grid
    python tune/search.py --resume --name search-20261124-120000
    ray submit cluster.yaml tune/search.py --data s3://BUCKET/windows --storage s3://BUCKET/runs
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from hypo.cli.search import main  # noqa: E402

if __name__ == "__main__":
    main(prog="tune/search.py")
