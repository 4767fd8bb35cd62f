"""The layout is the architecture (docs/architecture.md): each package of core/
imports only from the layers below it, and modules import each other without
cycles. Checked by reading every module's imports (ast), lazy ones included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "core"

#: lowest first; a module may import its own layer and the ones before it
#: (the conformance kit, ``testing``, runs the real runner: it sits with the CLI on top)
LAYERS = ["contract", "helpers", "host", "store", "pipeline", "report", "cli", "testing"]
#: the package's facade and entry points, above everything: not checked
TOP = {"crmsync", "crmsync._moved", "crmsync.__main__"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in CORE.rglob("*.py"):
        parts = list(path.relative_to(CORE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(["crmsync", *parts])] = path
    return out


def _imports(name: str, path: Path, *, top_level_only: bool) -> set[str]:
    """The crmsync modules ``name`` imports (``from .x import y`` resolved, and
    ``y`` itself when it is a module)."""
    modules = _modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("crmsync"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("crmsync.") or a.name == "crmsync")
    found.discard(name)
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if module in TOP or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def test_every_module_belongs_to_a_layer():
    strays = [m for m in _modules() if m not in TOP and _layer(m) is None]
    assert strays == [], f"modules outside the layers {LAYERS}: {strays}"


@pytest.mark.parametrize("module", sorted(m for m in _modules() if m not in TOP))
def test_no_module_imports_a_higher_layer(module):
    mine = _layer(module)
    path = _modules()[module]
    upward = sorted(t for t in _imports(module, path, top_level_only=False) if (_layer(t) is None and t in TOP) or (_layer(t) or 0) > mine)
    assert upward == [], f"{module} (layer {LAYERS[mine]}) imports from above it: {upward}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles in ``graph``, leaving out a package and its own submodules
    (a package's ``__init__`` re-exporting them is not a cycle between modules)."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append([*stack[stack.index(t) :], t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    nested = lambda a, b: a.startswith(b + ".") or b.startswith(a + ".")  # noqa: E731
    return [c for c in cycles if not all(nested(c[i], c[i + 1]) for i in range(len(c) - 1))]


def test_no_import_cycles():
    modules = _modules()
    graph = {m: {t for t in _imports(m, p, top_level_only=True) if t in modules} for m, p in modules.items()}
    cycles = _cycles(graph)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_one():
    graph = {"crmsync.pipeline.a": {"crmsync.pipeline.b"}, "crmsync.pipeline.b": {"crmsync.pipeline.a"}, "crmsync.store": {"crmsync.store.x"}, "crmsync.store.x": {"crmsync.store"}}
    assert _cycles(graph) == [["crmsync.pipeline.a", "crmsync.pipeline.b", "crmsync.pipeline.a"]]


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The layer check itself: a contract module importing the pipeline is caught."""
    fake = tmp_path / "contract" / "bad.py"
    fake.parent.mkdir()
    fake.write_text("from ..pipeline.run import Runner\n")
    assert "crmsync.pipeline.run" in _imports("crmsync.contract.bad", fake, top_level_only=False)
    assert _layer("crmsync.pipeline.run") > _layer("crmsync.contract.bad")


def test_the_old_flat_names_still_work_and_warn(tmp_path):
    import importlib
    import sys

    import crmsync
    from crmsync.pipeline.run import Runner
    from crmsync.store import Store

    for old_name in ("crmsync.runner", "crmsync.base"):
        sys.modules.pop(old_name, None)
    with pytest.warns(DeprecationWarning, match="crmsync.runner moved to crmsync.pipeline.run"):
        old = importlib.import_module("crmsync.runner")
    assert old.Runner is Runner
    with pytest.warns(DeprecationWarning, match="crmsync.base moved"):
        from crmsync.base import Sink  # noqa: F401
    assert Sink is crmsync.Sink
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        with pytest.warns(DeprecationWarning, match=r"Store.backlog moved to Store.ledger.backlog"):
            assert store.backlog("crm") == 0
        with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
            store.nonsense  # noqa: B018
    finally:
        store.dispose()
