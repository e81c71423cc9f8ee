"""What a trial asks of the cluster, checked against what the cluster has or its autoscaler can add.

Ray Tune waits forever for a trial whose resources no node can give ("No available node types can fulfill
resource request"). Before a search starts, :func:`plan_resources` compares the request with the nodes alive
now (``ray.nodes()``) and with the node types the autoscaler may start (from the cluster config the head node
holds, ``~/ray_bootstrap_config.yaml``, or ``--cluster-config cluster.yaml``):

- a node alive now can hold a trial: go;
- none can, but an autoscaler node type could: say so and wait (``--pending-timeout`` bounds the wait);
- nothing can, ever: refuse in one line.

``--gpus-per-trial auto`` resolves here too: a share of a GPU per trial (:data:`AUTO_GPU_SHARE`, four small
trials per GPU) when the cluster has GPUs or can add them, else 0.

On the node, :func:`trial_device` picks what a trial trains on: the GPU Ray reserved for it, else the CPU. A node
that declares a GPU Ray can reserve but has no CUDA (a wrong image, a missing driver, Ray's fake test nodes) is
refused by default, so a GPU search never trains on CPUs unnoticed; ``HYPO_ALLOW_CPU_FALLBACK=1`` on the driver
lets such trials train on the CPU instead. Each trial reports the device it used (the leaderboard's ``device``).
"""

from __future__ import annotations

import dataclasses
import os

from hypo.errors import ConfigError, HypoError

AUTO_GPU_SHARE = 0.25  # the models are small: four trials share one GPU
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"  # where `ray up` leaves the cluster config on the head node
EPS = 1e-9
CPU_FALLBACK_ENV = "HYPO_ALLOW_CPU_FALLBACK"  # "1": a trial given a GPU without CUDA trains on the CPU


@dataclasses.dataclass(frozen=True)
class ResourcePlan:
    """The outcome of :func:`plan_resources`.

    Attributes:
        gpus_per_trial: The GPU share per trial, ``auto`` resolved.
        fits_now: A node alive now can hold one trial.
        node_type: When it does not fit now: the autoscaler node type that could (else None).
        message: One line for the user.
    """

    gpus_per_trial: float
    fits_now: bool
    node_type: str | None
    message: str


def alive_nodes() -> list[dict[str, float]]:
    """The resources of every alive node of the connected Ray cluster."""
    import ray

    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def autoscaler_node_types(cluster_config: str | None = None) -> dict[str, dict[str, float]]:
    """Node types an autoscaler may start, with their declared resources (those with ``max_workers`` > 0).

    Args:
        cluster_config: A cluster YAML (``--cluster-config``); default: the head node's bootstrap config when it
            exists, else none (a local Ray has no autoscaler).

    Raises:
        ConfigError: When a given cluster config cannot be read.
    """
    path = cluster_config or os.path.expanduser(BOOTSTRAP_CONFIG)
    if not os.path.isfile(path):
        if cluster_config:
            raise ConfigError(f"--cluster-config {cluster_config}: no such file")
        return {}
    import yaml

    try:
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--cluster-config {path}: not readable YAML ({str(exc).splitlines()[0]})") from None
    cluster_max = cfg.get("max_workers", 0) or 0
    head = cfg.get("head_node_type")
    out = {}
    for name, spec in (cfg.get("available_node_types") or {}).items():
        spec = spec or {}
        if name == head or min(spec.get("max_workers", cluster_max) or 0, cluster_max or 0) <= 0:
            continue
        out[name] = {k: float(v) for k, v in (spec.get("resources") or {}).items()}
    return out


def _holds(resources: dict[str, float], cpus: float, gpus: float) -> bool:
    return resources.get("CPU", 0.0) + EPS >= cpus and resources.get("GPU", 0.0) + EPS >= gpus


def resolve_gpus(spec: str | float, nodes: list[dict[str, float]], node_types: dict[str, dict[str, float]]) -> float:
    """``--gpus-per-trial``: a number as given, ``auto`` -> :data:`AUTO_GPU_SHARE` where GPUs exist or can be added."""
    if spec != "auto":
        return float(spec)
    has_gpu = any(n.get("GPU", 0) > 0 for n in nodes) or any(t.get("GPU", 0) > 0 for t in node_types.values())
    return AUTO_GPU_SHARE if has_gpu else 0.0


def _describe(nodes: list[dict[str, float]]) -> str:
    if not nodes:
        return "no node"
    best_cpu = max(n.get("CPU", 0.0) for n in nodes)
    best_gpu = max(n.get("GPU", 0.0) for n in nodes)
    return f"{len(nodes)} node(s), the largest with {best_cpu:g} CPU and {best_gpu:g} GPU"


def plan_resources(cpus: float, gpus: str | float, nodes: list[dict[str, float]],
                   node_types: dict[str, dict[str, float]]) -> ResourcePlan:
    """Check one trial's request against the nodes alive now and the node types an autoscaler may add.

    Args:
        cpus: ``--cpus-per-trial``.
        gpus: ``--gpus-per-trial`` (a number, or ``"auto"``).
        nodes: Resources of the alive nodes (:func:`alive_nodes`).
        node_types: Autoscaler node types (:func:`autoscaler_node_types`).

    Returns:
        The plan; ``fits_now`` False means: wait for the autoscaler to add ``node_type``.

    Raises:
        ConfigError: When no node and no node type can ever hold one trial.
    """
    g = resolve_gpus(gpus, nodes, node_types)
    want = f"{cpus:g} CPU" + (f" and {g:g} GPU" if g else "")
    if any(_holds(n, cpus, g) for n in nodes):
        return ResourcePlan(g, True, None, f"each trial takes {want}")
    fitting = [name for name, res in node_types.items() if _holds(res, cpus, g)]
    if fitting:
        return ResourcePlan(g, False, fitting[0], f"each trial takes {want}: no node alive now can hold one; "
                                                  f"waiting for the autoscaler to add a {fitting[0]} node")
    hint = " (--gpus-per-trial 0 trains on CPUs)" if g else " (lower --cpus-per-trial)"
    where = "; the autoscaler's node types cannot either" if node_types else ""
    raise ConfigError(f"each trial asks for {want}, but this Ray cluster has {_describe(nodes)}{where}: no trial "
                      f"could ever start{hint}")


class NoCudaError(HypoError):
    """Ray reserved a GPU for a trial on a node where CUDA is not available, and CPU fallback is off."""


def cpu_fallback_allowed(environ=None) -> bool:
    """Whether ``HYPO_ALLOW_CPU_FALLBACK`` is on (``1``, ``true`` or ``yes``) in ``environ`` (default the process's)."""
    value = (os.environ if environ is None else environ).get(CPU_FALLBACK_ENV, "")
    return value.strip().lower() in ("1", "true", "yes")


def trial_device(gpu_ids: list, cuda_available: bool, allow_cpu_fallback: bool, where: str = "this node") -> str:
    """The device a trial trains on: ``"cuda"`` when Ray reserved it a GPU, ``"cpu"`` when it reserved none.

    Args:
        gpu_ids: The GPUs Ray reserved for the trial (``ray.get_gpu_ids()``); Ray leaves CUDA visible to CPU-only
            trials on a GPU node, where using it would crowd the trials that reserved it.
        cuda_available: ``torch.cuda.is_available()`` on the trial's node.
        allow_cpu_fallback: :func:`cpu_fallback_allowed` on the driver.
        where: The node, for the message.

    Returns:
        ``"cuda"`` or ``"cpu"`` (``"cpu"`` for a reserved GPU without CUDA only when the fallback is allowed).

    Raises:
        NoCudaError: A GPU was reserved, CUDA is not available and the fallback is off.
    """
    if not gpu_ids:
        return "cpu"
    if cuda_available:
        return "cuda"
    if allow_cpu_fallback:
        return "cpu"
    raise NoCudaError(f"Ray gave a trial GPU {', '.join(map(str, gpu_ids))} on {where}, but CUDA is not available "
                      f"there (no driver, or a CPU-only torch); set {CPU_FALLBACK_ENV}=1 to let such trials train on "
                      "the CPU, or search with --gpus-per-trial 0")


def plan_trial_resources(cpus_per_trial: float, gpus: str | float, pending_timeout_s: float,
                         cluster_config: str | None = None, log=print) -> float:
    """Check one trial's resources against the running cluster (Ray started); resolve ``--gpus-per-trial auto``.

    Args:
        cpus_per_trial: CPUs per trial.
        gpus: GPUs per trial, or ``"auto"``.
        pending_timeout_s: How long the search waits for a node (said when it must wait).
        cluster_config: The cluster YAML whose node types the autoscaler may add (default: the head node's).
        log: Where the line goes.

    Returns:
        The GPU share per trial, ``auto`` resolved.

    Raises:
        ConfigError: When no node, and no node type the autoscaler may add, can ever hold one trial.
    """
    plan = plan_resources(cpus_per_trial, gpus, alive_nodes(), autoscaler_node_types(cluster_config))
    log(plan.message + ("" if plan.fits_now else f" (at most --pending-timeout {pending_timeout_s:g} s)"))
    return plan.gpus_per_trial
