"""``hypo windows`` as one job: the source its description names, Ray started or joined, and the preprocessing job.

    windows_job(WindowsRequest(source=spec_from_flags("demo", cases=200), config=WindowConfig(), out="data/demo"))

The source is built from its description (:func:`hypo.data.sources.factory.build_source`), as the alarm replay
rebuilds it from the manifest.
"""

from __future__ import annotations

import dataclasses

from hypo.config import WindowConfig
from hypo.data.manifest import Manifest
from hypo.data.sources.spec import SourceSpec


@dataclasses.dataclass(frozen=True)
class WindowsRequest:
    """What ``hypo windows`` was asked to build (see its ``--help`` for each option).

    Attributes:
        source: The source (:func:`hypo.data.sources.factory.spec_from_flags`); it reads the arterial line for ART
            labels and lets cases lack the groups ``config.allow_missing`` names.
        config: The window, label, fill and split rules.
        out: The dataset folder (local or ``s3://``).
        address: The Ray cluster (:func:`hypo.runtime.init_ray`).
        num_cpus: CPUs of a local Ray.
        num_cpus_per_task: CPUs each task reserves.
        cases_per_task: Cases one task takes in turn.
        progress: Ray Data's progress bars.
    """

    source: SourceSpec
    config: WindowConfig
    out: str
    address: str | None = None
    num_cpus: int | None = None
    num_cpus_per_task: float = 1.0
    cases_per_task: int = 16
    progress: bool = True


def windows_job(req: WindowsRequest, log=print) -> Manifest:
    """Build the window dataset ``req.out`` from the source ``req.source`` describes.

    Args:
        req: The request.
        log: Where the summary lines go.

    Returns:
        The manifest.
    """
    from hypo.data.preprocess import build_windows
    from hypo.data.sources.factory import build_source
    from hypo.runtime import init_ray

    cfg = req.config
    src = build_source(req.source.reading(cfg.label.source == "art", cfg.allow_missing))
    init_ray(req.address, req.num_cpus)
    return build_windows(src, cfg, req.out, num_cpus_per_task=req.num_cpus_per_task,
                         cases_per_task=req.cases_per_task, progress=req.progress, log=log)
