"""The package's shape: imports point one way (no cycle, no import of a higher layer), small modules and
functions. README's Layout section describes the layers."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cdmpp_tvm"
# Lowest first; a module may import its own layer and lower ones (README "Layout").
LAYER = {"errors": 0, "atomic_io": 0, "torch_threads": 0, "device": 1, "features": 1, "workloads": 1,
         "evaluation": 1, "data": 2, "baselines": 3, "model": 4, "training": 5, "cost_model": 6, "adaptation": 6,
         "tuning": 6, "network_latency": 6, "bench": 7, "cli": 8}
# One concept that needs more room: the compact-AST tree walk (its _Walker class is the extractor).
LONG_MODULES = {"features/compact_ast.py"}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the package modules it imports at module level or in a function."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif isinstance(node, ast.ImportFrom):
                target = node.module or ""
            else:
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
            # "from pkg import submodule" needs the submodule; "from pkg import name" needs pkg itself.
            deps.update(subs if len(subs) == len(node.names) else [target] if target in modules else [])
        graph[name] = deps - {name}
    return graph


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYER.get(parts[1]) if len(parts) > 1 else None


def test_imports_point_one_way_and_form_no_cycle():
    graph = _imports()
    upward = sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps
                    if None not in (_layer(m), _layer(d)) and _layer(d) > _layer(m))
    assert not upward
    done, active, cycles = set(), [], []

    def visit(m):
        if m in active:
            cycles.append(active[active.index(m):] + [m])
            return
        if m in done:
            return
        active.append(m)
        for d in sorted(graph[m]):
            visit(d)
        active.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)
    assert not cycles


def test_modules_and_functions_stay_small():
    big_modules, long_functions = [], []
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE))
        text = path.read_text()
        if text.count("\n") > 420 and rel not in LONG_MODULES:
            big_modules.append(rel)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long_functions.append(f"{rel}:{node.lineno} {node.name}")
    assert not big_modules and not long_functions
