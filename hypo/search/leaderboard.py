"""The trial leaderboard: every trial of a search at its best epoch, ranked, with the baselines as rows.

The baselines (:mod:`hypo.learn.baselines`: last reading, feature model, and last ART minute on arterial-line
datasets) were scored on the same validation windows when the search started; an older search that recorded only
the last reading shows that row alone.

Reads any experiment folder, finished or still running, straight from the files Ray Tune writes
(``<trial>/params.json`` and ``<trial>/result.json``, one line per reported epoch), so it needs neither the
trainable nor a running Ray. Writes ``leaderboard.csv``, ``leaderboard.md`` and ``leaderboard.png``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from hypo import storage
from hypo.errors import ConfigError, HypoError
from hypo.learn.baselines import MODEL_READS, ROW_PREFIX, BaselineRecord, baseline_list, reads_of
from hypo.learn.metrics import RANK_METRICS, undefined_reasons
from hypo.search.record import SearchRecord
from hypo.search.space import ALL_SIGNALS

ORPHANED = "hypo_orphaned.json"  # in a trial folder a resumed search no longer knows (see mark_orphans)


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
        if not os.path.isfile(params_file) or os.path.exists(os.path.join(tdir, ORPHANED)):
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
        history = trained_epochs(history)
        trial_id = history[-1].get("trial_id", name) if history else _id_from_folder(name)
        records.append(TrialRecord(str(trial_id), tdir, params, history))
    if not records:
        raise HypoError(f"{exp_path} holds no trial (is it a Ray Tune experiment folder?)")
    return records


def mark_orphans(exp_path: str, known: set[str]) -> list[str]:
    """Mark the trial folders a resumed search does not know as orphaned; :func:`load_trials` leaves them out.

    A driver killed between Tune's snapshots of its experiment leaves trial folders (a trial started since the last
    snapshot) that the snapshot, and so the resumed search, never had: the resumed search's searcher suggests
    trials in their place, under new ids. The old folder would read as one more, unfinished trial. It is kept (with
    its checkpoints), marked by a small ``hypo_orphaned.json``.

    Args:
        exp_path: The experiment (local folder or URI).
        known: Folder names of the trials the resumed search has (``Result.path`` of Tune's results).

    Returns:
        The folders marked now.
    """
    marked = []
    for name in storage.list_dirs(exp_path):
        folder = storage.join(exp_path, name)
        if name in known or not storage.exists(storage.join(folder, "params.json")) or \
                storage.exists(storage.join(folder, ORPHANED)):
            continue
        storage.write_json(storage.join(folder, ORPHANED),
                           {"reason": "a trial of a killed run that the resumed search did not know; its searcher "
                                      "suggested trials in its place"})
        marked.append(name)
    return marked


def trained_epochs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A trial's result rows, one per epoch: those of the run that trained its last model.

    A trial restarted from a checkpoint older than its last reported epoch (its node was lost before Tune had
    recorded that epoch's checkpoint) trains those epochs again and reports them again; its result file then holds
    them twice. A row whose ``training_iteration`` is not past the previous row's starts such a restart: it
    replaces the rows of the epochs it retrains.
    """
    out: list[dict[str, Any]] = []
    for row in rows:
        it = row.get("training_iteration")
        if isinstance(it, (int, float)):
            while out and isinstance(out[-1].get("training_iteration"), (int, float)) and \
                    out[-1]["training_iteration"] >= it:
                out.pop()
        out.append(row)
    return out


def _id_from_folder(name: str) -> str:
    """``train_trial_6deb5f2d_1_batch_size=...`` -> ``6deb5f2d`` (a trial that has reported nothing yet)."""
    parts = name.split("_")
    return parts[2] if name.startswith("train_trial_") and len(parts) > 2 else name


def search_status(records: list[TrialRecord], search: SearchRecord | None) -> dict[str, Any]:
    """Whether the search behind ``records`` is complete, read from the trials' own results.

    It is partial when any trial is unfinished or fewer trials exist than the search planned, whatever stopped
    it (Ctrl-C, SIGKILL, a lost node): no handler needs to have run. A search with a budget of trial-epochs
    (``trial_epoch_budget``) whose trials reported that many epochs is complete: the budget ended it.

    Args:
        records: The trials (:func:`load_trials`).
        search: The experiment's search record (:func:`~hypo.search.record.read_search_record`), if any.

    Returns:
        ``{"partial", "finished", "trials", "planned", "budget_spent", "note"}``; ``note`` is one line for every
        output.
    """
    planned = search.planned_trials(len(records)) if search is not None else len(records)
    finished = sum(r.finished for r in records)
    budget = search.trial_epoch_budget if search is not None else None
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


def trial_devices(history: list[dict[str, Any]]) -> str | None:
    """The devices a trial trained on, in order (``cuda``, ``cpu``; ``cuda+cpu`` for one that moved), or None."""
    seen = dict.fromkeys(r["device"] for r in history if r.get("device"))
    return "+".join(seen) or None


def _note(metrics: dict[str, Any] | None) -> str:
    """Why a row's mean AUROC / summed AUPRC are NaN (a class absent from the split), or ''."""
    if not metrics:
        return ""
    why = undefined_reasons(metrics, prefix="val_")
    parts = [f"{label} n/a: {why[k]}" for k, label in (("mean_auroc", "mean AUROC"), ("sum_auprc", "sum AUPRC"))
             if k in why]
    if len(parts) == 2 and why["mean_auroc"] == why["sum_auprc"]:
        parts = [f"mean AUROC and sum AUPRC n/a: {why['mean_auroc']}"]
    return "; ".join(parts)


Baselines = Sequence[BaselineRecord | Mapping[str, Any]] | Mapping[str, Any] | None  # what baseline_list reads


def leaderboard_frame(records: list[TrialRecord], baselines: Baselines = None,
                      by: tuple[str, ...] = RANK_METRICS) -> pd.DataFrame:
    """Ranked table: one row per trial at its best epoch, plus one row per baseline (rank empty).

    Args:
        records: Trials from :func:`load_trials`.
        baselines: The baselines' validation rows as the search recorded them
            (:func:`hypo.learn.baselines.baseline_list` reads each form).
        by: Ranking metrics, highest first (lexicographic).

    A ``note`` column says why a row's mean AUROC or summed AUPRC is NaN (a class absent from the split).
    """
    by = tuple(by)
    reported = {k for rec in records for r in rec.history for k, v in r.items()
                if k.startswith("val_") and isinstance(v, (int, float))}
    unknown = [m for m in by if m not in reported]
    if records and reported and (unknown or not by):
        raise ConfigError(f"--rank-by: unknown metric(s) {', '.join(unknown) or '(none given)'}; the trials report "
                          + ", ".join(sorted(reported)))
    signals_searched = any("signals" in rec.params for rec in records)
    heads = any(rec.params.get("head", "class") != "class" for rec in records)  # per-horizon heads (--head)
    devices = any(r.get("device") for rec in records for r in rec.history)  # searches before hypo recorded it: none
    rows = []
    for rec in records:
        best = rec.best(by)
        p = rec.params
        row = {
            "trial": rec.trial_id,
            "model": p.get("model"),
            "reads": MODEL_READS,
            "k": p.get("k"),
            "loss": p.get("loss"),
            "gamma": p.get("gamma") if p.get("loss") == "focal" else None,
            "lr": p.get("lr"),
            **({"signals": p.get("signals") or ALL_SIGNALS} if signals_searched else {}),
            **({"head": p.get("head") or "class"} if heads else {}),
            "epochs_run": len(rec.history),
            "best_epoch": best.get("epoch") if best else None,
            **({"device": trial_devices(rec.history)} if devices else {}),
            "status": "finished" if rec.finished else "unfinished",
        }
        for m in ("val_mean_auroc", "val_sum_auprc"):
            row[m] = best.get(m) if best else math.nan
        for c in CLASS_COLS:
            row[f"val_auprc_{c}"] = best.get(f"val_auprc_{c}") if best else math.nan
            row[f"val_prevalence_{c}"] = best.get(f"val_prevalence_{c}") if best else math.nan
        for m in by:  # a ranking metric is a column of the table too
            row[m] = best.get(m) if best else math.nan
        row["note"] = _note(best or (rec.history[-1] if rec.history else None))
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df = df.sort_values(list(by), ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    df["pareto"] = pareto_front(list(zip(df["val_mean_auroc"], df["val_sum_auprc"])))
    base_rows = []
    for b in baseline_list(baselines):
        metrics = {k: (math.nan if v is None else v) for k, v in b.metrics.items()}
        base = {"rank": None, "trial": ROW_PREFIX + b.name, "model": b.model, "reads": reads_of(b.name),
                "pareto": False}
        for m in df.columns:
            if m.startswith("val_"):
                base[m] = metrics.get(m, math.nan)
        base["note"] = _note(metrics)
        base_rows.append(base)
    if base_rows:
        df = pd.concat([df, pd.DataFrame(base_rows)], ignore_index=True)
    return df


DISPLAY = {  # column -> header in the terminal and Markdown tables
    "rank": "rank", "trial": "trial", "model": "model", "reads": "reads", "k": "k", "loss": "loss", "gamma": "gamma",
    "signals": "signals", "head": "head", "epochs_run": "epochs", "best_epoch": "best", "val_mean_auroc": "AUROC",
    "val_sum_auprc": "sumAUPRC",
    "val_auprc_hypotension": "AUPRC_hypo", "val_prevalence_hypotension": "prev_hypo",
    "val_auprc_hypertension": "AUPRC_hyper", "val_prevalence_hypertension": "prev_hyper", "device": "device",
    "status": "status",
    # --alarms N: validation figures of the alarm evaluation, selection-biased (the footnote says so)
    "val_alarm_sensitivity": "alarm_sens(val)*", "val_alarm_lead_min": "alarm_lead_min(val)*",
    "pareto": "pareto", "note": "note",
}


def _cell(col: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if col == "pareto":
        return "*" if v is True else ""
    if col == "val_alarm_lead_min":
        return f"{v:.1f}"
    if col.startswith("val_"):
        return f"{v:.4f}"
    if col == "gamma":
        return f"{v:.2f}"
    if col in ("rank", "k", "epochs_run", "best_epoch"):
        return str(int(v))
    return str(v)


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's shown columns as formatted strings, with short headers.

    A metric that is NaN because a class is absent shows ``n/a`` and the row's note says why; the note column
    is shown only when some row has one.
    """
    notes = list(df["note"]) if "note" in df.columns else [""] * len(df)
    cols = [c for c in DISPLAY if c in df.columns and c != "note"]
    extra = [c for c in df.columns if c.startswith("val_") and c not in DISPLAY]  # other --rank-by metrics
    cols = cols[:-1] + extra + cols[-1:] if extra and cols[-1] == "pareto" else cols + extra
    if any(notes):
        cols.append("note")

    def cell(c: str, v: Any, note: Any) -> str:
        text = _cell(c, v)
        if c == "note":
            return str(v or "")
        return "n/a" if not text and note and c in ("val_mean_auroc", "val_sum_auprc") else text

    return pd.DataFrame({DISPLAY.get(c, c.removeprefix("val_")): [cell(c, v, n) for v, n in zip(df[c], notes)]
                         for c in cols})


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
    """Trials on the mean-AUROC x summed-AUPRC plane, Pareto front drawn, each baseline marked.

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
    markers = ("*", "D", "X", "P")
    for i, (_, b) in enumerate(base.iterrows()):
        name = str(b["trial"]).removeprefix(ROW_PREFIX)
        ax.scatter([b["val_mean_auroc"]], [b["val_sum_auprc"]], marker=markers[i % len(markers)],
                   s=220 if i == 0 else 110, c=("red", "gold", "magenta", "cyan")[i % 4], edgecolors="black",
                   label=f"baseline: {name}", zorder=5)
    ax.set_xlabel("validation mean AUROC (one-vs-rest, 3 classes)")
    ax.set_ylabel("validation AUPRC hypotension + hypertension")
    heading = (title or "hypo search: trials at their best epoch") + ("  [simulated data]" if simulated else "")
    ax.set_title(heading.replace(", ", "\n", 1) if len(heading) > 60 else heading, fontsize=10)
    if partial:
        ax.text(0.5, 0.98, partial.split(";")[0], transform=ax.transAxes, ha="center", va="top", fontsize=10,
                color="darkred", weight="bold", bbox={"facecolor": "mistyrose", "edgecolor": "darkred"})
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def signal_importance(df: pd.DataFrame, metric: str = "val_mean_auroc") -> pd.DataFrame | None:
    """What each signal group is worth, from a search that chose the groups its trials read (``signals``).

    The best validation score (at each trial's best epoch) of the trials that read all five groups, and of those
    that read all groups but one (each group left out in turn, as the ablation space runs first); a group's
    importance is the drop when it is left out (negative: the search did better without it). Model settings vary
    between trials, as in any search, so a small drop is within what they alone move.

    Args:
        df: The leaderboard (:func:`leaderboard_frame`).
        metric: The score compared.

    Returns:
        One row for all groups and one per group left out (``condition``, ``signals``, ``trials``, ``best``,
        ``drop``), or None when the search did not choose signals.
    """
    from hypo.data.signals import GROUP_NAMES, GROUP_TITLES

    if "signals" not in df.columns:
        return None
    trials = df[df["rank"].notna()]

    def best(subset: str) -> tuple[float, int]:
        vals = trials.loc[trials["signals"] == subset, metric].astype(float)
        vals = vals[vals.notna()]
        return (float(vals.max()) if len(vals) else math.nan), int(len(vals))

    full, n_full = best(ALL_SIGNALS)
    rows = [{"condition": "all groups", "signals": ALL_SIGNALS, "trials": n_full, "best": full, "drop": 0.0}]
    for g in GROUP_NAMES:
        subset = "+".join(x for x in GROUP_NAMES if x != g)
        score, n = best(subset)
        rows.append({"condition": f"without {GROUP_TITLES[g]}", "signals": subset, "trials": n, "best": score,
                     "drop": full - score})
    return pd.DataFrame(rows)


def importance_lines(table: pd.DataFrame | None, metric: str = "val_mean_auroc") -> list[str]:
    """The signal-importance summary (:func:`signal_importance`) as text lines (console and Markdown)."""
    if table is None:
        return []
    what = {"val_mean_auroc": "mean AUROC", "val_sum_auprc": "summed AUPRC"}.get(metric, metric)
    out = [f"signal importance: best validation {what} of the trials reading all groups and of those reading all "
           "but one (each group left out); importance = the drop"]
    for r in table.itertuples(index=False):
        score = f"{r.best:.4f}" if _finite(r.best) else "n/a"
        drop = "" if r.condition == "all groups" else (f"  drop {r.drop:+.4f}" if _finite(r.drop) else "  drop n/a")
        why = "" if r.trials else "  (no trial read exactly these groups)"
        out.append(f"  {r.condition:<20} {score}{drop}  [{r.trials} trial{'s' if r.trials != 1 else ''}: "
                   f"{r.signals}]{why}")
    return out


def baseline_notes(baselines: Baselines) -> list[str]:
    """One line per baseline saying what it is (for the console and the Markdown file)."""
    return [f"baseline: {b.name} = {b.description or b.model}" for b in baseline_list(baselines)]


def write_leaderboard(df: pd.DataFrame, out_dir: str, title: str = "", simulated: bool = False,
                      partial: str | None = None, notes: list[str] | None = None,
                      importance: pd.DataFrame | None = None,
                      hypotension: tuple[pd.DataFrame, str, list[str]] | None = None) -> dict[str, str]:
    """Write ``leaderboard.csv``, ``leaderboard.md`` and ``leaderboard.png`` into ``out_dir``.

    Args:
        df: The leaderboard (:func:`leaderboard_frame`).
        out_dir: Folder for the three files.
        title: Heading of the Markdown file and the figure.
        simulated: Whether the dataset is simulated (the demo cohort); the Markdown and the figure then say so.
        partial: The note of a partial search (:func:`search_status`): a ``partial`` column in the CSV, a banner
            in the Markdown, a mark on the figure.
        notes: Lines written under the table (what each baseline is: :func:`baseline_notes`).
        importance: The signal-importance summary (:func:`signal_importance`) of a search that chose signals:
            ``signal_importance.csv`` and a section of the Markdown.
        hypotension: ``(frame, its Markdown, note lines)`` of the hypotension table beside the comparators
            (:mod:`hypo.search.hypotension_board`): ``hypotension.csv`` and a section of the Markdown.

    Returns:
        ``{"csv", "md", "png"}`` (and ``"importance"``, ``"hypotension"``) -> path.
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
        f.write(" Baseline rows are scored on the same validation windows.")
        f.write("\n\n" + format_markdown(df) + "\n")
        if notes:
            f.write("\n" + "\n".join(f"- {line}" for line in notes) + "\n")
        if hypotension is not None:
            f.write("\n## Hypotension: the comparators beside the trials\n\n" + hypotension[1] + "\n\n"
                    + "\n".join(f"- {line}" for line in hypotension[2]) + "\n")
        if importance is not None:
            lines = importance_lines(importance)
            f.write(f"\n## Which signals matter\n\n{lines[0]}.\n\n```\n" + "\n".join(lines[1:]) + "\n```\n")
    if hypotension is not None:
        paths["hypotension"] = os.path.join(out_dir, "hypotension.csv")
        hypotension[0].to_csv(paths["hypotension"], index=False)
    if importance is not None:
        paths["importance"] = os.path.join(out_dir, "signal_importance.csv")
        importance.to_csv(paths["importance"], index=False)
    plot_leaderboard(df, paths["png"], title, simulated, partial)
    return paths
