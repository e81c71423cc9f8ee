"""The trial leaderboard: every trial of a search at its best epoch, ranked, with the last-reading baseline.

Reads any experiment folder, finished or still running, straight from the files Ray Tune writes
(``<trial>/params.json`` and ``<trial>/result.json``, one line per reported epoch), so it needs neither the
trainable nor a running Ray. Writes ``leaderboard.csv``, ``leaderboard.md`` and ``leaderboard.png``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import pandas as pd

from hypo import storage
from hypo.errors import ConfigError, HypoError
from hypo.learn.metrics import RANK_METRICS

SEARCH_META = "hypo_search.json"  # written by the search into the experiment folder


@dataclasses.dataclass
class TrialRecord:
    """One trial: its parameters, every epoch it reported, and where its checkpoints are."""

    trial_id: str
    path: str
    params: dict[str, Any]
    history: list[dict[str, Any]]

    def best(self, by: tuple[str, ...] = RANK_METRICS) -> dict[str, Any] | None:
        """The reported epoch that ranks highest by ``by`` (lexicographic, NaN last), or None."""
        rows = [r for r in self.history if _finite(r.get(by[0]))]
        if not rows:
            return None
        return max(rows, key=lambda r: tuple(_key(r.get(m)) for m in by))

    @property
    def finished(self) -> bool:
        """Whether Tune ended the trial (its last result says ``done``: trained to the end, or stopped by ASHA).

        A trial cut short by Ctrl-C, a killed driver or a lost node has no such result until it is resumed.
        """
        return bool(self.history) and bool(self.history[-1].get("done"))

    def checkpoint_for(self, epoch: int) -> str | None:
        """The checkpoint folder holding ``epoch`` (each holds a small ``meta.json``), if it was kept."""
        for name in sorted(os.listdir(self.path)):
            meta = os.path.join(self.path, name, "meta.json")
            if name.startswith("checkpoint_") and os.path.exists(meta):
                with open(meta) as f:
                    if json.load(f).get("epoch") == epoch:
                        return os.path.join(self.path, name)
        return None


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _key(v: Any) -> float:
    return v if _finite(v) else -math.inf


def local_experiment(exp_path: str, log=print) -> str:
    """A local folder holding the experiment: itself, or a mirror of it when it lives on cloud storage.

    Searches on a cluster write to ``--storage s3://...``; the leaderboard, report and export read a local
    mirror in ``~/.cache/hypo/experiments`` (refreshed on each call: only new or changed files are copied).
    What they write (leaderboard files, reports, the test-look record) goes into that mirror.

    Raises:
        HypoError: When the cloud folder cannot be read.
    """
    if not storage.is_uri(exp_path):
        return storage.absolute(exp_path)
    import hashlib

    name = exp_path.rstrip("/").rsplit("/", 1)[-1]
    local = os.path.join(os.path.expanduser("~/.cache/hypo/experiments"),
                         f"{name}-{hashlib.sha256(exp_path.encode()).hexdigest()[:8]}")
    try:
        copied = storage.mirror_to_local(exp_path, local)
    except OSError as exc:
        raise HypoError(f"cannot read {exp_path}: {str(exc).splitlines()[0]}") from None
    log(f"{exp_path}: mirrored into {local} ({copied} new or changed files)")
    return local


def load_trials(exp_path: str) -> list[TrialRecord]:
    """Read every trial folder under an experiment folder.

    Raises:
        HypoError: When the folder does not exist or holds no trial.
    """
    exp_path = os.path.expanduser(exp_path)
    if not os.path.isdir(exp_path):
        raise HypoError(f"no experiment folder at {exp_path}")
    records = []
    for name in sorted(os.listdir(exp_path)):
        tdir = os.path.join(exp_path, name)
        params_file = os.path.join(tdir, "params.json")
        if not os.path.isfile(params_file):
            continue
        with open(params_file) as f:
            params = json.load(f)
        history = []
        result_file = os.path.join(tdir, "result.json")
        if os.path.exists(result_file):
            with open(result_file) as f:
                for line in f:
                    line = line.strip()
                    if line:
                        try:
                            history.append(json.loads(line))
                        except json.JSONDecodeError:  # a running trial may be mid-write
                            break
        trial_id = history[-1].get("trial_id", name) if history else _id_from_folder(name)
        records.append(TrialRecord(str(trial_id), tdir, params, history))
    if not records:
        raise HypoError(f"{exp_path} holds no trial (is it a Ray Tune experiment folder?)")
    return records


def _id_from_folder(name: str) -> str:
    """``train_trial_6deb5f2d_1_batch_size=...`` -> ``6deb5f2d`` (a trial that has reported nothing yet)."""
    parts = name.split("_")
    return parts[2] if name.startswith("train_trial_") and len(parts) > 2 else name


def read_search_meta(exp_path: str) -> dict[str, Any]:
    """The search's own record in the experiment folder (data path, fingerprint, baseline), or {}."""
    path = os.path.join(os.path.expanduser(exp_path), SEARCH_META)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def search_status(records: list[TrialRecord], meta: dict[str, Any]) -> dict[str, Any]:
    """Whether the search behind ``records`` is complete, read from the trials' own results.

    It is partial when any trial is unfinished or fewer trials exist than the search planned, whatever stopped
    it (Ctrl-C, SIGKILL, a lost node): no handler needs to have run. A search with a budget of trial-epochs
    (``trial_epoch_budget``) whose trials reported that many epochs is complete: the budget ended it.

    Returns:
        ``{"partial", "finished", "trials", "planned", "budget_spent", "note"}``; ``note`` is one line for every
        output.
    """
    from hypo.search.space import planned_trials

    search = meta.get("search") or {}
    planned = (planned_trials(search["space"], search["samples"], search.get("sampler"), search.get("models"),
                              search.get("paper_ks"))
               if "space" in search else len(records))
    finished = sum(r.finished for r in records)
    budget = search.get("trial_epoch_budget")
    spent = sum(len(r.history) for r in records)
    budget_spent = bool(budget) and spent >= budget
    partial = (finished < len(records) or len(records) < planned) and not budget_spent
    if budget_spent:
        note = (f"complete: its budget of {budget} trial-epochs spent ({finished} trials finished, "
                f"{len(records) - finished} stopped by the budget)")
    elif partial:
        note = (f"PARTIAL: {finished} of {planned} planned trials finished ({len(records) - finished} unfinished); "
                "resume the search to complete it")
    else:
        note = f"complete: all {finished} trials finished"
    return {"partial": partial, "finished": finished, "trials": len(records), "planned": planned,
            "budget_spent": budget_spent, "note": note}


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """Mark the points no other point beats on both coordinates (both maximised)."""
    marks = []
    for i, (a, b) in enumerate(points):
        dominated = any(
            (c >= a and d >= b) and (c > a or d > b) for j, (c, d) in enumerate(points) if j != i
        )
        marks.append(not dominated and _finite(a) and _finite(b))
    return marks


CLASS_COLS = ("hypotension", "hypertension")


def leaderboard_frame(records: list[TrialRecord], baseline: dict[str, Any] | None = None,
                      by: tuple[str, ...] = RANK_METRICS) -> pd.DataFrame:
    """Ranked table: one row per trial at its best epoch, plus the baseline row (rank empty).

    Args:
        records: Trials from :func:`load_trials`.
        baseline: The last-reading baseline's validation metrics (``val_*`` keys), if known.
        by: Ranking metrics, highest first (lexicographic).
    """
    by = tuple(by)
    reported = {k for rec in records for r in rec.history for k, v in r.items()
                if k.startswith("val_") and isinstance(v, (int, float))}
    unknown = [m for m in by if m not in reported]
    if records and reported and (unknown or not by):
        raise ConfigError(f"--rank-by: unknown metric(s) {', '.join(unknown) or '(none given)'}; the trials report "
                          + ", ".join(sorted(reported)))
    rows = []
    for rec in records:
        best = rec.best(by)
        p = rec.params
        row = {
            "trial": rec.trial_id,
            "model": p.get("model"),
            "k": p.get("k"),
            "loss": p.get("loss"),
            "gamma": p.get("gamma") if p.get("loss") == "focal" else None,
            "lr": p.get("lr"),
            "epochs_run": len(rec.history),
            "best_epoch": best.get("epoch") if best else None,
            "status": "finished" if rec.finished else "unfinished",
        }
        for m in ("val_mean_auroc", "val_sum_auprc"):
            row[m] = best.get(m) if best else math.nan
        for c in CLASS_COLS:
            row[f"val_auprc_{c}"] = best.get(f"val_auprc_{c}") if best else math.nan
            row[f"val_prevalence_{c}"] = best.get(f"val_prevalence_{c}") if best else math.nan
        for m in by:  # a ranking metric is a column of the table too
            row[m] = best.get(m) if best else math.nan
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df = df.sort_values(list(by), ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    df["pareto"] = pareto_front(list(zip(df["val_mean_auroc"], df["val_sum_auprc"])))
    if baseline:
        base = {"rank": None, "trial": "baseline: last reading", "model": "last-reading", "pareto": False}
        for m in df.columns:
            if m.startswith("val_"):
                base[m] = baseline.get(m, math.nan)
        df = pd.concat([df, pd.DataFrame([base])], ignore_index=True)
    return df


DISPLAY = {  # column -> header in the terminal and Markdown tables
    "rank": "rank", "trial": "trial", "model": "model", "k": "k", "loss": "loss", "gamma": "gamma",
    "epochs_run": "epochs", "best_epoch": "best", "val_mean_auroc": "AUROC", "val_sum_auprc": "sumAUPRC",
    "val_auprc_hypotension": "AUPRC_hypo", "val_prevalence_hypotension": "prev_hypo",
    "val_auprc_hypertension": "AUPRC_hyper", "val_prevalence_hypertension": "prev_hyper", "status": "status",
    "pareto": "pareto",
}


def _cell(col: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if col == "pareto":
        return "*" if v is True else ""
    if col.startswith("val_"):
        return f"{v:.4f}"
    if col == "gamma":
        return f"{v:.2f}"
    if col in ("rank", "k", "epochs_run", "best_epoch"):
        return str(int(v))
    return str(v)


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's shown columns as formatted strings, with short headers."""
    cols = [c for c in DISPLAY if c in df.columns]
    extra = [c for c in df.columns if c.startswith("val_") and c not in DISPLAY]  # other --rank-by metrics
    cols = cols[:-1] + extra + cols[-1:] if extra and cols[-1] == "pareto" else cols + extra
    return pd.DataFrame({DISPLAY.get(c, c.removeprefix("val_")): [_cell(c, v) for v in df[c]] for c in cols})


def format_table(df: pd.DataFrame) -> str:
    """Plain-text leaderboard for the terminal."""
    return display_frame(df).to_string(index=False)


def format_markdown(df: pd.DataFrame) -> str:
    """The leaderboard as a Markdown table."""
    shown = display_frame(df)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(r) + " |" for r in shown.itertuples(index=False)]
    return "\n".join(lines)


def plot_leaderboard(df: pd.DataFrame, path: str, title: str = "", simulated: bool = False,
                     partial: str | None = None) -> None:
    """Trials on the mean-AUROC x summed-AUPRC plane, Pareto front drawn, baseline marked.

    Args:
        df: The leaderboard (:func:`leaderboard_frame`).
        path: PNG to write.
        title: Figure title.
        simulated: Whether the dataset is simulated; the title then says so.
        partial: The note of a partial search (:func:`search_status`), written across the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = df[df["rank"].notna()]
    base = df[df["rank"].isna()]
    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=120)
    colors = {"lstm": "tab:blue", "cnn": "tab:orange", "cnn_cnn": "tab:green", "cnn_lstm": "tab:purple"}
    for model, grp in trials.groupby("model"):
        for loss, marker in (("ce", "o"), ("focal", "^")):
            g = grp[grp["loss"] == loss]
            if len(g):
                ax.scatter(g["val_mean_auroc"], g["val_sum_auprc"], c=colors.get(model, "grey"), marker=marker,
                           s=40, alpha=0.8, label=f"{model} / {loss}")
    front = trials[trials["pareto"] == True].sort_values("val_mean_auroc")  # noqa: E712 - pandas mask
    if len(front):
        ax.step(front["val_mean_auroc"], front["val_sum_auprc"], where="post", color="black", lw=1,
                label="Pareto front")
        for _, r in front.iterrows():
            ax.annotate(f"#{int(r['rank'])}", (r["val_mean_auroc"], r["val_sum_auprc"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    if len(base):
        b = base.iloc[0]
        ax.scatter([b["val_mean_auroc"]], [b["val_sum_auprc"]], marker="*", s=220, c="red", edgecolors="black",
                   label="last-reading baseline", zorder=5)
    ax.set_xlabel("validation mean AUROC (one-vs-rest, 3 classes)")
    ax.set_ylabel("validation AUPRC hypotension + hypertension")
    ax.set_title((title or "hypo search: trials at their best epoch") + ("  [simulated data]" if simulated else ""))
    if partial:
        ax.text(0.5, 0.98, partial.split(";")[0], transform=ax.transAxes, ha="center", va="top", fontsize=10,
                color="darkred", weight="bold", bbox={"facecolor": "mistyrose", "edgecolor": "darkred"})
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_leaderboard(df: pd.DataFrame, out_dir: str, title: str = "", simulated: bool = False,
                      partial: str | None = None) -> dict[str, str]:
    """Write ``leaderboard.csv``, ``leaderboard.md`` and ``leaderboard.png`` into ``out_dir``.

    Args:
        df: The leaderboard (:func:`leaderboard_frame`).
        out_dir: Folder for the three files.
        title: Heading of the Markdown file and the figure.
        simulated: Whether the dataset is simulated (the demo cohort); the Markdown and the figure then say so.
        partial: The note of a partial search (:func:`search_status`): a ``partial`` column in the CSV, a banner
            in the Markdown, a mark on the figure.

    Returns:
        ``{"csv", "md", "png"}`` -> path.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, f"leaderboard.{k}") for k in ("csv", "md", "png")}
    df.assign(partial=bool(partial)).to_csv(paths["csv"], index=False)
    with open(paths["md"], "w") as f:
        f.write(f"# {title or 'Leaderboard'}\n\n")
        if partial:
            f.write(f"> **{partial}**\n\n")
        f.write("Ranked on the validation split at each trial's best epoch; `*` marks the Pareto front.")
        if simulated:
            f.write(" **Simulated data**: these figures come from hypo's demo simulator and say nothing about "
                    "clinical performance.")
        f.write("\n\n" + format_markdown(df) + "\n")
    plot_leaderboard(df, paths["png"], title, simulated, partial)
    return paths
