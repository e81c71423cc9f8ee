"""The search's console: Tune's progress table, pointing at the experiment folder (Tune pickles this with it)."""

from __future__ import annotations

from ray import tune


class ProgressTable(tune.CLIReporter):
    """Tune's classic progress table, with its "Result logdir" line naming the experiment folder.

    Tune names a driver folder inside Ray's temporary session directory there, which is gone after the run;
    the experiment folder is where results, checkpoints and TensorBoard files stay.
    """

    def __init__(self, experiment_path: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.experiment_path = experiment_path

    def _print(self, msg: str) -> None:
        lines = [f"Results: {self.experiment_path} (tensorboard --logdir {self.experiment_path})"
                 if line.startswith("Result logdir:") else line for line in msg.splitlines()]
        super()._print("\n".join(lines))
