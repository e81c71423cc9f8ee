"""The ``hypo`` command: one console script, a verb per stage (``hypo --help`` lists them).

Each verb is the ``main(argv, prog)`` of a module in :mod:`hypo.cli`, imported only when that verb runs, so
``hypo --help`` starts fast and one verb's imports (Ray, torch) do not slow another.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from hypo import __version__

# verb -> (module in hypo.cli, one line for `hypo --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "windows": ("windows", "build the window dataset from cases with Ray Data (demo, .vital folder, VitalDB)"),
    "demo-files": ("demo_files", "write simulated demo cases as genuine .vital files"),
    "train": ("train", "train one model configuration on a window dataset"),
    "search": ("search", "search models, k, loss and gamma with Ray Tune + Optuna; print the leaderboard"),
    "leaderboard": ("leaderboard", "rank a search's trials (table, CSV, MD, PNG); --test N looks at the test split"),
    "report": ("report", "evaluate one trial once on the test split; self-contained HTML report"),
    "export": ("export", "export a trial as TorchScript with its JSON sidecar"),
    "predict": ("predict", "predict hypotension along one .vital recording with an exported model"),
    "evaluate": ("evaluate", "score a frozen model on another source's windows (external validation); recalibrate"),
    "serve": ("serve", "run a model live on Vital Recorder streams, in silent mode (Ray Serve; research screen)"),
    "advisor": ("advisor", "simulate a model that asks for a cuff reading (closed-loop, ART-simulated cuff)"),
    "replay": ("replay", "stream .vital recordings to hypo serve in Vital Recorder's format (real time or faster)"),
}


def usage() -> str:
    """The text of ``hypo --help``: every verb with its one line."""
    width = max(map(len, COMMANDS))
    lines = [f"usage: hypo COMMAND [ARGS...]    (hypo {__version__}; also: python -m hypo COMMAND)", "",
             "Intraoperative hypotension prediction from non-invasive monitor data.", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "hypo COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Any:
    """Run ``hypo COMMAND ARGS...``; returns what the command returns (for tests and the Python API).

    Raises:
        SystemExit: 0 after ``--help``/``--version``, 2 for an unknown command or a user error.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        if not argv:
            raise SystemExit(2)
        return None
    if argv[0] == "--version":
        print(f"hypo {__version__}")
        return None
    verb, rest = argv[0], argv[1:]
    if verb not in COMMANDS:
        print(f"hypo: error: unknown command {verb!r}; one of: {', '.join(COMMANDS)} (see hypo --help)",
              file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(f"hypo.cli.{COMMANDS[verb][0]}")
    return module.main(rest, prog=f"hypo {verb}")


def console() -> None:
    """The ``hypo`` console script: :func:`main` with its return value dropped (an exit status is not a dict)."""
    main()
