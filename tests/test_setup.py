"""A newcomer's set-up: what the README says is what CI runs; real-sample tests skip for users, fail in CI."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md")).read()
CI = open(os.path.join(ROOT, ".ci", "run")).read()
PYPROJECT = open(os.path.join(ROOT, "pyproject.toml")).read()


def _blocks(text):
    return re.findall(r"```(?:bash|console)\n(.*?)```", text, re.S)


def test_set_up_is_one_install_command_and_ci_runs_the_same():
    setup = README[README.index("## Set-up"):README.index("## Architecture")]
    installs = [line for b in _blocks(setup) for line in b.splitlines() if line.startswith("pip install")]
    assert installs[0] == 'pip install -e ".[test]"', installs
    # a torch line may only be the optional CPU-wheel one, pointing at PyTorch's own index
    assert all("--index-url https://download.pytorch.org/whl/cpu" in i for i in installs[1:] if "torch" in i)
    assert 'pip install -q --disable-pip-version-check -e ".[test]"' in CI
    commands = [line for line in CI.split("ruff check")[0].splitlines() if not line.lstrip().startswith("#")]
    assert not any("torch" in line for line in commands), commands  # torch comes with the package's dependencies
    assert re.search(r'^    "torch==[0-9.]+",$', PYPROJECT, re.M)


def test_default_run_leaves_out_slow_tests_and_ci_runs_them_second():
    addopts = re.search(r"^addopts = (.*)$", PYPROJECT, re.M).group(1)
    assert "-m 'not slow'" in addopts or '-m \\"not slow\\"' in addopts, addopts
    assert CI.index("eval \"$cmd\"") < CI.index("python -m pytest -q -m slow")
    assert "python -m pytest -q -m slow" in README
    assert "export HYPO_REQUIRE_REAL_SAMPLES=1" in CI


def _run_real_sample_test(tmp_path, env_extra):
    """Run a test that asks for the real samples in a checkout-like folder without ../shared."""
    checkout = tmp_path / "clone"
    (checkout / "tests").mkdir(parents=True)
    conftest = open(os.path.join(ROOT, "tests", "conftest.py")).read()
    (checkout / "tests" / "conftest.py").write_text(conftest)
    (checkout / "tests" / "test_needs_samples.py").write_text("def test_x(real_samples):\n    assert real_samples\n")
    env = {k: v for k, v in os.environ.items() if k != "HYPO_REQUIRE_REAL_SAMPLES"}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(checkout)],
                          capture_output=True, text=True, env=env, cwd=checkout, timeout=120)


def test_real_sample_tests_skip_with_a_reason_in_a_users_clone(tmp_path):
    p = _run_real_sample_test(tmp_path, {})
    assert p.returncode == 0, p.stdout
    assert "1 skipped" in p.stdout and "real VitalDB samples not present" in p.stdout


def test_real_sample_tests_fail_when_required(tmp_path):
    p = _run_real_sample_test(tmp_path, {"HYPO_REQUIRE_REAL_SAMPLES": "1"})
    assert p.returncode == 1 and "HYPO_REQUIRE_REAL_SAMPLES=1 requires" in p.stdout
