"""The package's import structure: every module imports on its own, the import graph has no cycles, and the
layers only depend downwards.

Why both halves: an import cycle only breaks when the first module imported is one particular member of the
cycle, so the suite (which imports in whatever order its tests happen to) can pass while `swarmq worker` or a
user's `import swarmq.report.replay` crashes. A fresh interpreter per module is the honest runtime check; the
AST check sees lazy (function-level) and TYPE_CHECKING imports too, which never run at import time but are
still dependencies that the layering must allow.
"""

from __future__ import annotations

import ast
import itertools
import os
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "swarmq"
MIGRATIONS = "swarmq.store.migrations"
# Modules that must not be imported in isolation: `__main__` runs the CLI on import.
NOT_IMPORTABLE = {"swarmq.__main__"}

# Layers, top to bottom, as package prefixes. A module may import anything in a lower layer and anything in
# its own top-level subpackage; never a higher layer, and across subpackages of one layer only where
# SAME_LAYER_OK says. The middle packages are layers of their own, so their order is the whole rule.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("swarmq.__main__",),
    ("swarmq.cli",),
    ("swarmq.api", "swarmq.demo"),
    ("swarmq.view",),
    ("swarmq.worker", "swarmq.report"),
    ("swarmq.queue", "swarmq.streams"),
    ("swarmq.experiment",),
    ("swarmq.benchmarks",),
    ("swarmq.swarm", "swarmq.model"),
    ("swarmq.store",),
    ("swarmq.errors", "swarmq.settings", "swarmq.keys", "swarmq.files", "swarmq.states"),
)
# Layers whose subpackages may import each other freely (the cycle checks still apply).
SAME_LAYER_OK = {LAYERS[2], LAYERS[-1]}
# (importer scope, imported prefix) → the only modules of that scope that may import it, although the layers
# allow it: Redis access in reports stays in one place.
ONLY_FROM: dict[tuple[str, str], tuple[str, ...]] = {
    ("swarmq.report", "swarmq.swarm.redis"): ("swarmq.report.swarm_state",),
}


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def subpackage(module: str) -> str:
    """`swarmq.queue.jobs` → `swarmq.queue`; `swarmq.errors` → `swarmq.errors`."""
    return ".".join(module.split(".")[:2])


def layer_of(module: str) -> int | None:
    for index, prefixes in enumerate(LAYERS):
        if any(under(module, p) for p in prefixes):
            return index
    return None


def walk_modules() -> list[str]:
    """Every importable module of the package, found with pkgutil on the source tree (nothing imported)."""

    def walk(path: Path, prefix: str) -> Iterator[str]:
        for info in pkgutil.iter_modules([str(path)], prefix):
            yield info.name
            if info.ispkg:
                yield from walk(path / info.name.rsplit(".", 1)[1], info.name + ".")

    found = (
        name
        for name in walk(PACKAGE, "swarmq.")
        if name not in NOT_IMPORTABLE and not under(name, MIGRATIONS)
    )
    return ["swarmq", *sorted(found)]


# ---------------------------------------------------------------------------------------------------------
# (a) every module imports in a fresh interpreter


def import_in_fresh_interpreter(module: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMQ_")}
    return subprocess.run(
        [sys.executable, "-c", "import importlib, sys; importlib.import_module(sys.argv[1])", module],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


MODULES = walk_modules()


def test_module_walk_finds_the_package() -> None:
    """Guards the walk itself: an empty or shallow list would make the fresh-import test vacuous."""
    assert len(MODULES) >= 40
    for expected in ("swarmq.cli.app", "swarmq.queue.retry", "swarmq.store.db", "swarmq.report.replay"):
        assert expected in MODULES
    assert not any(under(m, MIGRATIONS) for m in MODULES)


@pytest.fixture(scope="module")
def fresh_imports(
    request: pytest.FixtureRequest,
) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """Start the selected modules' imports two at a time (the machine has two cores) as soon as the first
    one is needed, so the whole check costs about half the sum of the imports."""
    wanted: list[str] = [
        str(item.callspec.params["module"])
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_imports_in_a_fresh_interpreter"
        and item.module is request.module
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {m: pool.submit(import_in_fresh_interpreter, m) for m in wanted}
        yield futures
        for f in futures.values():
            f.cancel()


@pytest.mark.parametrize("module", MODULES)
def test_imports_in_a_fresh_interpreter(
    module: str, fresh_imports: dict[str, Future[subprocess.CompletedProcess[str]]]
) -> None:
    result = fresh_imports[module].result()
    assert result.returncode == 0, (
        f"`import {module}` in a fresh interpreter failed:\n{result.stderr[-3000:]}"
    )


# ---------------------------------------------------------------------------------------------------------
# (b) the import graph, from the source (no imports executed)


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    file: Path
    line: int

    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def source_modules() -> dict[str, Path]:
    """Module name → file for every .py under swarmq/, the migration scripts included (they run in the
    store layer under alembic, so what they import counts)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[tuple[str, ...], int]]:
    """For every `import` / `from ... import` anywhere in ``tree`` (function bodies and TYPE_CHECKING blocks
    included): the names it may load, most specific first, and its line. ``from pkg import x`` loads the
    module ``pkg.x`` when there is one, else it takes the attribute ``x`` of ``pkg``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield (alias.name,), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                yield (f"{base}.{alias.name}", base), node.lineno


def defined_names(tree: ast.Module) -> set[str] | None:
    """The names a module binds at top level (through if/try/with blocks, not inside functions or classes);
    None when it cannot be known statically (a star import or a module `__getattr__`)."""
    names: set[str] = set()

    def bind(target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            for t in target.elts:
                bind(t)
        elif isinstance(target, ast.Starred):
            bind(target.value)

    def visit(body: list[ast.stmt]) -> bool:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if stmt.name == "__getattr__":
                    return False
                names.add(stmt.name)
            elif isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    bind(target)
            elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
                bind(stmt.target)
            elif isinstance(stmt, ast.Import):
                names.update(a.asname or a.name.split(".")[0] for a in stmt.names)
            elif isinstance(stmt, ast.ImportFrom):
                if any(a.name == "*" for a in stmt.names):
                    return False
                names.update(a.asname or a.name for a in stmt.names)
            else:
                blocks = [getattr(stmt, f, []) for f in ("body", "orelse", "finalbody")]
                blocks += [h.body for h in getattr(stmt, "handlers", [])]
                if not all(visit(b) for b in blocks if isinstance(b, list)):
                    return False
        return True

    return names if visit(tree.body) else None


def build_graph() -> tuple[list[Edge], list[str]]:
    """Edges between swarmq modules, and the swarmq imports that cannot work: a module that does not exist,
    or a name its module does not define. A lazy import fails only when its function first runs, long after
    startup, so the fresh-interpreter imports above never see it."""
    modules = source_modules()
    trees = {m: ast.parse(p.read_text(), filename=str(p)) for m, p in modules.items()}
    defined = {m: defined_names(t) for m, t in trees.items()}
    edges: set[Edge] = set()
    missing: set[str] = set()
    for module, path in modules.items():
        for candidates, line in imported_names(trees[module], module, path.name == "__init__.py"):
            if not under(candidates[-1], "swarmq"):
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            target = next((name for name in candidates if name in modules), None)
            if target is None:
                missing.add(f"{where} imports {candidates[0]}, which is not a swarmq module")
                continue
            if target != candidates[0]:  # `from target import name`, name not a submodule
                names = defined[target]
                name = candidates[0].rpartition(".")[2]
                if names is not None and name not in names:
                    missing.add(f"{where} imports {name} from {target}, which does not define it")
            if target != module:
                edges.add(Edge(module, target, path, line))
    return sorted(edges, key=lambda e: (e.importer, e.imported, e.line)), sorted(missing)


EDGES, MISSING = build_graph()


def find_cycles(edges: list[Edge]) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected component of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.importer, set()).add(e.imported)
        graph.setdefault(e.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            connect(v)

    cycles = []
    for component in components:
        start = min(component)
        # Shortest way back to start inside the component: a breadth-first search gives a readable cycle.
        parents: dict[str, str] = {}
        frontier = [start]
        found = None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & component):
                    if w == start:
                        found = v
                        break
                    if w not in parents:
                        parents[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            frontier = nxt
        assert found is not None
        path = [found]
        while path[-1] != start:
            path.append(parents[path[-1]])
        cycles.append([*reversed(path), start])
    return cycles


def test_graph_is_built_from_the_source() -> None:
    """Guards the AST walk: known edges (a top-level one, a lazy one, a TYPE_CHECKING one) must be there."""
    pairs = {(e.importer, e.imported) for e in EDGES}
    assert ("swarmq.queue.retry", "swarmq.errors") in pairs
    assert ("swarmq.store.services", "swarmq.store.db") in pairs  # `from swarmq.store import db`
    assert ("swarmq.store.db", "swarmq.store.embedded") in pairs  # inside a function
    assert ("swarmq.api.lifecycle", "swarmq.experiment.config") in pairs  # only under TYPE_CHECKING


def test_find_cycles_reports_a_closed_path() -> None:
    """The checker itself must see a cycle through a lazy edge, or a clean result means nothing."""
    f = Path(__file__)
    edges = [Edge("a", "b", f, 1), Edge("b", "c", f, 1), Edge("c", "a", f, 1), Edge("c", "d", f, 1)]
    assert find_cycles(edges) == [["a", "b", "c", "a"]]
    assert find_cycles(edges[1:]) == []


def test_defined_names_are_the_top_level_bindings() -> None:
    """Guards the name check: conditional and tuple bindings count, class bodies do not, and a module whose
    names cannot be known statically is not judged at all."""
    source = "try:\n import a.b as c\nexcept E:\n d = 1\nif X:\n (e, [f, *g]) = h\nclass K:\n inner = 1\n"
    assert defined_names(ast.parse(source)) == {"c", "d", "e", "f", "g", "K"}
    assert defined_names(ast.parse("from x import *")) is None
    assert defined_names(ast.parse("def __getattr__(name): ...")) is None


def test_every_swarmq_import_resolves() -> None:
    assert MISSING == [], "imports that fail when they run:\n" + "\n".join(MISSING)


def test_no_import_cycles() -> None:
    cycles = find_cycles(EDGES)
    where = {(e.importer, e.imported): e.where() for e in EDGES}
    report = [
        " → ".join(c) + "  (" + ", ".join(where[edge] for edge in itertools.pairwise(c)) + ")" for c in cycles
    ]
    assert report == [], "import cycles:\n" + "\n".join(report)


def test_no_package_cycles() -> None:
    """The same check with each top-level subpackage as one node: a package that imports another which
    imports it back has no place in any order of layers, even when no two modules form a cycle."""
    first: dict[tuple[str, str], Edge] = {}
    for e in EDGES:
        pair = (subpackage(e.importer), subpackage(e.imported))
        if pair[0] != pair[1]:
            first.setdefault(pair, Edge(*pair, e.file, e.line))
    cycles = find_cycles(list(first.values()))
    report = [
        " → ".join(c) + "  (" + ", ".join(first[p].where() for p in itertools.pairwise(c)) + ")"
        for c in cycles
    ]
    assert report == [], "package cycles:\n" + "\n".join(report)


def layer_violation(edge: Edge) -> str | None:
    """Why ``edge`` breaks the layering, or None when it is allowed."""
    src, dst = edge.importer, edge.imported
    if subpackage(src) == subpackage(dst):
        return None
    for (scope, target), importers in ONLY_FROM.items():
        if under(src, scope) and under(dst, target) and not any(under(src, i) for i in importers):
            return f"within {scope} only {', '.join(importers)} may import {target}"
    src_layer, dst_layer = layer_of(src), layer_of(dst)
    if src_layer is None or dst_layer is None:
        unknown = src if src_layer is None else dst
        return f"{unknown} is in no layer (add it to LAYERS)"
    if dst_layer > src_layer:
        return None
    if dst_layer < src_layer:
        return f"{dst} is in a higher layer than {src}"
    if LAYERS[src_layer] in SAME_LAYER_OK:
        return None
    return f"{src} and {dst} are in the same layer"


def test_layer_rule_catches_upward_and_sideways_imports() -> None:
    """The rule as data must reject what the brief forbids, or a passing layer test proves nothing."""
    f = ROOT / "swarmq" / "x.py"
    bad = [
        Edge("swarmq.store.db", "swarmq.queue.jobs", f, 1),
        Edge("swarmq.errors", "swarmq.store.db", f, 1),
        Edge("swarmq.report.results", "swarmq.swarm.redis", f, 1),
        Edge("swarmq.report.replay", "swarmq.worker.main", f, 1),
        Edge("swarmq.swarm.state", "swarmq.experiment.config", f, 1),
        Edge("swarmq.queue.jobs", "swarmq.streams.sync", f, 1),
        Edge("swarmq.benchmarks.base", "swarmq.experiment.plan", f, 1),
        Edge("swarmq.demo", "swarmq.cli.app", f, 1),
        Edge("swarmq.worker.main", "swarmq.api", f, 1),
        Edge("swarmq.model.base", "swarmq.swarm.state", f, 1),
    ]
    good = [
        Edge("swarmq.cli.app", "swarmq.report.replay", f, 1),
        Edge("swarmq.report.swarm_state", "swarmq.swarm.redis", f, 1),
        Edge("swarmq.worker.main", "swarmq.swarm.redis", f, 1),
        Edge("swarmq.queue.producer", "swarmq.swarm.state", f, 1),
        Edge("swarmq.streams.sync", "swarmq.experiment.config", f, 1),
        Edge("swarmq.worker.runner", "swarmq.streams.sync", f, 1),
        Edge("swarmq.benchmarks.base", "swarmq.swarm.state", f, 1),
        Edge("swarmq.settings", "swarmq.errors", f, 1),
        Edge("swarmq.api", "swarmq.demo", f, 1),
    ]
    assert [e.imported for e in bad if layer_violation(e) is None] == []
    assert [(e.imported, layer_violation(e)) for e in good if layer_violation(e) is not None] == []


def test_imports_respect_the_layers() -> None:
    violations = [
        f"{e.where()}: {e.importer} imports {e.imported}: {why}" for e in EDGES if (why := layer_violation(e))
    ]
    assert violations == [], "layer violations:\n" + "\n".join(violations)


# ---------------------------------------------------------------------------------------------------------
# (c) what starting a command costs: the heavy libraries only where a command needs them

HELP = "import sys\nsys.argv = ['swarmq', '--help']\ntry:\n    from swarmq.cli import main\n    main()\nexcept SystemExit:\n    pass"
HEAVY = (
    "numpy",
    "scipy",
    "celery",
    "datasets",
    "matplotlib",
    "llama_cpp",
    "pandas",
    "pydantic_settings",
    "alembic",
)


@pytest.mark.parametrize(
    ("code", "allowed"),
    [
        (HELP, ()),
        (
            "import swarmq.report.progress",
            ("pydantic_settings",),
        ),  # what `swarmq status` loads besides the CLI
        ("import swarmq.store.services", ("pydantic_settings",)),
    ],
)
def test_a_command_start_imports_no_heavy_library(code: str, allowed: tuple[str, ...]) -> None:
    result = run_probe(code)
    loaded = heavy_loaded(result)
    assert loaded <= set(allowed), f"{code.splitlines()[0]!r} imported {sorted(loaded - set(allowed))}"


def run_probe(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter, then print which of the heavy libraries it left loaded."""
    probe = f"{code}\nimport sys\nprint('loaded:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def heavy_loaded(result: subprocess.CompletedProcess[str]) -> set[str]:
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("loaded:")]
    return {m for m in line.removeprefix("loaded:").split(",") if m}


@pytest.mark.services
def test_enqueue_of_bundled_humaneval_imports_only_what_it_uses(
    tmp_path: Path, services_env: dict[str, str]
) -> None:
    """A whole `swarmq enqueue` of the bundled HumanEval (file, dataset, model-file and schema checks, rows,
    publish) needs Celery and the settings, and no ``datasets`` (the rows are parsed directly), no Alembic (the
    schema check reads the version table) and nothing numeric."""
    from tests.helpers import write_config

    config = write_config(tmp_path, name="light", limit=3)
    code = (
        f"import sys\nsys.argv = ['swarmq', 'enqueue', {str(config)!r}]\nfrom swarmq.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code"
    )
    result = run_probe(code, env=services_env)
    assert "enqueued experiment light: 6 jobs" in result.stdout
    assert heavy_loaded(result) <= {"celery", "pydantic_settings"}
