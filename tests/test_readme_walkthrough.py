"""The command lines of the README and the docs pages (``docs/*.md``) parse as written: each ``hypo VERB ...`` line
of their ``bash`` blocks goes through that verb's own argument parser (positional arguments, choices, types), and
the external-validation walkthrough (``docs/external.md``) still states the flow issue 14 made work end to end
(channel dropout on site A, TIVA kept on site B, the three recalibrations, a prediction)."""

import argparse
import glob
import importlib
import os
import re
import shlex

import pytest

from hypo.cli.main import COMMANDS
from hypo.cli.windows import config_from_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
WALKTHROUGH = "docs/external.md"


class Parsed(BaseException):
    """Raised in place of running a command once its arguments are parsed (BaseException: nothing catches it)."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self.namespace = args


def readme_lines(page: str | None = None) -> list[list[str]]:
    """The ``hypo ...`` command lines of the ``bash`` blocks of the README and the docs pages (or of one page), as
    argv lists."""
    text = "\n".join(open(os.path.join(ROOT, p)).read() for p in ([page] if page else PAGES))
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["hypo"] and len(words) > 1:
                out.append(words[1:])
    return out


def parse(argv: list[str], monkeypatch) -> argparse.Namespace:
    """The namespace ``hypo argv[0]`` parses ``argv[1:]`` into, without running the command."""
    original = argparse.ArgumentParser.parse_args

    def parse_only(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    module = importlib.import_module(f"hypo.cli.{COMMANDS[argv[0]][0]}")
    with pytest.raises(Parsed) as got:
        module.main(argv[1:], prog=f"hypo {argv[0]}")
    return got.value.namespace


def test_every_readme_command_line_parses(monkeypatch, capsys):
    lines = readme_lines()
    assert len(lines) > 20
    for argv in lines:
        try:
            parse(argv, monkeypatch)
        except SystemExit:
            pytest.fail(f"hypo {shlex.join(argv)}: {capsys.readouterr().err.strip()}")


def test_the_external_validation_walkthrough_parses_as_the_flow_it_describes(monkeypatch):
    parsed = [(argv[0], parse(argv, monkeypatch)) for argv in readme_lines(WALKTHROUGH)]
    verbs = [v for v, _ in parsed]
    search = next(a for v, a in parsed if v == "search")
    assert search.channel_dropout > 0  # site A's model takes missing groups, so it scores TIVA windows
    site_b = [a for v, a in parsed if v == "windows" and a.source == "vital-dir"]
    assert site_b and config_from_args(site_b[0]).allow_missing == ("mac",)
    assert site_b[0].track_map and site_b[0].subjects
    evaluations = [a for v, a in parsed if v == "evaluate"]
    assert {a.recalibrate for a in evaluations} == {"none", "temperature", "vector", "isotonic"}
    exports = {a.write_export for a in evaluations if a.write_export}
    predicted = [a for v, a in parsed if v == "predict"]
    assert predicted and predicted[-1].model in exports and predicted[-1].track_map
    assert verbs.index("search") < verbs.index("evaluate") < verbs.index("predict")
