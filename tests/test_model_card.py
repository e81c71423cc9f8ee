"""``model_card.md`` of ``hypo report`` and ``hypo evaluate``: every TRIPOD+AI item the issue lists is filled on a demo
run, and its numbers are the report's; the comparators and the gray zone on every board."""

import html
import json
import os
import re
import warnings

import pytest

from hypo.data.dataset import read_manifest
from hypo.evaluate.comparison import gray_zone_cells, hypotension_cells
from hypo.evaluate.model_card import NOT_REPORTED, ci
from hypo.learn.metrics import MetricWarning

from demo_experiment import as_schema_2, build_demo_dataset, exported_demo_model

TRIAL = ({"model": "cnn", "k": 8, "loss": "ce", "gamma": 0.0},)
# The items the issue names, by the card's headings: each must be filled from the run's records.
FILLED = ("5a. Data source", "6b. Eligibility, with the counts removed at each step", "8a. Outcome and horizon",
          "9a. Predictors", "10, 20a. Sample size and events per split", "11. Missing data",
          "12c. Model, and how the search chose it", "23a. Performance with intervals", "23a. Calibration",
          "23a. Comparators (what the current pressure alone says, same windows)",
          "23b. Gray zone: performance by the current MAP", "26. Limitations")


def sections(card: str) -> dict[str, str]:
    """Heading -> text of each ``## `` section."""
    parts = re.split(r"^## (.+)$", card, flags=re.M)
    return {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts), 2)}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from hypo.cli.report import main as report_main

    root = tmp_path_factory.mktemp("card")
    setup = exported_demo_model(root, epochs=1, trials=TRIAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        rep = report_main([setup["exp"], "--out", str(root / "report"), "--bootstrap", "30", "--no-alarms",
                           "--exclude-in-hypotension"])
    return {**setup, "root": root, "report": rep}


def test_the_reports_model_card_fills_every_item_with_the_reports_numbers(run):
    results, paths = run["report"]["results"], run["report"]["paths"]
    card = open(paths["model_card"]).read()
    assert card.splitlines()[0].startswith("**SIMULATED COHORT**")
    items = sections(card)
    for name in FILLED:
        assert items.get(name) and not items[name].startswith(NOT_REPORTED), name
    for name, text in items.items():  # an item the run cannot fill says so, and why
        assert text and (not text.startswith(NOT_REPORTED) or len(text) > len(NOT_REPORTED) + 10), name
    assert items["5b. Dates"].startswith("not reported: dates of accrual")
    b = results["bootstrap"]
    perf = items["23a. Performance with intervals"]
    assert f"mean AUROC {ci(b['mean_auroc'])}" in perf and ci(b["mean_auroc"]) in open(paths["html"]).read()
    assert f"AUROC {ci(b['hypotension']['auroc'])}" in perf and f"sensitivity at 90% specificity " \
        f"{ci(b['hypotension']['sens_at_spec'])}" in perf
    manifest = read_manifest(run["data"])
    test = manifest.split_counts("test")
    assert f"| test | {test.cases} | {test.subjects} | {test.windows:,} | {test.hypotension:,} " in \
        items["10, 20a. Sample size and events per split"]
    assert f"{manifest.cases.listed} listed" in items["6b. Eligibility, with the counts removed at each step"]
    assert f"ECE {results['calibration_summary']['hypotension']['ece']:.3f}" in items["23a. Calibration"]
    rows = results["comparison"]["rows"]
    page = open(paths["html"]).read()
    for cells in hypotension_cells(rows, exclude=True)[1]:  # the card's table is the report's, cell for cell
        line = "| " + " | ".join(cells) + " |"
        assert line in items["23a. Comparators (what the current pressure alone says, same windows)"]
        assert all(html.escape(c) in page for c in cells if c)
    for cells in gray_zone_cells(rows, 65.0)[1]:
        assert "| " + " | ".join(cells) + " |" in items["23b. Gray zone: performance by the current MAP"]
    assert [r["name"] for r in rows][:3] == ["this trial", "baseline: last reading", "baseline: feature model"]
    assert {"cuff MAP < 72", "cuff MAP < 73", "MAP extrapolation", "last DBP"} <= {r["name"] for r in rows}
    assert "AUROC excl." in items["23a. Comparators (what the current pressure alone says, same windows)"]


def test_hypo_evaluate_writes_its_model_card(run):
    from hypo.cli.evaluate import main as evaluate_main

    other = str(run["root"] / "site-b")
    build_demo_dataset(other, n_cases=20, site="b")
    out = str(run["root"] / "evaluation")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        res = evaluate_main([run["model"], "--data", other, "--out", out, "--bootstrap", "20"])
    card = open(os.path.join(out, "model_card.md")).read()
    assert res.paths["model_card"] == os.path.join(out, "model_card.md")
    assert card.splitlines()[0].startswith("**SIMULATED COHORT**")
    items = sections(card)
    for name in FILLED:
        assert items.get(name) and not items[name].startswith(NOT_REPORTED), name
    saved = json.load(open(os.path.join(out, "evaluation.json")))
    assert f"mean AUROC {ci(saved['sections']['discrimination']['model']['mean_auroc'])}" in \
        items["23a. Performance with intervals"]
    rows = saved["sections"]["comparison"]["model"]["rows"]
    assert [r["name"] for r in rows][:2] == ["model", "baseline: last reading"]
    assert "16. Development and evaluation data" in items


def test_leaderboard_and_test_table_show_the_comparators(run, tmp_path):
    from hypo.cli.leaderboard import main as leaderboard_main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        res = leaderboard_main([run["exp"], "--test", "1", "--no-alarms", "--out", str(tmp_path)])
    md = open(tmp_path / "leaderboard.md").read()
    assert "## Hypotension: the comparators beside the trials" in md and "| cuff MAP < 72 | cuff |" in md
    hypo = res["hypotension"]
    fixed = hypo[hypo["row"] == "cuff MAP < 72"].iloc[0]
    assert 0 <= fixed["val_sensitivity_hypotension"] <= 1 and fixed["val_auroc_hypotension"] != \
        fixed["val_auroc_hypotension"]  # a fixed rule: one operating point, no AUROC
    table = open(tmp_path / "test_table.md").read()
    assert "Hypotension on the same test windows" in table and "| MAP extrapolation | cuff |" in table
    assert "By the last cuff MAP at prediction time" in table and "65-75 (n " in table
    saved = json.load(open(tmp_path / "test_comparison.json"))
    assert saved["rows"][0]["reads"] == "model inputs" and "matched_auroc_hypotension" in saved["rows"][0]["metrics"]


def test_a_dataset_built_before_the_comparator_columns_still_reports(run, tmp_path):
    import shutil

    from hypo.cli.report import main as report_main

    data, exp = str(tmp_path / "demo"), str(tmp_path / "exp")
    shutil.copytree(run["data"], data)
    shutil.copytree(run["exp"], exp)
    record = json.load(open(os.path.join(exp, "hypo_search.json")))
    json.dump({**record, "data": data}, open(os.path.join(exp, "hypo_search.json"), "w"))
    as_schema_2(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        rep = report_main([exp, "--out", str(tmp_path / "report"), "--bootstrap", "10", "--no-alarms"])
    section = rep["results"]["comparison"]
    names = [r["name"] for r in section["rows"]]
    assert names[-2:] == ["cuff MAP < 72", "cuff MAP < 73"] and "MAP extrapolation" not in names
    (note,) = section["notes"]
    assert "need a rebuild" in note and data in note
    assert html.escape(note) in open(rep["paths"]["html"]).read() and note in open(rep["paths"]["model_card"]).read()
