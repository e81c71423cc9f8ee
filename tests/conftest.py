import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLES = SHARED / "vitaldb-samples"

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
sys.path.insert(0, str(ROOT))
_RAY_ENV = ("RAY_TMPDIR", "RAY_ADDRESS")
_saved_ray_env: dict = {}


def pytest_configure(config):
    """Every Ray of this test session, in this process and in the commands it runs, lives in a private folder.

    Ray keeps its sessions and its "current cluster" address file under ``$RAY_TMPDIR/ray``. A test session killed
    mid-way (SIGKILL, a CI timeout: no finalizer runs) would otherwise leave an address file pointing at a dead
    cluster in the user's own ``/tmp/ray``. A user's ``RAY_ADDRESS`` is set aside too: the tests start their own Ray.
    """
    _saved_ray_env.update({k: os.environ.get(k) for k in _RAY_ENV})
    os.environ.pop("RAY_ADDRESS", None)
    # Short, under the user's choice of temporary folder: Ray's socket paths inside it must stay under 108 bytes.
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="hypo-ray-", dir=_saved_ray_env["RAY_TMPDIR"])


def pytest_unconfigure(config):
    """Remove the session's Ray folder and give the user's Ray settings back."""
    if "RAY_TMPDIR" not in _saved_ray_env:
        return
    shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)
    for k, v in _saved_ray_env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


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
    """A local Ray with 2 CPUs for the tests of one module, started as the commands start theirs (``init_ray``)."""
    import ray

    from hypo.runtime import init_ray

    # Workers import test helpers (e.g. fake_sources) from tests/ too.
    path = os.pathsep.join([str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    init_ray(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def s3_endpoint():
    """A real S3 API server (moto) for the tests of one module, the environment pointed at it (:mod:`s3_server`).

    Start it before a module's Ray, whose workers take the endpoint and the credentials from the environment.
    """
    from s3_server import s3_server

    with s3_server() as endpoint:
        yield endpoint
