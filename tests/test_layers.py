"""The layers of DESIGN.md, read from the source: the engine never imports a front end, a
constant two layers share lives in the lower one, and no two modules import each other.

Every import counts, also one inside a function: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import rnn_ime

PACKAGE = Path(rnn_ime.__file__).parent
FRONT_ENDS = {"rnn_ime.cli", "rnn_ime.server", "rnn_ime.__main__", "rnn_ime.train.__main__"}
FRONT_END_PACKAGES = ("rnn_ime.ibus",)  # every module of these is a front end's


def front_ends(modules) -> set[str]:
    return {m for m in modules
            if m in FRONT_ENDS or any(m == p or m.startswith(p + ".") for p in FRONT_END_PACKAGES)}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Each module of the package → the package's modules it imports (anywhere in it)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                target = ".".join(p for p in (base, node.module or "") if p)
                # `from . import x` imports the module x when there is one
                found.update(f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target
                             for a in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_the_graph_sees_the_package():
    graph = imports()
    assert {"rnn_ime.scoring", "rnn_ime.train", "rnn_ime.onnx_format"} <= graph.keys()
    assert "rnn_ime.scoring" in graph["rnn_ime.ngram"]
    assert "rnn_ime.distributed" in graph["rnn_ime.train"]  # `from .. import distributed`


def test_the_engine_never_imports_a_front_end():
    graph = imports()
    fronts = front_ends(graph)
    assert "rnn_ime.ibus.engine" in fronts
    for module, targets in graph.items():
        if module not in fronts:
            assert not targets & fronts, (module, targets & fronts)


def test_shared_constants_live_in_the_lower_layer():
    graph = imports()
    assert "rnn_ime.prepare" not in graph["rnn_ime.data"]  # SPLITS is data's
    assert "rnn_ime.onnx_runtime" not in graph["rnn_ime.onnx_export"]
    assert "rnn_ime.onnx_export" not in graph["rnn_ime.onnx_runtime"]
    for module in ("rnn_ime.beam", "rnn_ime.ime.decoder", "rnn_ime.predict", "rnn_ime.server"):
        assert "rnn_ime.limits" in graph[module]
    assert graph["rnn_ime.limits"] == set()


def test_no_import_cycles():
    graph = imports()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, " → ".join([*path[path.index(module):], module])
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
