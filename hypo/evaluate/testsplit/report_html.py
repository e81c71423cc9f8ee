"""The HTML page of ``hypo.evaluate.testsplit.report``: one self-contained file, figures embedded as base64 data URIs.

:func:`render_html` takes the ``results`` dict of :func:`~hypo.evaluate.testsplit.report.evaluate_trial` (every
number) and the paths of the PNG figures, and returns the page; nothing on it is fetched from elsewhere.
"""

from __future__ import annotations

import base64
import html
import json
import math
from typing import Any

import numpy as np

from hypo.data.dataset import label_source_text
from hypo.data.signals import CLASSES, HYPERTENSION, HYPOTENSION
from hypo.learn.metrics import undefined_reasons

ABNORMAL = (HYPOTENSION, HYPERTENSION)


def ci(m: dict[str, float], digits: int = 3) -> str:
    """A bootstrap summary ``{value, lo, hi}`` as ``0.912 [0.890, 0.931]`` (``n/a`` when undefined)."""
    if m is None or not _finite(m.get("value")):
        return "n/a"
    bounds = f" [{m['lo']:.{digits}f}, {m['hi']:.{digits}f}]" if _finite(m.get("lo")) else ""
    return f"{m['value']:.{digits}f}{bounds}"


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _img(path: str, alt: str) -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _f(v, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if _finite(v) else "n/a"


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th{background:#f3f5f7}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.banner{background:#fff3cd;border:1px solid #e0c36b;padding:.8em 1em;font-weight:600}.mismatch{color:#b00020}
code{background:#f3f5f7;padding:0 .25em}.note{color:#555;font-size:.92em}"""


def baselines_section(results: dict[str, Any]) -> str:
    """The model and every baseline as rows of one table, on the same test windows, with subject intervals."""
    boot, e = results["bootstrap"], html.escape
    header = ["row (test split, same windows)", "mean AUROC", "AUPRC hypo + hyper", "AUROC hypotension",
              "AUPRC hypotension", "AUROC hypertension", "AUPRC hypertension", "mean AUROC, model minus row"]

    def cells(b: dict[str, Any], diff) -> list[str]:
        return [ci(b["mean_auroc"]), ci(b["sum_auprc"]), ci(b["hypotension"]["auroc"]),
                ci(b["hypotension"]["auprc"]), ci(b["hypertension"]["auroc"]), ci(b["hypertension"]["auprc"]),
                ci(diff) if diff else ""]

    trial = results["trial"]
    rows = [[f"<b>this trial</b> ({e(str(trial['model']))} k={trial['k']} {e(str(trial['loss']))})",
             *cells(boot, None)]]
    notes = []
    for i, b in enumerate(results.get("baselines") or ()):
        diff = boot["mean_auroc_diff"] if i == 0 else b["bootstrap"].get("mean_auroc_diff")  # the first: reference
        rows.append([f"baseline: {e(b['name'])} (<code>{e(str(b['model']))}</code>)", *cells(b["bootstrap"], diff)])
        notes.append(f"<li><b>{e(b['name'])}</b>: {e(b['description'])}</li>")
    return ("<h2>Baselines on the same test windows</h2>" + _table(header, rows)
            + "<ul class='note'>" + "".join(notes) + "</ul>"
            + "<p class='note'>Each baseline is scored on exactly the windows the model is, with the same subject "
            "bootstrap replicates (so the differences are paired). If the feature model matches the trial, the "
            "deep model adds nothing a window's summary statistics did not already say.</p>")


def comparison_section(results: dict[str, Any]) -> str:
    """The comparators beside the trial on hypotension, and every row by the last cuff MAP (the gray zone)."""
    from hypo.evaluate.comparison import gray_zone_cells, hypotension_cells, notes

    section = results.get("comparison")
    if not section:
        return ""
    rows, e, hypo_map = section["rows"], html.escape, section["hypo_map"]

    def table(header_cells) -> str:
        header, cells = header_cells
        return _table(header, [[e(c) for c in r] for r in cells])

    what = "".join(f"<li><b>{e(r['name'])}</b> ({e(r['reads'])}): {e(r['description'])}</li>"
                   for r in rows if r.get("description"))
    lines = "".join(f"<li>{e(line)}</li>" for line in (*notes(rows, hypo_map), *section["notes"]))
    return ("<h2>Comparators: what the current pressure alone says</h2><p>Hypotension on the same test windows: "
            "this trial and the baselines beside fixed cuff-MAP rules, MAP extrapolation and the last DBP (each row "
            "says what it reads; 95% intervals over subjects, the report's replicates). A fixed rule is one "
            "operating point: its sensitivity, specificity and PPV.</p>"
            + table(hypotension_cells(rows, section["exclude_in_hypotension"]))
            + "<h2>By the current MAP: the gray zone</h2><p>Each row within the strata of the last cuff MAP at "
            "prediction time (hypotension AUROC; a fixed rule: sensitivity / specificity), with each stratum's "
            "windows and prevalence.</p>" + table(gray_zone_cells(rows, hypo_map))
            + f"<ul class='note'>{what}{lines}</ul>")


def channel_loss_section(results: dict[str, Any]) -> str:
    """The trial and the baselines with each signal group absent in turn (:mod:`.channel_loss`)."""
    from hypo.evaluate.testsplit.channel_loss import table_cells

    section = results.get("channel_loss")
    if not section:
        return ""
    header, rows = table_cells(section["rows"])
    e = html.escape
    how = "".join(f"<li><b>{e(r['name'])}</b>: {e(r['how'])}</li>" for r in section["rows"])
    return ("<h2>Under channel loss</h2><p>The same test windows with each signal group absent in turn, as at a "
            "site whose monitor lacks it. Cells: mean AUROC / AUPRC hypotension + hypertension.</p>"
            + _table(header, [[e(c) for c in r] for r in rows])
            + f"<ul class='note'>{how}</ul><p class='note'>{e(section['note'])}</p>")


def horizons_section(results: dict[str, Any], images: dict[str, str]) -> list[str]:
    """A multi-horizon dataset: hypotension by each horizon for the model and the baselines, and its figure."""
    rows = results.get("horizons")
    if not rows:
        return []
    horizons = sorted({r["horizon_s"] for r in rows})
    names = list(dict.fromkeys(r["row"] for r in rows))
    cell = {(r["row"], r["horizon_s"]): r for r in rows}

    def text(r):
        ci_ = f" [{_f(r['auroc_lo'])}, {_f(r['auroc_hi'])}]" if _finite(r["auroc_lo"]) else ""
        return f"{_f(r['auroc'])}{ci_} / {_f(r['auprc'])}"

    table = _table(["row", "reads", *(f"by {h / 60:g} min" for h in horizons)],
                   [[html.escape(n), cell[(n, horizons[0])]["reads"], *(text(cell[(n, h)]) for h in horizons)]
                    for n in names])
    out = ["<h2>Hypotension by each horizon</h2>", table,
           "<p class='note'>Cells: AUROC [95% interval over subjects] / AUPRC of hypotension by each horizon, on "
           "the test windows where it is known (a fixed MAP rule is one operating point). The model's risk by each "
           "horizon (its per-horizon head; a 3-class model: its p(hypotension) at every horizon) beside the last "
           "reading and the comparators.</p>"]
    if "horizons" in images:
        out.append(_img(images["horizons"], "AUROC against horizon"))
    return out


def render_html(results: dict[str, Any], images: dict[str, str]) -> str:
    """The self-contained report page: its sections in order, figures embedded."""
    parts = header_section(results) + summary_section(results)
    parts.append(baselines_section(results))
    parts.append(comparison_section(results))
    parts.append(channel_loss_section(results))
    parts += horizons_section(results, images)
    if results.get("alarms"):
        from hypo.evaluate.alarms.report import alarm_section_html

        parts.append(alarm_section_html(results["alarms"], images, _img, _table))
    if results.get("advisor"):
        from hypo.evaluate.advisor.report import advisor_section_html

        parts.append(advisor_section_html(results["advisor"], images, _img, _table))
    parts += ["<h2>ROC and precision-recall curves</h2>", _img(images["roc_pr"], "ROC and PR curves"),
              "<p class='note'>One-vs-rest. Shaded: 95% band of the model's curve over subject bootstrap replicates. "
              "Dashed grey: last-reading baseline on the same windows; dash-dotted: the other baselines. Circle: "
              "the operating point.</p>"]
    parts += operating_point_section(results, images) + strata_section(results) + paper_section(results)
    parts += provenance_section(results, images)
    return "\n".join(parts)


def header_section(results: dict[str, Any]) -> list[str]:
    """The page's head, title, the simulated-data banner, what was evaluated, and which look at the test split."""
    prov, trial, boot = results["provenance"], results["trial"], results["bootstrap"]
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>hypo report: trial {e(trial['trial'])}"
             f"</title><style>{CSS}</style></head><body>",
             "<h1>hypo: intraoperative hypotension prediction, test-split report</h1>",
             f"<p class='note'>Window {e(label_source_text(prov['label']))}.</p>"]
    if prov["simulated"]:
        parts.append(f"<p class='banner'>Simulated data. This dataset comes from hypo's built-in simulator (source "
                     f"<code>{e(str(prov['source']))}</code>), not from patients. Every figure below exercises the "
                     "software; none says anything about clinical performance.</p>")
    parts.append(
        f"<p>Trial <code>{e(trial['trial'])}</code> (leaderboard rank {trial['rank']}, chosen on the validation "
        f"split): <b>{e(str(trial['model']))}</b>, k = {trial['k']}, loss {e(str(trial['loss']))}"
        + (f" (gamma {trial['gamma']:g})" if trial.get("gamma") else "")
        + f", checkpoint of its best validation epoch {prov['epoch']}. Evaluated once on the test split: "
        f"{results['n_windows']:,} windows from {results['n_cases']} cases of {results['n_subjects']} subjects. "
        f"Label: class of the blood pressure {prov['label']['horizon_s'] // 60:g} min after each 60-s window "
        f"({e(label_source_text(prov['label']))}); hypotension MAP &lt; {prov['label']['hypo_map']:g} mmHg, "
        f"hypertension SBP &gt; {prov['label']['hyper_sbp']:g} mmHg. Intervals are "
        f"{100 * boot['level']:.0f}% percentile intervals from {boot['n_boot']} bootstrap replicates over "
        "subjects (all windows of a drawn subject together), not over windows.</p>")
    looks = results.get("test_looks") or {}
    if looks.get("look", 1) > 1:
        parts.append(f"<p class='banner'>Not the first look at this test split: {e(looks['note'])}.</p>")
    elif looks:
        parts.append(f"<p class='note'>{e(looks['note']).capitalize()} (recorded in test_looks.jsonl).</p>")
    return parts


def summary_section(results: dict[str, Any]) -> list[str]:
    """The headline table, model beside the last-reading baseline, and the metrics left undefined."""
    m, bm = results["metrics"], results["baseline_metrics"]
    boot, ref, op = results["bootstrap"], results["bootstrap"]["reference"], results["operating_point"]
    e = html.escape
    spec = f"{100 * op['specificity']:.0f}%"
    rows = [["mean AUROC (3 classes)", ci(boot["mean_auroc"]), ci(ref["mean_auroc"]), ""],
            ["AUPRC hypotension + hypertension", ci(boot["sum_auprc"]), ci(ref["sum_auprc"]), ""]]
    for c in ABNORMAL:
        name = CLASSES[c]
        rows += [[f"AUROC {name}", ci(boot[name]["auroc"]), ci(ref[name]["auroc"]), ""],
                 [f"AUPRC {name}", ci(boot[name]["auprc"]), ci(ref[name]["auprc"]),
                  f"prevalence {_f(boot[name]['prevalence'])}"],
                 [f"sensitivity at {spec} specificity: {name}", ci(boot[name]["sens_at_spec"]),
                  ci(ref[name]["sens_at_spec"]), "read off the test ROC curve"]]
    rows.append(["AUROC normal", _f(m["auroc_normal"]), _f(bm["auroc_normal"]), ""])
    d = boot["mean_auroc_diff"]
    undefined = results.get("undefined") or {}
    parts = ["<h2>Summary</h2>",
             _table(["test split", "model", "last-reading baseline", "note"], rows),
             f"<p>Mean AUROC, model minus baseline (paired, same replicates): <b>{ci(d)}</b>. The baseline scores "
             "each window from the most recent cuff reading at its end, without learning (PITFALLS.md 2).</p>"]
    parts += [f"<p class='banner'>{e(label)} n/a: {e(undefined[key])}. It is left undefined rather than "
              "computed over the classes present, which would make it another metric.</p>"
              for key, label in (("mean_auroc", "Mean AUROC"), ("sum_auprc", "AUPRC hypotension + hypertension"))
              if key in undefined]
    return parts


def operating_point_section(results: dict[str, Any], images: dict[str, str]) -> list[str]:
    """The operating point's thresholds and per-class figures, the confusion matrix, and calibration."""
    op, e = results["operating_point"], html.escape
    cm = np.asarray(op["confusion"])
    cm_rows = [[f"true {CLASSES[i]}"] + [f"{cm[i, j]:,}" for j in range(3)] + [f"{cm[i].sum():,}"] for i in range(3)]
    op_rows = [[name, _f(s["threshold"], 4), _f(s["sensitivity"]), _f(s["specificity"]), _f(s["ppv"]),
                _f(s["alarm_rate"])] for name, s in op["per_class"].items()]
    return ["<h2>Operating point and confusion matrix</h2>",
            f"<p><b>Operating point:</b> {e(op['rule'])}.</p>",
            _table(["alarm: p(class) >= threshold", "threshold", "sensitivity", "specificity", "PPV", "alarm rate"],
                   op_rows),
            _table(["", *[f"predicted {c}" for c in CLASSES], "total"], cm_rows),
            _img(images["confusion"], "confusion matrix"),
            "<h2>Calibration</h2>", _img(images["calibration"], "calibration curves"),
            "<p class='note'>Windows binned by predicted probability (10 equal-width bins); ECE = expected "
            "calibration error (bin-size-weighted mean |predicted - observed|). The baseline's scores are "
            "ramps of the last reading, not probabilities, and are shown for reference.</p>"]


def strata_section(results: dict[str, Any]) -> list[str]:
    """The model and the baseline by the class of the last cuff reading (the onset question: ``normal``)."""
    m, bm, e = results["metrics"], results["baseline_metrics"], html.escape
    strata_rows = []
    for s in ("normal", "hypotension", "hypertension", "none"):
        n = m.get(f"bylast_{s}_n", 0)
        why = undefined_reasons(m, "this stratum", prefix=f"bylast_{s}_").get("mean_auroc", "")
        strata_rows.append([s if s != "none" else "no reading yet", f"{int(n or 0):,}",
                            _f(m.get(f"bylast_{s}_prevalence_hypotension")),
                            _f(m.get(f"bylast_{s}_prevalence_hypertension")),
                            f"{_f(m.get(f'bylast_{s}_auroc_hypotension'))} / "
                            f"{_f(bm.get(f'bylast_{s}_auroc_hypotension'))}",
                            f"{_f(m.get(f'bylast_{s}_auroc_hypertension'))} / "
                            f"{_f(bm.get(f'bylast_{s}_auroc_hypertension'))}",
                            f"{_f(m.get(f'bylast_{s}_mean_auroc'))} / {_f(bm.get(f'bylast_{s}_mean_auroc'))}",
                            e(why)])
    return ["<h2>By the class of the last cuff reading</h2>",
            "<p>Predicting hypotension while the last reading is already hypotensive is trivial; the row "
            "<i>normal</i> is the onset question (PITFALLS.md 2). Cells: model / baseline; n/a where a "
            "stratum lacks a class.</p>",
            _table(["last reading", "windows", "prev. hypotension", "prev. hypertension", "AUROC hypotension",
                    "AUROC hypertension", "mean AUROC", "mean AUROC n/a because"], strata_rows)]


def paper_section(results: dict[str, Any]) -> list[str]:
    """The paper's published table beside this trial's figures, and the baselines on the same windows."""
    from hypo.evaluate.testsplit.top_trials import MODEL_TITLES, PAPER_MODELS, PAPER_TABLE

    prov, trial, boot, e = results["provenance"], results["trial"], results["bootstrap"], html.escape
    paper_rows = []
    ours = {"mean_auroc": boot["mean_auroc"], "sum_auprc": boot["sum_auprc"]}
    for loss in ("ce", "focal"):
        for metric, title in (("sum_auprc", "AUPRC (hypo + hyper)"), ("mean_auroc", "mean AUROC")):
            cells = []
            for model in PAPER_MODELS:
                paper = PAPER_TABLE[(loss, metric)].get(model)
                cell = _f(paper, 4) if paper is not None else "-"
                if model == trial["model"] and loss == trial["loss"]:
                    cell += f" / <b>{ci(ours[metric], 4)}</b>"
                cells.append(cell)
            paper_rows.append([("cross entropy" if loss == "ce" else "focal") + f": {title}", *cells])
    base_lines = "; ".join(f"{e(b['name'])}: mean AUROC {ci(b['bootstrap']['mean_auroc'], 4)}, AUPRC hypo + hyper "
                           f"{ci(b['bootstrap']['sum_auprc'], 4)}" for b in results.get("baselines") or ())
    return ["<h2>The paper's table beside ours</h2>",
            _table(["loss: metric", *[MODEL_TITLES[x] for x in PAPER_MODELS]], paper_rows),
            f"<p>Baselines on the same test windows: {base_lines}.</p>",
            "<p class='note'>Cells: the paper's published value (VitalDB, 5,064 patients) / <b>ours</b> (this "
            "trial on this test split, with its interval). Only the chosen trial's model and loss have a value "
            "of ours. The paper's labels are forward-filled cuff values; ours use label mode "
            f"<code>{e(prov['label']['mode'])}</code>"
            + (" on simulated data, so the numbers are not comparable." if prov["simulated"] else ".") + "</p>"]


def provenance_section(results: dict[str, Any], images: dict[str, str]) -> list[str]:
    """Fingerprints, paths and versions of what produced the report, and the page's end."""
    prov, boot, e = results["provenance"], results["bootstrap"], html.escape
    fp_ok = prov["dataset_fingerprint"] == prov["checkpoint_dataset_fingerprint"]
    prov_rows = [
        ["dataset fingerprint (manifest)", f"<code>{e(prov['dataset_fingerprint'])}</code>"],
        ["dataset fingerprint stored in the checkpoint",
         f"<code class='{'' if fp_ok else 'mismatch'}'>{e(prov['checkpoint_dataset_fingerprint'])}</code>"
         + (" (matches)" if fp_ok else " (MISMATCH)")],
        ["config fingerprint (TrainConfig)", f"<code>{e(prov['config_fingerprint'])}</code>"],
        ["search fingerprint", f"<code>{e(str(prov['search_fingerprint']))}</code>"],
        ["checkpoint SHA-256", f"<code>{e(prov['checkpoint_sha256'])}</code>"],
        ["checkpoint", f"<code>{e(prov['checkpoint'])}</code>"],
        ["dataset", f"<code>{e(prov['data'])}</code> (source <code>{e(str(prov['source']))}</code>)"],
        ["experiment", f"<code>{e(prov['experiment'])}</code>"],
        ["hypo version (report / checkpoint)",
         f"{e(prov['hypo_version'])} / {e(str(prov['checkpoint_hypo_version']))}"],
        ["bootstrap", f"{boot['n_boot']} replicates over {boot['n_subjects']} subjects, seed {boot['seed']}"],
        ["created", e(results["created"])],
    ]
    return ["<h2>Provenance</h2>", _table(["what", "value"], prov_rows),
            "<details><summary>training config and window config</summary><pre>"
            + e(json.dumps({"train": prov["config"], "windows": prov["window_config"]}, indent=2))
            + "</pre></details>",
            "<p class='note'>No clinical claim: hypo is research software. Figures files: roc_pr.png, "
            "confusion.png, calibration.png" + (", alarm_aoc.png, alarm_leads.png, alarm_examples.png"
                                                 if "alarm_aoc" in images else "")
            + "; every number: report.json.</p></body></html>"]
