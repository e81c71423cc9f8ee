"""The Ray Serve deployments of ``hypo serve``: one ``Ingest`` owning every bed, ``Scorer`` replicas batching.

``Ingest`` is the FastAPI ingress (its ASGI app is :func:`hypo.serve.app.build_app`, built on the replica after
the constructor, ``__serve_build_asgi_app__``). It runs as one replica: every bed's buffer, alarm state and
recorder sessions live there, so none is split, and the log has one writer. Each due window goes to
``Scorer.score``, which prepares it (:meth:`hypo.serve.scorer.BedScorer.prepare`) and hands the model input to
``_forward``, batched across beds by ``@serve.batch``; ``num_replicas`` of ``Scorer`` scales across the cluster.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from ray import serve

from hypo.serve.service import ServeConfig, bed_scorer, load_track_map_of, result_of

MAX_BATCH = 256
BATCH_WAIT_S = 0.005


@serve.deployment(max_ongoing_requests=4096, ray_actor_options={"num_cpus": 1})
class Scorer:
    """Prepares windows and scores them in batches (see the module docstring)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(1)  # beds are the parallelism; one thread per replica keeps latency predictable
        self.scorer = bed_scorer(ServeConfig(**cfg))

    async def score(self, rows: np.ndarray, end: int, known: np.ndarray | None = None) -> dict[str, Any]:
        """One bed's window ending at ``end`` -> a result dict.

        ``rows``: its last ``history_s`` seconds; ``known``: what is known of the case then.
        """
        prep = self.scorer.prepare(rows, end, known)
        if prep.x is None:
            return result_of(prep, None)
        return result_of(prep, await self._forward(prep.x))

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=BATCH_WAIT_S)
    async def _forward(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        return list(self.scorer.predict_proba(np.stack(xs)))


@serve.deployment(num_replicas=1, max_ongoing_requests=100_000, ray_actor_options={"num_cpus": 0})
@serve.ingress()
class Ingest:
    """The single owner of every bed: parses payloads, buffers, logs, steps alarms, serves the page."""

    def __init__(self, cfg: dict[str, Any], scorer) -> None:
        from hypo.serve.auth import tokens_for
        from hypo.serve.service import LiveService

        config = ServeConfig(**cfg)
        self.scorer = scorer
        describe = bed_scorer(config).describe()
        tokens, _, _ = tokens_for(config.log_dir, config.tokens)
        self.service = LiveService(config, self._score, describe, tokens, load_track_map_of(config))
        self.service.open()

    async def _score(self, rows: np.ndarray, end: int, known: np.ndarray | None = None) -> dict[str, Any]:
        return await self.scorer.score.remote(rows, end, known)

    def __serve_build_asgi_app__(self):
        from hypo.serve.app import build_app

        return build_app(self.service)

    async def close_log(self) -> bool:
        """Finish queued windows and write the log (``hypo serve`` calls it before shutting Serve down)."""
        await self.service.close()
        return True

    async def __del__(self) -> None:
        if self.service.log.is_open:  # Serve shut down without close_log: still finish and write the log
            await self.service.close()


def application(cfg: ServeConfig):
    """The bound application: ``Ingest`` with a handle to ``cfg.scorers`` ``Scorer`` replicas."""
    d = dataclasses.asdict(cfg)
    return Ingest.bind(d, Scorer.options(num_replicas=cfg.scorers).bind(d))
