"""``hypo windows`` as one job: the source the options name, Ray started or joined, and the preprocessing job."""

from __future__ import annotations

from typing import Any

from hypo.config import WindowConfig


def windows_job(source: str, source_options: dict[str, Any], cfg: WindowConfig, out: str, *,
                address: str | None = None, num_cpus: int | None = None, num_cpus_per_task: float = 1.0,
                cases_per_task: int = 16, progress: bool = True, log=print) -> dict[str, Any]:
    """Build the window dataset ``out`` from the source called ``source``.

    Args:
        source: ``demo``, ``vital-dir`` or ``vitaldb`` (:func:`hypo.data.sources.factory.make_source`).
        source_options: That source's options (cases, seed, path, cache, track_map, subjects, api_url, site).
        cfg: The window, label, fill and split rules; the source reads the arterial line for ART labels and lets
            cases lack the groups ``cfg.allow_missing`` names.
        out: The dataset folder (local or ``s3://``).
        address: The Ray cluster (:func:`hypo.runtime.init_ray`).
        num_cpus: CPUs of a local Ray.
        num_cpus_per_task: CPUs each task reserves.
        cases_per_task: Cases one task takes in turn.
        progress: Ray Data's progress bars.
        log: Where the summary lines go.

    Returns:
        The manifest.
    """
    from hypo.data.preprocess import build_windows
    from hypo.data.sources.factory import make_source
    from hypo.runtime import init_ray

    src = make_source(source, **source_options, arterial=cfg.label.source == "art", allow_missing=cfg.allow_missing)
    init_ray(address, num_cpus)
    return build_windows(src, cfg, out, num_cpus_per_task=num_cpus_per_task, cases_per_task=cases_per_task,
                         progress=progress, log=log)
