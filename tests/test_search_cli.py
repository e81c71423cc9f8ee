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
