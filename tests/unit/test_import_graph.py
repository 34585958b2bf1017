"""Dependencies point one way (docs/architecture.md, "Layers and the import graph").

Every module of stemedb is parsed (ast, so lazy imports inside functions count
too) and the test fails on:

* a cycle between the top-level units of stemedb (its packages api, service,
  store, lenses, records, security, http, ops, cli, client, mcp, ... and its
  top-level modules config, admission, metrics, server, ...);
* an import of api/ from service/, store/, lenses/, records/, security/ or http/;
* an import of store/ or service/ from lenses/ (lenses are pure functions);
* an import of anything request- or process-shaped from store/ (api, service,
  security, http, admission, metrics, server, cli, ops): the store is injected
  what it needs (e.g. `Store(while_waiting=admission.blocking)`);
* from api/: any import of ops/, and of store/ anything but the `Store` type
  that the wiring hands to services (HTTP resources call services);
* waitress imported anywhere but http/;
* SQL outside store/: a call of `execute`, `executemany` or `fetchall`, or a
  string that is an SQL statement. No exception: the offline tools (ops/) run
  theirs through store/files.py.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "stemedb"

NO_API_FROM = ("service", "store", "lenses", "records", "security", "http")
NO_STORE_OR_SERVICE_FROM = ("lenses",)
STORE_MUST_NOT_IMPORT = (
    "api",
    "service",
    "security",
    "http",
    "admission",
    "metrics",
    "server",
    "cli",
    "ops",
)
SQL_ALLOWED_IN = ("store",)
SQL_CALLS = {"execute", "executemany", "fetchall"}
SQL_STRING = re.compile(
    r"^\s*(SELECT\s.+\sFROM\s|INSERT\s+(OR\s+\w+\s+)?INTO\s|UPDATE\s+\w+\s+SET\s|"
    r"DELETE\s+FROM\s|CREATE\s+(TABLE|INDEX|TRIGGER|VIEW)\s|PRAGMA\s+\w+\s*(=|;|$)|"
    r"BEGIN(\s+(IMMEDIATE|EXCLUSIVE|DEFERRED))?\s*;?\s*$|(COMMIT|ROLLBACK)\s*;?\s*$)",
    re.DOTALL,  # upper-case keywords, as every statement here is written: prose is not SQL
)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. stemedb.api.endpoints
    target: str  # the imported module, e.g. stemedb.store
    names: tuple[str, ...]  # `from target import names` (empty for `import target`)
    line: int


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def unit(self) -> str:
        return unit_of(self.name)


def unit_of(module: str) -> str:
    """stemedb.api.routing -> api; stemedb.config -> config; stemedb -> stemedb."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def load(root: Path = PACKAGE) -> list[Module]:
    modules = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append(Module(".".join(parts), path, ast.parse(path.read_text(), str(path))))
    return modules


def imports_of(module: Module, root: Path = PACKAGE) -> list[Import]:
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            found += [Import(module.name, a.name, (), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = tuple(a.name for a in node.names)
            if node.module == root.name:  # `from stemedb import admission` names a module
                for name in names:
                    is_module = (root / f"{name}.py").exists() or (root / name).is_dir()
                    target = f"{root.name}.{name}" if is_module else root.name
                    found.append(Import(module.name, target, (name,), node.lineno))
            else:
                found.append(Import(module.name, node.module, names, node.lineno))
    return [i for i in found if i.target == root.name or i.target.startswith(root.name + ".")]


def unit_graph(modules: list[Module], root: Path = PACKAGE) -> dict[str, dict[str, Import]]:
    """unit -> {imported unit: one import that makes the edge}."""
    graph: dict[str, dict[str, Import]] = defaultdict(dict)
    for module in modules:
        for imp in imports_of(module, root):
            target = unit_of(imp.target)
            if target not in (module.unit, root.name):
                graph[module.unit].setdefault(target, imp)
    return graph


def cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one unit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(_path_through(sorted(component), graph))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _path_through(component: list[str], graph: dict[str, dict[str, Import]]) -> list[str]:
    """A closed path start -> ... -> start inside the component (breadth first)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in graph.get(node, {}):
            if nxt == start:
                return paths[node] + [start]
            if nxt in members and nxt not in paths:
                paths[nxt] = paths[node] + [nxt]
                queue.append(nxt)
    return component


def describe(path: list[str], graph: dict[str, dict[str, Import]]) -> str:
    steps = []
    for a, b in itertools.pairwise(path):
        imp = graph[a][b]
        steps.append(f"{a} -> {b} ({imp.module}:{imp.line} imports {imp.target})")
    return "; ".join(steps)


def sql_uses(module: Module) -> list[str]:
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in SQL_CALLS:
                found.append(f"{module.name}:{node.lineno} calls {name}()")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SQL_STRING.match(node.value)
        ):
            found.append(f"{module.name}:{node.lineno} holds SQL {node.value[:40]!r}")
    return found


# ---- the rules, on the real tree ----------------------------------------------------

MODULES = load()
GRAPH = unit_graph(MODULES)


def test_the_tree_was_read() -> None:
    units = {m.unit for m in MODULES}
    assert {"api", "service", "store", "lenses", "records", "security", "http"} <= units
    assert len(MODULES) > 50


def test_no_cycle_between_top_level_units() -> None:
    found = cycles(GRAPH)
    assert not found, "import cycles: " + " | ".join(describe(c, GRAPH) for c in found)


@pytest.mark.parametrize(
    ("importers", "forbidden"),
    [
        (NO_API_FROM, ("api",)),
        (NO_STORE_OR_SERVICE_FROM, ("store", "service")),
        (("store",), STORE_MUST_NOT_IMPORT),
    ],
    ids=["api-only-from-above", "lenses-are-pure", "store-is-the-bottom"],
)
def test_layers_point_one_way(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    wrong = [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for module in MODULES
        if module.unit in importers
        for imp in imports_of(module)
        if unit_of(imp.target) in forbidden
    ]
    assert not wrong, "\n".join(wrong)


def test_http_resources_call_services_not_ops_or_the_store() -> None:
    wrong = []
    for module in MODULES:
        if module.unit != "api":
            continue
        for imp in imports_of(module):
            unit = unit_of(imp.target)
            if unit == "ops" or (
                unit == "store" and (imp.target != "stemedb.store" or set(imp.names) - {"Store"})
            ):
                wrong.append(f"{imp.module}:{imp.line} imports {imp.target} {imp.names}")
    assert not wrong, "\n".join(wrong)


def test_no_sql_outside_the_store() -> None:
    wrong = [use for m in MODULES if m.unit not in SQL_ALLOWED_IN for use in sql_uses(m)]
    assert not wrong, "\n".join(wrong)


def test_waitress_is_imported_only_by_the_http_glue() -> None:
    """All waitress internals live in stemedb/http/ (inventory in its docstring)."""
    wrong = [
        f"{module.name}:{node.lineno}"
        for module in MODULES
        if module.unit != "http"
        for node in ast.walk(module.tree)
        if (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "waitress")
        or (
            isinstance(node, ast.Import)
            and any(a.name.split(".")[0] == "waitress" for a in node.names)
        )
    ]
    assert not wrong, "waitress imported outside stemedb/http: " + ", ".join(wrong)


# ---- the checker itself catches what it should ---------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "stemedb"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checker_finds_a_cycle_through_a_lazy_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "api/__init__.py": "from stemedb.security import guard\n",
            "security/__init__.py": "def guard():\n    from stemedb.api import routing\n",
            "api/routing.py": "",
            "config.py": "",
            "store/__init__.py": "from stemedb import config\n",
        },
    )
    graph = unit_graph(load(root), root)
    assert cycles(graph) == [["api", "security", "api"]]
    assert "store" in graph and "config" in graph["store"]  # `from stemedb import config`


def test_the_checker_finds_sql_calls_and_statements(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "service/a.py": "def f(conn):\n    return conn.execute('SELECT 1')\n",
            "service/b.py": "Q = 'INSERT OR REPLACE INTO t VALUES (?)'\n",
            "service/c.py": "HELP = 'select the lens from the list'\n",
        },
    )
    uses = [use for module in load(root) for use in sql_uses(module)]
    assert uses == [
        "stemedb.service.a:2 calls execute()",
        "stemedb.service.b:1 holds SQL 'INSERT OR REPLACE INTO t VALUES (?)'",
    ]
