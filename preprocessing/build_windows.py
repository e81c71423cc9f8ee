"""Build the window dataset with Ray Data.

Examples:
    python preprocessing/build_windows.py --source demo --cases 200 --out data/demo
    python preprocessing/build_windows.py --source vital-dir --path /data/vital --out data/hospital
    python preprocessing/build_windows.py --source vitaldb --cases 500 --cache ~/.cache/hypo --out s3://bucket/w

On a cluster: ``ray submit cluster.yaml preprocessing/build_windows.py --source vitaldb --out s3://...``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from hypo.cli.windows import main  # noqa: E402

if __name__ == "__main__":
    main(prog="preprocessing/build_windows.py")
