import re
from pathlib import Path

import yaml
from ray.autoscaler._private.util import fillout_defaults, validate_config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster.yaml"


def _config():
    return yaml.safe_load(CLUSTER.read_text())


def test_cluster_yaml_validates_against_rays_schema():
    cfg = _config()
    validate_config(cfg)  # the raw file
    validate_config(fillout_defaults(cfg))  # and as `ray up` fills it out


def test_gpu_workers_autoscale_from_zero_and_head_is_cpu_only():
    cfg = _config()
    nodes = cfg["available_node_types"]
    head = nodes[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    gpu = [n for n in nodes.values() if n["resources"].get("GPU", 0) > 0]
    assert gpu and all(n["min_workers"] == 0 and n["max_workers"] > 0 for n in gpu)


def test_workers_carry_the_instance_profile_that_reaches_s3():
    """Ray's AWS provider gives its default profile to the head only; workers must name one themselves."""
    cfg = _config()
    for name, node in cfg["available_node_types"].items():
        if name != cfg["head_node_type"]:
            assert node["node_config"]["IamInstanceProfile"]["Name"] == "ray-autoscaler-v1", name


def test_no_secrets_and_no_open_dashboard():
    text = CLUSTER.read_text()
    for marker in ("aws_secret_access_key", "AWS_SECRET", "aws_access_key_id", "password", "token"):
        assert marker.lower() not in text.lower()
    start = " ".join(_config()["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "0.0.0.0" not in start


def test_setup_installs_the_project_with_pinned_torch():
    cfg = _config()
    setup = " ".join(cfg["setup_commands"])
    pin = re.search(r'"(torch==[0-9.]+)"', (CLUSTER.parent / "pyproject.toml").read_text()).group(1)
    assert pin in setup and "-e ~/hypo" in setup  # the same torch as pyproject.toml pins
    assert cfg["file_mounts"]["~/hypo"] == "."


def test_schema_check_is_not_vacuous():
    import jsonschema
    import pytest

    cfg = _config()
    cfg["available_node_types"]["head"]["not_a_field"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(cfg)
