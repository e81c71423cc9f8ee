"""The ``hypo`` command: verbs, ``--help`` everywhere, and every command line of the README and docs still parses."""

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from hypo.cli.main import COMMANDS, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {"tune/search.py": "search", "tune/leaderboard.py": "leaderboard",
           "preprocessing/build_windows.py": "windows"}


def _help(verb: str, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_hypo_help_lists_every_command_with_its_line():
    exe = shutil.which("hypo")
    assert exe, "the hypo console script is not installed (pip install -e .)"
    p = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    for verb, (_, line) in COMMANDS.items():
        assert re.search(rf"^\s+{re.escape(verb)}\s+{re.escape(line)}$", p.stdout, re.M), verb
    assert set(COMMANDS) == {"windows", "demo-files", "train", "search", "leaderboard", "report", "export", "predict",
                             "evaluate", "serve", "replay", "advisor"}


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_every_verb_has_help(verb, capsys):
    out = _help(verb, capsys)
    assert out.startswith(f"usage: hypo {verb} ")


def test_python_m_hypo_is_the_same_command():
    p = subprocess.run([sys.executable, "-m", "hypo", "demo-files", "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("usage: hypo demo-files"), p.stderr


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_top_level_scripts_are_thin_wrappers(script):
    p = subprocess.run([sys.executable, os.path.join(ROOT, script), "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith(f"usage: {script}"), p.stderr


def test_unknown_verb_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["trian"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "unknown command 'trian'" in err


def test_old_module_entry_points_are_gone():
    for mod in ("hypo.train", "hypo.report", "hypo.export", "hypo.predict"):
        p = subprocess.run([sys.executable, "-m", mod, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert p.returncode != 0 and "No module named" in p.stderr, mod


def readme_commands() -> list[tuple[str, list[str]]]:
    """(verb, flags) of every hypo command line in the code blocks of the README and the docs pages (``docs/*.md``),
    ``\\`` continuations joined."""
    pages = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
    text = "\n".join(open(p).read() for p in pages)
    out = []
    for block in re.findall(r"```(?:bash|console)\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if not line.startswith(("$ ", "hypo ", "python ", "ray ")) or ": error:" in line:
                continue
            line = line.split("#")[0].strip().removeprefix("$ ")
            words = line.split()
            if not words:
                continue
            if words[0] == "hypo" and len(words) > 1:
                verb = words[1]
            elif words[:2] == ["python", "-m"] and len(words) > 3 and words[2] == "hypo":
                verb = words[3]
            elif words[0] == "python" and len(words) > 1 and words[1] in SCRIPTS:
                verb = SCRIPTS[words[1]]
            elif words[:2] == ["ray", "submit"] and len(words) > 3 and words[3] in SCRIPTS:
                verb = SCRIPTS[words[3]]
            else:
                continue
            out.append((verb, [w.split("=")[0] for w in words if w.startswith("--")]))
    return out


def test_readme_commands_exist_and_their_flags_too(capsys):
    cmds = readme_commands()
    verbs = {v for v, _ in cmds}
    assert {"search", "windows", "leaderboard", "train", "report", "export", "predict"} <= verbs, verbs
    helps = {v: _help(v, capsys) for v in verbs if v in COMMANDS}
    assert verbs <= set(COMMANDS), verbs - set(COMMANDS)
    missing = [(v, f) for v, flags in cmds for f in flags if f not in ("--help",) and f not in helps[v]]
    assert not missing, missing
