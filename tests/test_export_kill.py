"""An export killed at any moment leaves the previous model or the new one, loadable as it is (issue 21, item 13).

``hypo export`` writes the model (its sidecar embedded), then the sidecar beside it, each whole or not at all
(:func:`hypo.storage.write_bytes`). A process killed (SIGKILL) at each step of that, on a disk and on an object
store, leaves a model that loads without any action: a sidecar beside it that the kill left stale or cut short is
rewritten from the embedded copy, the temporaries it left are removed, and the next export leaves no debris.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from hypo import storage
from hypo.cli.export import main as export_main
from hypo.infer.export import KILL_AT_ENV, load_exported, sidecar_path, write_exported
from hypo.infer.model import ExportedModel
from hypo.mirror import local_copy

from demo_experiment import build_demo_dataset, fake_search

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The steps of an export, in order, and which model a kill there leaves: the previous ("old") or the new one.
STEPS = [("model", "old"), ("model-partial", "old"), ("model-written", "old"), ("model-replaced", "new"),
         ("sidecar-partial", "new"), ("sidecar-written", "new")]
WRITE = """
import sys
from hypo.infer.export import load_exported, write_exported
module, sidecar = load_exported(sys.argv[1], log=lambda s: None)
write_exported(module, sidecar, sys.argv[2])
"""


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Two exports of one trial that differ (their alarm thresholds): ``old`` and ``new``."""
    root = tmp_path_factory.mktemp("exports")
    data = str(root / "demo")
    build_demo_dataset(data, n_cases=24)
    exp = fake_search(data, str(root / "exp"), trials=({"model": "cnn", "k": 4, "loss": "ce"},), epochs=1)
    out = {}
    for name, spec in (("old", "0.9"), ("new", "0.8")):
        out[name] = str(root / name / "model.pt")
        export_main([exp, "--out", out[name], "--specificity", spec])
    return out


def _thresholds(path):
    return ExportedModel.load(path).sidecar.thresholds


def _beside_matches(model_path, local_model):
    """Whether the sidecar beside the model says what the embedded copy says, with the model file's hash."""
    beside = json.loads(storage.read_bytes(sidecar_path(model_path)))
    embedded = load_exported(model_path, log=lambda s: None)[1]
    return beside.pop("model_sha256") == storage.sha256_file(local_model) and \
        beside == json.loads(embedded.model_copy(update={"model_sha256": None}).dumps())


def _kill_at(step, source, target):
    done = subprocess.run([sys.executable, "-c", WRITE, source, target], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT, **{KILL_AT_ENV: step}), timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_damaged_sidecar_and_the_temporaries_of_killed_exports_are_repaired_on_load(exports, tmp_path):
    model, side = tmp_path / "model.pt", tmp_path / "model.json"
    model.write_bytes(open(exports["new"], "rb").read())
    fresh = open(sidecar_path(exports["new"])).read()
    side.write_text("")  # emptied by a kill, as Sidecar.write once left it
    host, dead = socket.gethostname(), _dead_pid()
    stale = [tmp_path / f".model.pt.tmp-{host}-{dead}-1a2b3c4d", tmp_path / f".model.json.tmp-{host}-{dead}-5e6f",
             tmp_path / f"model.pt.tmp-{dead}"]  # the last: as hypo export named it before
    busy = [tmp_path / f".model.pt.tmp-{host}-{os.getpid()}-00000000", tmp_path / f".model.pt.tmp-other-{dead}-0"]
    for p in stale + busy:
        p.write_bytes(b"half a model")
    lines = []
    loaded = ExportedModel.load(str(model))
    load_exported(str(model), log=lines.append)
    assert loaded.sidecar.thresholds == _thresholds(exports["new"])
    assert side.read_text() == fresh  # rewritten from the embedded copy, as the export wrote it
    assert not any(p.exists() for p in stale) and all(p.exists() for p in busy)  # a live or another host's: kept
    assert sorted(os.listdir(tmp_path)) == sorted(["model.pt", "model.json", *(p.name for p in busy)])


@pytest.mark.slow
@pytest.mark.parametrize("step, left", STEPS)
def test_an_export_killed_at_each_step_leaves_a_loadable_model_and_no_debris_after_the_next(exports, tmp_path,
                                                                                           step, left):
    target = str(tmp_path / "model.pt")
    write_exported(*load_exported(exports["old"], log=lambda s: None), target)  # the model there before
    _kill_at(step, exports["new"], target)
    debris = sorted(set(os.listdir(tmp_path)) - {"model.pt", "model.json"})
    assert bool(debris) == step.endswith(("-partial", "-written")), debris  # the kill came mid-write
    lines = []
    load_exported(target, log=lines.append)  # loadable as it is, saying what it repaired
    assert _thresholds(target) == _thresholds(exports[left])  # the old model or the new
    assert _beside_matches(target, target)
    assert sorted(os.listdir(tmp_path)) == ["model.json", "model.pt"]  # the load removed what the kill left
    assert bool(lines) == (bool(debris) or left == "new"), lines
    write_exported(*load_exported(exports["new"], log=lambda s: None), target)  # the next run
    assert sorted(os.listdir(tmp_path)) == ["model.json", "model.pt"] and _beside_matches(target, target)


@pytest.mark.slow
@pytest.mark.parametrize("step, left", [s for s in STEPS if s[0] != "model"])
def test_an_export_to_the_object_store_killed_at_each_step_leaves_a_loadable_model(s3_endpoint, exports, step, left,
                                                                                    tmp_path, monkeypatch):
    from s3_server import new_bucket

    monkeypatch.setenv("HOME", str(tmp_path))  # the local copies of the model on the store go there
    bucket = new_bucket()
    target = f"{bucket}/models/model.pt"
    write_exported(*load_exported(exports["old"], log=lambda s: None), target)
    _kill_at(step, exports["new"], target)
    assert storage.list_files(f"{bucket}/models") == ["model.json", "model.pt"]  # no other name, ever
    assert _thresholds(target) == _thresholds(exports[left])
    assert _beside_matches(target, local_copy(target))  # a stale sidecar on the store rewritten there
    write_exported(*load_exported(exports["new"], log=lambda s: None), target)
    assert storage.list_files(f"{bucket}/models") == ["model.json", "model.pt"]
    assert _thresholds(target) == _thresholds(exports["new"])
