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
    assert pin in setup and "-e ~/hypo-src" in setup  # the same torch as pyproject.toml pins
    # Not ~/hypo: `ray submit` runs scripts from the home folder, where that folder would shadow the package.
    assert cfg["file_mounts"]["~/hypo-src"] == "."


def test_schema_check_is_not_vacuous():
    import jsonschema
    import pytest

    cfg = _config()
    cfg["available_node_types"]["head"]["not_a_field"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(cfg)


ONPREM = CLUSTER.parent / "cluster-onprem.yaml"


def _onprem():
    return yaml.safe_load(ONPREM.read_text())


def test_onprem_file_validates_as_ray_up_prepares_it():
    from ray.autoscaler._private.local.config import prepare_local

    cfg = _onprem()
    assert cfg["provider"]["type"] == "local" and cfg["provider"]["head_ip"]
    assert "available_node_types" not in cfg  # Ray detects each machine's resources; `ray up` refuses node types
    validate_config(fillout_defaults(cfg))
    prepared, _ = prepare_local(fillout_defaults(cfg))
    node_type = prepared["available_node_types"][prepared["head_node_type"]]
    assert node_type["min_workers"] == node_type["max_workers"] == len(cfg["provider"]["worker_ips"])


def test_onprem_file_sets_up_and_starts_nodes_as_the_aws_file_does():
    aws, onprem = _config(), _onprem()
    for key in ("file_mounts", "rsync_exclude", "rsync_filter", "head_start_ray_commands", "worker_start_ray_commands"):
        assert onprem[key] == aws[key], key
    # The same installs, less boto3: an on-premise cluster has no S3.
    assert onprem["setup_commands"] == [c.replace(" boto3", "") for c in aws["setup_commands"]]
    assert onprem["auth"]["ssh_user"] and onprem["auth"]["ssh_private_key"]


def test_both_files_say_what_differs():
    assert "cluster-onprem.yaml" in CLUSTER.read_text()
    head = ONPREM.read_text().split("cluster_name:")[0]
    assert "What differs from cluster.yaml" in head
    for marker in ("aws_secret_access_key", "password:", "token"):
        assert marker not in ONPREM.read_text().lower()


def test_the_file_mounts_carry_every_file_of_the_package(tmp_path):
    """rsync, as `ray up` runs it with the files' excludes and filter, copies all of hypo/ and none of data/, runs/."""
    import os
    import shutil
    import subprocess

    import pytest

    if not shutil.which("rsync"):
        if os.environ.get("HYPO_REQUIRE_CLUSTER_TOOLS") == "1":
            pytest.fail("rsync not found, and HYPO_REQUIRE_CLUSTER_TOOLS=1 requires it", pytrace=False)
        pytest.skip("rsync not found (apt-get install -y rsync)")
    root = CLUSTER.parent
    for path in (CLUSTER, ONPREM):
        cfg = yaml.safe_load(path.read_text())
        args = [a for p in cfg["rsync_exclude"] for a in ("--exclude", p)]
        args += [a for p in cfg["rsync_filter"] for a in ("--filter", f"dir-merge,- {p}")]
        listed = subprocess.run(["rsync", "-a", "--dry-run", "--out-format=%n", *args, "./", str(tmp_path / "n")],
                                cwd=root, capture_output=True, text=True, check=True).stdout.split()
        package = {str(p.relative_to(root)) for p in (root / "hypo").rglob("*.py") if "__pycache__" not in p.parts}
        assert package and package <= set(listed), (path.name, sorted(package - set(listed))[:5])
        assert not [n for n in listed if n.startswith(("data/", "runs/", ".git/"))], path.name
