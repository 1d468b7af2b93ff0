"""The package's shape: no import cycles (imports inside functions count), no engine imports
another, and data flows one way (packing -> store -> node -> engines; never back)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import envship

SRC = Path(envship.__file__).resolve().parent
TOP = "envship"


def _module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _modules() -> dict[str, Path]:
    return {_module_name(p)[0]: p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(
    tree: ast.AST, type_checking: bool = False
) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at module level or inside functions, but not under
    ``if TYPE_CHECKING:`` (unless *type_checking*)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if not type_checking and isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


@functools.cache  # parsing the whole package takes ~0.5 s; the tests only read the graph
def import_graph(type_checking: bool = False) -> dict[str, set[str]]:
    """envship module -> the envship modules it imports (a package means its __init__); with
    *type_checking*, the imports under ``if TYPE_CHECKING:`` too."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_pkg = _module_name(path)[1]
        package = name if is_pkg else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        for node in _runtime_imports(tree, type_checking):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                if not base or base[0] != TOP:
                    continue  # the single-file node runtime's fallback imports
                mod = ".".join(base + ([node.module] if node.module else []))
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod
                           for a in node.names]
            else:
                mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod
                           for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target.startswith(TOP) and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_graph_sees_imports_inside_functions() -> None:
    graph = import_graph()
    # env.Env.run imports envship.remote inside the method: that edge must be in the graph.
    assert "envship.remote" in graph["envship.env"]
    assert "envship.packing.manifest" in graph["envship.store.core"]


def test_no_import_cycles() -> None:
    assert _cycles(import_graph()) == []


def test_cycle_detection_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _engine_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 3 or parts[1] != "engines":
        return None
    return parts[2]


def test_no_engine_imports_another() -> None:
    shared = {"exec", "hadoop", "processes"}  # what adapters build on (exec: every one)
    bad = []
    for module, targets in import_graph().items():
        mine = _engine_of(module)
        if mine is None or mine in shared:
            continue
        for target in targets:
            theirs = _engine_of(target)
            if theirs is not None and theirs != mine and theirs not in shared:
                bad.append(f"{module} -> {target}")
    assert bad == []


# Steps in flow order; a module may import only from its own step or the ones before it.
_FLOW = ["packing", "store", "node", "remote", "engines", "cli"]
_ANYWHERE = {"envship", "envship.errors", "envship.paths", "envship.node.errors",
             "envship.node.formats", "envship.node.ref"}


def _step(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in _FLOW else None


def test_data_flows_one_way() -> None:
    bad = []
    for module, targets in import_graph().items():
        mine = _step(module)
        if mine is None:
            continue
        for target in targets:
            theirs = _step(target)
            if target in _ANYWHERE or theirs is None:
                continue
            if _FLOW.index(theirs) > _FLOW.index(mine):
                bad.append(f"{module} -> {target}")
    assert bad == []


def test_node_imports_nothing_else_of_envship() -> None:
    graph = import_graph()
    bad = [f"{m} -> {t}" for m, targets in graph.items() if _step(m) == "node"
           for t in targets if _step(t) != "node" and t != "envship.errors"]
    assert bad == []


# The public API (docs/api.md), all the command line may import of envship besides itself.
_CORE_API = ("envship", "envship.errors", "envship.store", "envship.node")


def _public_modules() -> set[str]:
    from envship.engines import top_level

    return {*_CORE_API, *(f"{TOP}.{name}" for name in top_level())}


def _outside_public(graph: dict[str, set[str]], public: set[str]) -> list[str]:
    """``cli module -> target`` for each import of the CLI that is neither the CLI nor public."""
    return sorted(f"{m} -> {t}" for m, targets in graph.items() if _step(m) == "cli"
                  for t in targets if _step(t) != "cli" and t not in public)


def _names_imported(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from MODULE import name`` in *path*, MODULE made absolute."""
    name, is_pkg = _module_name(path)
    package = name if is_pkg else name.rpartition(".")[0]
    found = []
    for node in _runtime_imports(ast.parse(path.read_text(), str(path)), type_checking=True):
        if not isinstance(node, ast.ImportFrom):
            continue
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join(parts + ([node.module] if node.module else []))
        found += [(base, alias.name) for alias in node.names]
    return found


def test_the_cli_imports_only_the_public_api() -> None:
    import importlib

    public = _public_modules()
    assert _outside_public(import_graph(type_checking=True), public) == []
    # and from a public module, only the names it exports
    bad = [f"{path.relative_to(SRC)}: {module}.{name}"
           for path in sorted((SRC / "cli").glob("*.py"))
           for module, name in _names_imported(path)
           if module in public and name not in importlib.import_module(module).__all__]
    assert bad == []


def test_the_public_api_check_finds_a_private_import() -> None:
    graph = {"envship.cli.x": {"envship.cli.app", "envship.store", "envship.node.cache"},
             "envship.store": {"envship.store.io"}}
    assert _outside_public(graph, {"envship.store"}) == ["envship.cli.x -> envship.node.cache"]


def test_the_api_page_names_every_public_name() -> None:
    import importlib
    import re

    doc = (SRC.parents[1] / "docs" / "api.md").read_text()
    missing = [f"{module}.{name}" for module in _CORE_API
               for name in importlib.import_module(module).__all__
               if not re.search(rf"`{re.escape(name)}[`(\[]", doc)]
    assert missing == []


def test_every_engine_is_registered_and_importable_without_its_engine() -> None:
    import subprocess
    import sys

    from envship.engines import ENGINES, engine, top_level

    on_disk = {p.stem for p in (SRC / "engines").glob("*.py")} | {
        p.name for p in (SRC / "engines").iterdir() if (p / "__init__.py").exists()
    }
    shared = {"__init__", "hadoop", "processes"}
    assert set(ENGINES) == on_disk - shared
    # envship.<engine> shims: one per engine the registry marks top_level, and no other
    shims = {p.stem for p in SRC.glob("*.py") if "from .engines." in p.read_text()}
    assert shims == top_level()
    for name in shims:
        assert getattr(envship, name).__all__ == engine(name).__all__
    # the docs' list of engines is the registry's
    doc = (SRC.parents[1] / "docs" / "engines.md").read_text()
    listed = doc.split("**One registry.**")[1].split("\n\n", 1)[0]
    assert all(f"`{name}`" in listed for name in ENGINES), listed
    # `import envship` then envship.<engine>, as the docs write it; no engine gets imported
    code = ("import sys, envship\n"
            "mods = [envship.spark, envship.dask, envship.ray, envship.yarn]\n"
            "print(sorted(m for m in ('pyspark', 'distributed', 'ray', 'skein') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_public_modules_load_from_a_bare_import_and_dir_lists_the_api() -> None:
    """`import envship` then `envship.store.open_store(...)`, as README's layout promises;
    dir() shows the public names, not the package's own helpers."""
    import subprocess
    import sys

    code = ("import envship, sys\n"
            "print(envship.store.open_store.__name__, envship.errors.EnvshipError.__name__,\n"
            "      envship.node.NodeError.__name__, envship.engines.__name__)\n"
            "print(sorted(n for n in dir(envship) if not n.startswith('_')))\n"
            "print(sorted(m for m in ('pyspark', 'dask', 'ray', 'skein') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    loaded, names, engines = proc.stdout.splitlines()
    assert loaded == "open_store EnvshipError NodeError envship.engines"
    shown = set(ast.literal_eval(names))
    assert set(envship.__all__) - {"__version__"} <= shown
    assert {"store", "errors", "node", "spark", "dask"} <= shown
    assert not shown & {"TYPE_CHECKING", "annotations", "packing", "progress"}
    assert engines == "[]"
