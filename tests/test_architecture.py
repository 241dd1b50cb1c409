"""House rules for the code under nlpsuite/ and plugins/, checked with ``ast`` alone.

The project's modules are never imported here: each file is parsed, and its imports become edges
of a graph over modules ``nlpsuite.*`` (nlpsuite/) and ``nlpsuite_plugins.*`` (plugins/, which
is installed under that name).  Every import statement counts: at the top of a file or inside a
function at any depth, absolute or relative, ``import a.b`` or ``from a import b`` (the edge goes
to submodule ``a.b`` when that is a file, else to ``a``).  Imports under ``if TYPE_CHECKING:``
never run, so they are no edges; the parent packages an import loads implicitly are no edges
either, only the names written in the statement.

Rules:

* No import cycles.  The one exemption: an import statement with a comment containing
  ``start-up:`` and a reason on its line (any of its lines) or on a comment line directly above
  it, e.g. ``# start-up: the CLI must not import torch before a command needs it``.  Such an
  import is left out of the cycle check; nothing else about it changes.
* No private name crosses modules: ``from X import _name`` and ``X._name`` (X bound by an import
  of a project module) fail unless X is the importing module itself.  A private *submodule*
  (``from pkg import _impl``, ``import pkg._impl``) may be used inside its own package only.
  Dunders (``__version__``) are public.  ``TYPE_CHECKING`` imports count here: types are API too.
* No file has more than 700 lines.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"nlpsuite": "nlpsuite", "nlpsuite_plugins": "plugins"}  # package -> folder
MAX_LINES = 700
START_UP = re.compile(r"start-up:\s*\S")


class Edge(NamedTuple):
    source: str
    target: str
    where: str  # "path:line"
    exempt: bool  # a "start-up:" comment marks it


@dataclass
class Project:
    modules: dict[str, Path]  # module name -> file
    edges: list[Edge] = field(default_factory=list)  # imports that run
    private: list[str] = field(default_factory=list)  # "path:line: what" for each private use


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, guarded: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node below ``node``, and whether it sits under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        yield child, guarded
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            branches = [(n, True) for n in child.body] + [(n, guarded) for n in child.orelse]
            for inner, flag in branches:
                yield inner, flag
                yield from _walk(inner, flag)
        else:
            yield from _walk(child, guarded)


def _dotted(node: ast.expr) -> list[str] | None:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute) and (head := _dotted(node.value)) is not None:
        return [*head, node.attr]
    return None


def find_modules(base: Path, packages: dict[str, str]) -> dict[str, Path]:
    modules = {}
    for package, folder in packages.items():
        for path in sorted((base / folder).rglob("*.py")):
            parts = path.relative_to(base / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def scan(base: Path, packages: dict[str, str]) -> Project:
    project = Project(find_modules(base, packages))
    for module, path in project.modules.items():
        _scan_file(project, module, path, base)
    return project


def _scan_file(project: Project, module: str, path: Path, base: Path) -> None:
    modules, text = project.modules, path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    marked = {  # line -> whether a "start-up:" comment there exempts a statement on that line
        token.start[0]: not token.line[: token.start[1]].strip()  # alone on its line?
        for token in tokenize.generate_tokens(io.StringIO(text).readline)
        if token.type == tokenize.COMMENT and START_UP.search(token.string)
    }
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    aliases: dict[str, str] = {}  # local name -> project module it is bound to
    here = path.relative_to(base).as_posix()

    def edge(node: ast.stmt, target: str, guarded: bool) -> None:
        if target in modules and target != module and not guarded:
            lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            exempt = marked.get(node.lineno - 1, False) or any(line in marked for line in lines)
            project.edges.append(Edge(module, target, f"{here}:{node.lineno}", exempt))

    def private(owner: str, name: str, line: int) -> None:
        if not _private(name) or owner not in modules or owner == module:
            return
        if f"{owner}.{name}" in modules and module.startswith(f"{owner}."):
            return  # a private submodule, used inside its own package
        project.private.append(f"{here}:{line}: {owner}.{name}")

    def private_path(dotted: str, line: int) -> None:
        parts = dotted.split(".")
        for i in range(1, len(parts)):
            private(".".join(parts[:i]), parts[i], line)

    for node, guarded in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                edge(node, alias.name, guarded)
                private_path(alias.name, node.lineno)
                bound = alias.name if alias.asname else alias.name.partition(".")[0]
                if bound in modules:
                    aliases[alias.asname or bound] = bound
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*up, source] if source else up)
            private_path(source, node.lineno)
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                edge(node, sub if sub in modules else source, guarded)
                private(source, alias.name, node.lineno)
                if sub in modules:
                    aliases[alias.asname or alias.name] = sub
    for node in ast.walk(tree):
        chain = _dotted(node.value) if isinstance(node, ast.Attribute) else None
        if isinstance(node, ast.Attribute) and chain and chain[0] in aliases:
            private(".".join([aliases[chain[0]], *chain[1:]]), node.attr, node.lineno)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm without recursion; components of one module are left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        work = [(root, iter(sorted(graph[root])))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = stack[stack.index(node) :]
                    del stack[stack.index(node) :]
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def cycles(project: Project) -> list[str]:
    """One message per import cycle: its modules, and an example import for each pair."""
    graph: dict[str, set[str]] = {module: set() for module in project.modules}
    example: dict[tuple[str, str], str] = {}
    for edge in project.edges:
        if not edge.exempt:
            graph[edge.source].add(edge.target)
            example.setdefault((edge.source, edge.target), edge.where)
    messages = []
    for component in strongly_connected(graph):
        pairs = [
            f"    {example[a, b]}  {a} -> {b}"
            for a in component
            for b in sorted(graph[a])
            if b in component
        ]
        messages.append(
            f"cycle of {len(component)} modules: {', '.join(component)}\n" + "\n".join(pairs)
        )
    return messages


@cache
def _project() -> Project:
    return scan(ROOT, PACKAGES)


def test_no_import_cycle() -> None:
    found = cycles(_project())
    assert not found, (
        "import cycles (break them, or mark a deliberate lazy import with a "
        "'# start-up: <reason>' comment):\n" + "\n".join(found)
    )


def test_no_private_name_crosses_modules() -> None:
    found = sorted(_project().private, key=lambda at: (at.split(":")[0], int(at.split(":")[1])))
    assert not found, "private names used outside their module:\n  " + "\n  ".join(found)


def test_no_file_over_700_lines() -> None:
    long = [
        f"{path.relative_to(ROOT).as_posix()}: {count} lines"
        for path in _project().modules.values()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert not long, f"files over {MAX_LINES} lines:\n  " + "\n  ".join(long)


@pytest.mark.parametrize(
    ("a", "b", "cycle", "private"),
    [
        ("def f():\n    from pkg import b\n", "def g():\n    from . import a\n", True, []),
        (
            "def f():\n    # start-up: b is heavy\n    from pkg import b\n",
            "def g():\n    from . import a\n",
            False,
            [],
        ),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
            "import pkg.a as a\n_x = a._hidden\n",
            False,
            ["pkg/b.py:2: pkg.a._hidden"],
        ),
        ("from .b import _y, __version__\n", "import pkg.a\n", True, ["pkg/a.py:1: pkg.b._y"]),
        ("from . import b  # start-up: b is heavy\n", "from pkg import a\n", False, []),
    ],
)
def test_checker_on_a_synthetic_tree(
    tmp_path: Path, a: str, b: str, cycle: bool, private: list[str]
) -> None:
    (tmp_path / "pkg").mkdir()
    for name, text in {"__init__": "", "a": a, "b": b}.items():
        (tmp_path / "pkg" / f"{name}.py").write_text(text)
    project = scan(tmp_path, {"pkg": "pkg"})
    found = cycles(project)
    assert bool(found) is cycle, found
    if cycle:
        assert found[0].startswith("cycle of 2 modules: pkg.a, pkg.b")
        assert "pkg/a.py:" in found[0] and "pkg/b.py:" in found[0]
    assert project.private == private
