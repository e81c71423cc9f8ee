"""A dataset and an experiment on a real S3 API server (moto, :mod:`s3_server`), as a search on a cluster leaves them.

The dataset is built straight to ``s3://``; the experiment is a small trained search uploaded as Tune's storage
leaves it. The leaderboard, report and export read it through a local mirror kept in step with the store, write
their files back to the store, export to the store, and the model loads from there. The claim on a name is atomic
on a disk and on the store, a killed upload leaves no object, and no credential is ever written.
"""

import os
import shutil
import subprocess
import sys
import threading

import boto3
import numpy as np
import pytest

from hypo import storage
from hypo.cli.export import main as export_main
from hypo.errors import ConfigError, HypoError
from hypo.evaluate.testsplit.report import ReportRequest, make_report
from hypo.infer.model import ExportedModel
from hypo.mirror import push
from hypo.search.board import show_leaderboard
from hypo.search.claim import CLAIM, claim_experiment, unrecorded_claim
from hypo.search.experiments import latest_search, local_experiment, resolve_experiment

from demo_experiment import build_demo_dataset, fake_search
from s3_server import CREDENTIALS, new_bucket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _keys(uri):
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"][len(prefix):].lstrip("/") for page in pages for o in page.get("Contents", ()))


@pytest.fixture(scope="module")
def cloud(s3_endpoint, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    home, work = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("cwd")
    mp.setenv("HOME", str(home))  # the mirror and the model copies go under ~/.cache/hypo
    mp.chdir(work)  # nothing may land in the working folder (an "s3:" folder, a "runs" folder)
    bucket = new_bucket()
    data = f"{bucket}/windows"
    build_demo_dataset(data, n_cases=30)  # straight to the store, through the pipeline's own writes
    search = tmp_path_factory.mktemp("search") / "exp"
    fake_search(data, str(search), trials=({"model": "cnn", "k": 4, "loss": "ce"},), epochs=1)
    push(str(search), f"{bucket}/runs/exp")  # what a search with --storage s3://.../runs leaves
    shutil.rmtree(search)
    lines = []
    yield {"bucket": bucket, "data": data, "exp": f"{bucket}/runs/exp", "home": home, "work": work, "lines": lines}
    mp.undo()


def test_leaderboard_report_and_export_read_the_store_and_write_back_to_it(cloud):
    exp, lines = cloud["exp"], cloud["lines"]
    res = show_leaderboard(exp, log=lines.append)
    assert len(res["frame"]) == 3  # one trial and two baselines
    assert lines[0].startswith(f"{exp}: read through its local mirror {cloud['home']}")
    assert lines[1].startswith("hypo search exp, ")  # the experiment's name, not its mirror's
    assert lines[-1] == (f"wrote {exp}/leaderboard.csv, {exp}/leaderboard.md, {exp}/leaderboard.png, "
                         f"{exp}/hypotension.csv")
    rep = make_report(ReportRequest(exp, n_boot=5), log=lines.append)
    assert rep["results"]["provenance"]["experiment"] == exp
    assert lines[-1].startswith(f"wrote {exp}/report/report.html (+ roc_pr.png")
    side = export_main([exp, "--out", f"{cloud['bucket']}/models/model.pt"])
    assert side.trial.experiment == exp and side.trial.checkpoint.startswith(exp + "/train_trial_")
    assert side.metrics.test is not None  # the report of the same checkpoint, read back from the store
    stored = _keys(exp)
    assert {"leaderboard.csv", "leaderboard.md", "leaderboard.png", "report/report.json", "report/report.html",
            "test_looks.jsonl"} <= set(stored)
    assert _keys(f"{cloud['bucket']}/models") == ["model.json", "model.pt"]
    assert os.listdir(cloud["work"]) == []  # no local "s3:" folder, no "runs"
    model = ExportedModel.load(f"{cloud['bucket']}/models/model.pt")
    assert model.predict_proba(np.full((2, 60, 7), 80, np.float32)).shape == (2, 3)
    again = []
    show_leaderboard(exp, log=again.append)
    assert "(0 new or changed files)" in again[0]  # the mirror is brought in step, not copied anew


def test_the_mirror_holds_what_the_store_holds(cloud):
    exp = cloud["exp"]
    storage.write_bytes(f"{exp}/notes/added.txt", b"new")
    local = local_experiment(exp, log=lambda s: None)
    assert open(os.path.join(local, "notes", "added.txt")).read() == "new"
    storage.write_bytes(f"{exp}/notes/added.txt", b"changed")
    assert open(os.path.join(local_experiment(exp, log=lambda s: None), "notes", "added.txt")).read() == "changed"
    storage.remove(f"{exp}/notes/added.txt")
    local_experiment(exp, log=lambda s: None)
    assert not os.path.exists(os.path.join(local, "notes", "added.txt"))  # nothing stale is read


def test_the_latest_experiment_under_a_prefix_of_the_store(cloud):
    runs = f"{cloud['bucket']}/runs"
    assert resolve_experiment(runs, log=lambda s: None) == cloud["exp"]
    assert latest_search(runs) == "exp"


def test_an_unreadable_experiment_or_a_missing_bucket_is_one_line(cloud):
    with pytest.raises(HypoError, match=f"^no experiment folder at {cloud['bucket']}/runs/none$"):
        show_leaderboard(f"{cloud['bucket']}/runs/none", log=lambda s: None)
    with pytest.raises(SystemExit) as exc:
        export_main([cloud["exp"], "--out", "s3://no-such-bucket-here/model.pt"])
    assert exc.value.code == 2


@pytest.mark.parametrize("where", ["local", "s3"])
def test_of_searches_claiming_one_name_at_the_same_moment_exactly_one_wins(cloud, tmp_path, where):
    exp = f"{cloud['bucket']}/runs/raced" if where == "s3" else str(tmp_path / "runs" / "raced")
    barrier, won, refused = threading.Barrier(4), [], []

    def race():
        barrier.wait()
        try:
            won.append(claim_experiment(exp))
        except ConfigError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 3
    assert all(f"{exp} was claimed by another search (pid {os.getpid()} on " in r and "choose another --name" in r
               for r in refused)
    assert "that has written no record yet" in unrecorded_claim(exp)  # a later search is told what it is
    won[0].release()  # a search that could not start gives the name back
    assert not storage.exists(storage.join(exp, CLAIM)) and unrecorded_claim(exp) is None
    claim_experiment(exp).release()


@pytest.mark.parametrize("step", ["partial", "written"])
def test_an_upload_killed_midway_leaves_no_object(cloud, step):
    uri = f"{cloud['bucket']}/killed/{step}.bin"
    code = ("import os, signal, sys\nfrom hypo import storage\n"
            "def kill(s):\n    if s == sys.argv[2]: os.kill(os.getpid(), signal.SIGKILL)\n"
            "storage.write_bytes(sys.argv[1], os.urandom(12 << 20), on_step=kill)\n")
    done = subprocess.run([sys.executable, "-c", code, uri, step], env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]
    assert not storage.exists(uri) and storage.list_files(f"{cloud['bucket']}/killed") == []


def test_no_credential_is_written_anywhere(cloud):
    """Run last: everything the tests above wrote, on the store and on disk, and every line they logged."""
    secrets = [CREDENTIALS["AWS_SECRET_ACCESS_KEY"].encode(), CREDENTIALS["AWS_ACCESS_KEY_ID"].encode()]
    s3 = boto3.client("s3")
    bucket = cloud["bucket"][len("s3://"):]
    keys = _keys(cloud["bucket"])
    assert len(keys) > 30
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert not any(s in body for s in secrets), key
    for folder in (cloud["home"], cloud["work"]):
        for dirpath, _, files in os.walk(folder):
            for name in files:
                with open(os.path.join(dirpath, name), "rb") as f:
                    assert not any(s in f.read() for s in secrets), os.path.join(dirpath, name)
    assert not any(s.decode() in line for s in secrets for line in cloud["lines"])
