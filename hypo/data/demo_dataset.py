"""The demo window dataset the zero-argument search runs on: built once, reused, and checked when reused."""

from __future__ import annotations

from hypo import storage


def ensure_demo_dataset(path: str, cases: int, log=print) -> None:
    """Build the demo window dataset at ``path`` unless one is already there; warn when that one differs.

    The zero-argument search reuses what ``path`` holds; when it was built otherwise (other cases, label mode,
    split), the search would silently run on it, so the difference is said.

    Args:
        path: The dataset folder (``data/demo``).
        cases: Simulated cases to build it from.
        log: Where the lines go.
    """
    from hypo.config import WindowConfig, to_dict
    from hypo.data.sources.demo import DemoSource

    source, cfg = DemoSource(n_cases=cases, seed=0), WindowConfig()
    config_path = storage.join(path, "config.json")
    if storage.exists(storage.join(path, "manifest.json")):
        have = storage.read_json(config_path) if storage.exists(config_path) else {}
        want = {"config": to_dict(cfg), "source": source.name, "source_fingerprint": source.fingerprint()}
        differs = [k for k in ("source", "source_fingerprint", "config") if have.get(k) != want[k]]
        if differs:
            what = {"source": "another source", "source_fingerprint": f"other cases than {cases} demo cases",
                    "config": "other window settings"}
            log(f"warning: {path} holds a dataset built from {' and '.join(what[k] for k in differs)} than the "
                f"default demo build; the search runs on it as it is (delete {path}, or pass --data, to choose)")
        return
    from hypo.data.preprocess import build_windows

    log(f"building the demo window dataset ({cases} simulated cases) in {path}")
    build_windows(source, cfg, path, log=log)
