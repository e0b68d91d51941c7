"""Architecture rules, checked on the source: no import cycles, pure domain stages, settings read in one place.

The import graph holds every ``import``/``from ... import`` in ``service/amberwatch`` (including the ones inside
functions). Importing ``a.b.c`` also imports the packages ``a.b`` (their ``__init__``) unless the importer lives in
them, so an edge goes to those too: that is how ``amberwatch.vhr.detect -> amberwatch.detect.vectorize`` closed a
cycle with ``amberwatch.detect.__init__ -> amberwatch.vhr``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[1] / "service"
ROOT = "amberwatch"

# Modules whose imports are not checked yet because they are being moved right now. Each entry says what is
# left; the lead empties this list as the moves land (a module listed here that no longer breaks a rule, or no
# longer exists, fails test_pending_is_still_needed so the list cannot rot).
PENDING: dict[str, str] = {}

# Pure domain logic: no database, no web framework, no use case or interface layer.
DOMAIN = (
    "amberwatch.ingest",
    "amberwatch.detect",
    "amberwatch.vhr",
    "amberwatch.sar",
    "amberwatch.track.rules",
    "amberwatch.track.geo",
    "amberwatch.track.clustering",
    "amberwatch.area",
    "amberwatch.types",
    "amberwatch.crowd",
    "amberwatch.validation",
    "amberwatch.accuracy",
)
FORBIDDEN_IN_DOMAIN = (
    "sqlalchemy", "geoalchemy2", "psycopg", "psycopg2", "procrastinate", "fastapi", "starlette", "typer",
    "amberwatch.store", "amberwatch.web", "amberwatch.usecases", "amberwatch.cli", "amberwatch.jobs",
    "amberwatch.publish",
)
# Only the entry points read the settings (amberwatch.settings.get_settings); everything else gets them passed in.
SETTINGS_READERS = ("amberwatch.cli", "amberwatch.web.app", "amberwatch.demo")


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: set[str] = field(default_factory=set)  # every dotted name imported (amberwatch and third party)
    reads_settings: list[int] = field(default_factory=list)  # lines that import/call settings.get_settings


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def load_modules() -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for path in sorted((SERVICE / ROOT).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(SERVICE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = Module(".".join(parts), path, is_package)
    for mod in modules.values():
        _scan(mod, modules)
    return modules


def _scan(mod: Module, modules: dict[str, Module]) -> None:
    tree = ast.parse(mod.path.read_text(), filename=str(mod.path))
    base = mod.name if mod.is_package else mod.name.rpartition(".")[0]
    settings_aliases: set[str] = set()  # local names of amberwatch.settings (the module)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                mod.imports.add(alias.name)
                if alias.name == "amberwatch.settings":
                    settings_aliases.add(alias.asname or "amberwatch.settings")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = base
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                source = f"{package}.{node.module}" if node.module else package
            else:
                source = node.module or ""
            mod.imports.add(source)
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if full in modules:  # ``from pkg import submodule``
                    mod.imports.add(full)
                if source == "amberwatch.settings" and alias.name == "get_settings":
                    mod.reads_settings.append(node.lineno)
                if full == "amberwatch.settings":
                    settings_aliases.add(alias.asname or alias.name)
    for node in ast.walk(tree):  # amberwatch.settings.get_settings() through a module alias
        if isinstance(node, ast.Attribute) and node.attr == "get_settings" and ast.unparse(node.value) in \
                settings_aliases:
            mod.reads_settings.append(node.lineno)


def internal_edges(modules: dict[str, Module], skip: Iterable[str] = ()) -> dict[str, set[str]]:
    """Module -> amberwatch modules it imports, with the packages that importing them runs (see the docstring)."""
    skip = set(skip)
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for mod in modules.values():
        if mod.name in skip:
            continue
        for target in mod.imports:
            if not _within(target, (ROOT,)):
                continue
            while target not in modules:
                target = target.rpartition(".")[0]
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                node = ".".join(parts[:i])
                if node in modules and not _within(mod.name, (node,)):
                    edges[mod.name].add(node)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def top_package(name: str) -> str:
    """``amberwatch.detect.vectorize`` -> ``amberwatch.detect``; ``amberwatch.demo`` -> itself."""
    return ".".join(name.split(".")[:2])


def explain(edges: dict[str, set[str]], component: list[str], key=lambda n: n) -> str:
    members = set(component)
    lines = [f"  {src} -> {dst}" for src in sorted(edges) for dst in sorted(edges[src])
             if key(src) in members and key(dst) in members and key(src) != key(dst)]
    return " <-> ".join(component) + "\n" + "\n".join(lines)


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return load_modules()


def test_the_graph_sees_function_level_and_package_imports(modules: dict[str, Module]) -> None:
    """The scanner itself: a function-level import and the package ``__init__`` an import runs are edges."""
    edges = internal_edges(modules)
    assert "amberwatch.detect.registry" in edges["amberwatch.usecases.runs"]  # imported inside create_run
    assert "amberwatch.detect" in edges["amberwatch.vhr.model"]  # runs amberwatch/detect/__init__.py
    assert "amberwatch.detect" not in edges["amberwatch.detect.vectorize"]  # its own package: already imported
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_import_cycles(modules: dict[str, Module]) -> None:
    edges = internal_edges(modules, skip=PENDING)
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(explain(edges, c) for c in found)


def test_no_package_import_cycles(modules: dict[str, Module]) -> None:
    """Between the top-level parts (amberwatch.detect, .vhr, .track, .usecases, .web, .cli, .demo, ...)."""
    edges = internal_edges(modules, skip=PENDING)
    found = cycles(_package_edges(edges))
    assert not found, "package cycles:\n" + "\n".join(explain(edges, c, key=top_package) for c in found)


def test_domain_stages_use_no_database_web_or_use_cases(modules: dict[str, Module]) -> None:
    bad = sorted(f"{mod.name} imports {imp}" for mod in modules.values()
                 if _within(mod.name, DOMAIN) and mod.name not in PENDING
                 for imp in mod.imports if _within(imp, FORBIDDEN_IN_DOMAIN))
    assert not bad, "domain modules must stay pure:\n" + "\n".join(bad)


def test_domain_stages_do_not_reach_the_outer_layers(modules: dict[str, Module]) -> None:
    """Not even through another module: nothing a domain module imports (transitively) is store/web/use cases."""
    edges = internal_edges(modules, skip=PENDING)
    bad = []
    for name in modules:
        if not _within(name, DOMAIN) or name in PENDING:
            continue
        seen, todo = {name}, [name]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        bad += [f"{name} -> ... -> {s}" for s in sorted(seen) if _within(s, FORBIDDEN_IN_DOMAIN)]
    assert not bad, "\n".join(bad)


def test_only_entry_points_read_settings(modules: dict[str, Module]) -> None:
    bad = sorted(f"{mod.name} (line {line})" for mod in modules.values()
                 if mod.reads_settings and not _within(mod.name, SETTINGS_READERS) and mod.name not in PENDING
                 and mod.name != "amberwatch.settings" for line in mod.reads_settings)
    assert not bad, "get_settings() outside the CLI and the web app factory (pass Settings in):\n" + "\n".join(bad)


def test_pending_is_still_needed(modules: dict[str, Module]) -> None:
    """Every PENDING module still exists and still breaks a rule; otherwise drop it from the list."""
    full = internal_edges(modules)
    package_cycles = {p for c in cycles(_package_edges(full)) for p in c}
    module_cycles = {m for c in cycles(full) for m in c}
    for name, why in PENDING.items():
        assert name in modules, f"PENDING lists {name}, which no longer exists: remove it ({why})"
        mod = modules[name]
        breaks = (
            name in module_cycles
            or top_package(name) in package_cycles
            or (mod.reads_settings and not _within(name, SETTINGS_READERS))
            or (_within(name, DOMAIN) and any(_within(i, FORBIDDEN_IN_DOMAIN) for i in mod.imports))
        )
        assert breaks, f"{name} breaks no rule any more: remove it from PENDING ({why})"


# -- SQL lives in amberwatch.store ------------------------------------------------------------------------
SQL_OWNER = "amberwatch.store"  # the ORM (store/models.py) and one query module per aggregate (store/queries/)
SQL_CONSTRUCTS = ("text", "select")  # sqlalchemy names that build SQL; exec_driver_sql runs a raw string
# Modules outside amberwatch.store still allowed to build SQL, each with why. The geoportal is being finished by
# another engineer (its SQL goes to store/queries/portal.py and store/queries/tiles.py): drop these entries as
# that lands; nothing else is to be added here.
SQL_ALLOWED: dict[str, str] = {}


def sql_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) for each SQL construct from sqlalchemy in ``source``: ``text``/``select`` imported from
    sqlalchemy (or any of its modules), called as ``<sqlalchemy module alias>.text(...)``, and ``exec_driver_sql``."""
    found: list[tuple[int, str]] = []
    module_aliases: set[str] = set()  # local names bound to sqlalchemy or one of its modules
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _within(alias.name, ("sqlalchemy",)):
                    module_aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom) and not node.level and _within(node.module or "", ("sqlalchemy",)):
            for alias in node.names:
                if alias.name in SQL_CONSTRUCTS:
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
                elif alias.name[:1].islower():  # a module (sql, future, ...), not a class such as Connection
                    module_aliases.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            if node.func.attr in SQL_CONSTRUCTS and owner in module_aliases:
                found.append((node.lineno, f"{owner}.{node.func.attr}(...)"))
            elif node.func.attr == "exec_driver_sql":
                found.append((node.lineno, f"{owner}.exec_driver_sql(...)"))
    return sorted(found)


def test_sql_only_in_the_store(modules: dict[str, Module]) -> None:
    """No module outside amberwatch.store (and the commented SQL_ALLOWED) builds SQL with sqlalchemy."""
    assert sql_uses("import sqlalchemy as sa\nfrom sqlalchemy import Connection, sql\nfrom sqlalchemy.sql import "
                    "select\nsa.text('x'); sql.text('y'); c.exec_driver_sql('z'); np.select([], [])") == [
        (3, "from sqlalchemy.sql import select"), (4, "c.exec_driver_sql(...)"), (4, "sa.text(...)"),
        (4, "sql.text(...)")]
    bad = sorted(f"{mod.name} (line {line}): {what}" for mod in modules.values()
                 if not _within(mod.name, (SQL_OWNER, *SQL_ALLOWED))
                 for line, what in sql_uses(mod.path.read_text()))
    assert not bad, "SQL outside amberwatch.store (move it to a store/queries module):\n" + "\n".join(bad)


def _package_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for src, targets in edges.items():
        out.setdefault(top_package(src), set()).update(
            top_package(t) for t in targets if top_package(t) != top_package(src))
    return out
