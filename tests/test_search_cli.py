"""hypo search flags: every bad one is a single line, before Ray or any data work starts."""

import pytest

from hypo.cli.search import main


@pytest.mark.parametrize("argv, needle", [
    (["--space", "paper", "--samples", "3"], "--samples does not apply to --space paper"),
    (["--space", "paper", "--search-lr"], "--search-lr does not apply to --space paper"),
    (["--space", "paper", "--optuna-storage", "sqlite:///x.db"], "--optuna-storage does not apply"),
    (["--samples", "0"], "--samples must be >= 1"),
    (["--gpus-per-trial", "-1"], "--gpus-per-trial must be >= 0"),
    (["--reduction-factor", "1"], "--reduction-factor must be >= 2"),
    (["--epochs", "x"], "invalid int value"),
    (["--space", "grid"], "invalid choice"),
    (["--sampler", "grid"], "--sampler grid needs --space paper"),
    (["--scheduler", "hyperband"], "invalid choice"),
    (["--trial-epoch-budget", "0"], "--trial-epoch-budget must be >= 1"),
])
def test_bad_flags_are_one_line_and_start_nothing(argv, needle, tmp_path, monkeypatch, capsys):
    import ray

    monkeypatch.chdir(tmp_path)  # the default demo data and runs/ would land here
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--storage", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("hypo search: error:") and err.count("\n") == 1, err
    assert needle in err
    assert not ray.is_initialized() and list(tmp_path.iterdir()) == []


def test_resume_of_nothing_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--resume", "--storage", str(tmp_path), "--name", "none"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "nothing to resume" in err and err.count("\n") == 1


def test_resume_of_a_search_from_before_the_layers_is_refused_in_one_line(tmp_path, capsys):
    import json

    from hypo.config import to_dict
    from hypo.search.tuner import SearchConfig

    exp = tmp_path / "old"
    exp.mkdir()
    meta = {"search": to_dict(SearchConfig(data=str(tmp_path / "d"), storage=str(tmp_path), name="old")),
            "data": str(tmp_path / "d")}  # what hypo wrote before the layers: no code_layout
    (exp / "hypo_search.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit) as exc:
        main(["--resume", "--storage", str(tmp_path), "--name", "old"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "older hypo" in err and "leaderboard" in err


def test_zero_argument_search_warns_when_data_demo_is_another_dataset(tmp_path):
    from hypo.config import LabelConfig, WindowConfig
    from hypo.data.demo_dataset import ensure_demo_dataset
    from hypo.data.preprocess import _check_folder_config
    from hypo.data.sources.demo import DemoSource

    def build(path, cases, cfg):
        path.mkdir()
        _check_folder_config(str(path), cfg, DemoSource(n_cases=cases, seed=0))  # the config.json a build writes
        (path / "manifest.json").write_text("{}")
        return str(path)

    lines = []
    ensure_demo_dataset(build(tmp_path / "same", 200, WindowConfig()), 200, log=lines.append)
    assert lines == []
    other = build(tmp_path / "other", 20, WindowConfig(label=LabelConfig(mode="ffill")))
    ensure_demo_dataset(other, 200, log=lines.append)
    assert len(lines) == 1 and lines[0].startswith(f"warning: {other} holds a dataset built from other cases than "
                                                   "200 demo cases and other window settings")


def test_dataset_provenance_line():
    from hypo.data.dataset import describe_dataset

    from synthetic_windows import manifest_record

    manifest = {"source": {"name": "demo", "report": {"simulated": True}}, "cases": {"listed": 20, "ok": 19},
                "counts": {"train": {"windows": 1000}, "val": {"windows": 200}, "test": {"windows": 210}},
                "label": {"mode": "ffill", "horizon_s": 300}, "fingerprint": "abc"}
    line = describe_dataset(manifest_record(**manifest))
    assert line == ("demo (simulated) source, 19 of 20 cases used, windows train 1,000 / val 200 / test 210, "
                    "labels cuff ffill mode, horizon 300 s, fingerprint abc")


def test_a_bad_optuna_storage_is_one_line_and_leaves_the_name_free(tmp_path):
    """The tuner is built before hypo_search.json is written: a failed build leaves a folder that starts again."""
    import ray

    from hypo.errors import ConfigError
    from hypo.search.tuner import SearchConfig, run_search

    from synthetic_windows import write_synthetic_dataset

    data = str(tmp_path / "windows")
    write_synthetic_dataset(data, n_train=200, n_val=120, n_test=40, seed=0)
    cfg = SearchConfig(data=data, storage=str(tmp_path / "runs"), name="bad", samples=1, epochs=1, batch_size=64,
                       optuna_storage="nosuchdialect://x")
    for _ in range(2):  # the second time too: not "already holds a search"
        with pytest.raises(ConfigError, match=r"^--optuna-storage nosuchdialect://x: .*nosuchdialect"):
            run_search(cfg, log=lambda s: None)
    assert not (tmp_path / "runs" / "bad" / "hypo_search.json").exists()
    assert not ray.is_initialized()


def test_a_name_already_taken_is_refused_before_ray_or_the_data(tmp_path, capsys):
    import ray

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "hypo_search.json").write_text("{}")
    # --data names no dataset: the refusal comes first, before the dataset's check, Ray and the splits.
    with pytest.raises(SystemExit) as exc:
        main(["--data", str(tmp_path / "no-data"), "--storage", str(tmp_path), "--name", "taken"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "already holds a search: pass --resume" in err, err
    assert not ray.is_initialized()


def test_resume_without_name_picks_the_newest_search_not_the_newest_folder(tmp_path, capsys):
    """``hypo train`` writes runs/train beside the searches; --resume alone must not take it for one."""
    import json
    import os

    (tmp_path / "search-old").mkdir()
    (tmp_path / "search-old" / "hypo_search.json").write_text(json.dumps({"search": {}}))  # no code_layout
    (tmp_path / "train" / "cnn-k42").mkdir(parents=True)
    os.utime(tmp_path / "search-old", (1, 1))  # runs/train is newer
    with pytest.raises(SystemExit) as exc:
        main(["--resume", "--storage", str(tmp_path)])
    err = capsys.readouterr().err
    # the search was chosen: refused as one from an older hypo, not "train ... not a hypo search"
    assert exc.value.code == 2 and "search-old was started by an older hypo" in err, err

    (tmp_path / "search-old" / "hypo_search.json").unlink()
    with pytest.raises(SystemExit) as exc:
        main(["--resume", "--storage", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--resume: no experiment under" in err and err.count("\n") == 1, err
