import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLES = SHARED / "vitaldb-samples"

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def real_samples():
    """The real VitalDB samples beside the checkout (``../shared/vitaldb-samples``); CI has them.

    A user's clone has no ``../shared`` (VitalDB's licence keeps the files out of the project): the tests that
    need them are skipped with the reason. CI sets ``HYPO_REQUIRE_REAL_SAMPLES=1``, which makes a missing folder
    a failure, so CI cannot pass by skipping them.
    """
    if SAMPLES.is_dir():
        return SAMPLES
    if os.environ.get("HYPO_REQUIRE_REAL_SAMPLES") == "1":
        pytest.fail(f"{SAMPLES} not found, and HYPO_REQUIRE_REAL_SAMPLES=1 requires the real VitalDB samples",
                    pytrace=False)
    pytest.skip(f"real VitalDB samples not present at {SAMPLES} (VitalDB's licence keeps them out of the project)")


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with 2 CPUs for the tests of one module."""
    import ray

    # Workers import test helpers (e.g. fake_sources) from tests/ too.
    path = os.pathsep.join([str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()
