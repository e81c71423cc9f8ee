"""The layered layout: no import cycle anywhere in hypo/, and every layer imports only those below it."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "hypo")
# Lower number = lower layer; a module may import its own layer or lower, top-level modules import no layer.
RANK = {"data": 1, "learn": 2, "infer": 3, "search": 3, "evaluate": 4, "serve": 4, "cli": 5}


def _modules() -> dict[str, str]:
    mods = {}
    for dirpath, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
                mods[rel.removesuffix(".__init__")] = os.path.join(dirpath, f)
    return mods


def _imports(path: str, modules: dict[str, str]) -> set[str]:
    """Every hypo module ``path`` imports, at module level or inside functions (both can close a circle)."""
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("hypo") and name != "hypo":
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(p, mods) - {m} for m, p in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_hypo():
    graph = _graph()
    assert "hypo.learn.train" in graph and "hypo.learn.checkpoint" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def _layer(module: str) -> int:
    parts = module.split(".")
    return RANK.get(parts[1], 0) if len(parts) > 2 or parts[1] in RANK else 0


def test_each_layer_imports_only_layers_below():
    bad = []
    for m, deps in _graph().items():
        if m == "hypo.__main__":  # `python -m hypo` is the hypo command itself
            continue
        for d in deps:
            mine, theirs = _layer(m), _layer(d)
            sibling = {m.split(".")[1], d.split(".")[1]} in ({"search", "infer"}, {"evaluate", "serve"})
            if {m.split(".")[1], d.split(".")[1]} == {"serve", "search"}:  # serve runs exports, never searches
                bad.append(f"{m} -> {d}")
            if theirs > mine or (sibling and theirs == mine) or (mine == 0 and theirs > 0):
                bad.append(f"{m} -> {d}")
    assert not bad, bad


@pytest.mark.parametrize("layer", sorted(RANK))
def test_each_layer_says_what_it_does(layer):
    import importlib

    doc = importlib.import_module(f"hypo.{layer}").__doc__ or ""
    assert "import" in doc and len(doc.splitlines()) >= 3, f"hypo.{layer}.__init__ needs its docstring"


def test_import_linter_contract_is_kept():
    """The contract CI runs (``lint-imports``), run here through import-linter's own entry point."""
    from importlinter.cli import lint_imports

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        assert lint_imports(config_filename=os.path.join(ROOT, "pyproject.toml")) == 0
    finally:
        os.chdir(cwd)
