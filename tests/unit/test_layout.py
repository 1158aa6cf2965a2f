"""The package's layout: the batch path without Spark, no import cycles, parts in layers.

The import graph is read from the source with ``ast``: every import counts,
also one inside a function or under ``TYPE_CHECKING``, since a cycle through a
lazy import is still two modules that cannot be understood one without the
other.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import alertbench

PACKAGE = Path(alertbench.__file__).parent
BATCH = PACKAGE / "broker" / "batch"

# Lowest first: a part may import its own layer and those below it, never one above.
# Data flows alerts -> simulator -> Kafka -> broker -> bench; the two clusters sit
# under the parts that use them.
LAYERS = [
    {"errors", "procs", "java", "config", "ssh"},
    {"alerts"},
    {"observe"},  # the exposition both the broker and the bench serve
    {"kafka"},
    {"spark"},
    {"simulator"},
    {"broker"},
    {"bench"},
    {"cli", "__main__"},
]


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``, from every import statement."""
    modules = module_names(root, package)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*here[: len(here) - node.level + 1], *filter(None, [base])])
                # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name``, mod.
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            else:
                continue
            for target in targets:
                if target == package or target.startswith(package + "."):
                    found = known(target)
                    if found is not None and found != name:
                        deps.add(found)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_two_modules_import_each_other_directly_or_through_others() -> None:
    graph = import_graph(PACKAGE, "alertbench")
    assert len(graph) == len(list(PACKAGE.rglob("*.py")))  # the walk saw the whole package
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle_through_a_lazy_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n"
    )
    (pkg / "d.py").write_text("import pkg.a\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "alertbench"
    for k, layer in enumerate(LAYERS):
        if top in layer:
            return k
    raise AssertionError(f"{module}: its part {top!r} is in no layer of this test")


def test_lower_parts_never_import_higher_ones() -> None:
    graph = import_graph(PACKAGE, "alertbench")
    upward = sorted(
        f"{m} -> {d}"
        for m, deps in graph.items()
        if m != "alertbench"
        for d in deps
        if d != "alertbench" and layer_of(d) > layer_of(m)
    )
    assert upward == []


def test_no_module_of_the_batch_path_imports_spark_even_lazily() -> None:
    spark = []
    for path in sorted(BATCH.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            spark += [f"{path.relative_to(PACKAGE)}:{node.lineno}" for n in names if "pyspark" in n]
            # Nor may it reach Spark through the broker's Spark side or the Spark cluster.
            spark += [
                f"{path.relative_to(PACKAGE)}:{node.lineno} imports {n}"
                for n in names
                if n.startswith(("alertbench.broker.stream", "alertbench.spark"))
            ]
    assert spark == []


# Imports the modules named in argv[1] (JSON) in a fresh interpreter whose import
# system refuses pyspark; prints which failed and whether pyspark got in anyway.
REFUSING_SPARK = textwrap.dedent(
    """
    import importlib, json, sys

    class RefuseSpark:
        def find_spec(self, name, path=None, target=None):
            if name == "pyspark" or name.startswith("pyspark."):
                raise ImportError(f"pyspark refused: {name}")
            return None

    sys.meta_path.insert(0, RefuseSpark())
    failed = {}
    for name in json.loads(sys.argv[1]):
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed[name] = repr(exc)
    spark = sorted(m for m in sys.modules if m.split(".")[0] == "pyspark")
    print(json.dumps({"failed": failed, "spark": spark}))
    """
)


def import_refusing_spark(modules: list[str]) -> dict:
    # A fresh interpreter: another test of this session may have imported pyspark already.
    done = subprocess.run(
        [sys.executable, "-c", REFUSING_SPARK, json.dumps(modules)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_module_of_the_batch_path_imports_with_pyspark_refused() -> None:
    modules = sorted(module_names(BATCH, "alertbench.broker.batch"))
    assert "alertbench.broker.batch.raw" in modules
    assert "alertbench.broker.batch.science.builtin" in modules
    assert import_refusing_spark(modules) == {"failed": {}, "spark": []}


def test_the_refusing_hook_refuses_a_module_that_imports_spark() -> None:
    # Or the test above would prove nothing.
    outcome = import_refusing_spark(["alertbench.broker.stream.listener"])
    assert list(outcome["failed"]) == ["alertbench.broker.stream.listener"]
    assert "pyspark refused: pyspark" in outcome["failed"]["alertbench.broker.stream.listener"]
    assert outcome["spark"] == []


def test_a_module_over_500_lines_says_why_it_is_one_piece() -> None:
    long = {}
    for name, path in module_names(PACKAGE, "alertbench").items():
        text = path.read_text()
        if len(text.splitlines()) > 500 and "one piece" not in (
            ast.get_docstring(ast.parse(text)) or ""
        ):
            long[name] = len(text.splitlines())
    assert long == {}
