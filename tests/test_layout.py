"""The package layout: no import cycles inside snncompile, no private names imported across modules,
no module over 400 lines without a reason in its docstring."""

from __future__ import annotations

import ast
from pathlib import Path

import snncompile

PKG = Path(snncompile.__path__[0])


def modules() -> dict:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path):
    """(imported module, names) for every import in the module, relative imports resolved."""
    tree = ast.parse(path.read_text())
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


def test_no_private_names_across_modules():
    mods = modules()
    bad = []
    for name, path in mods.items():
        for mod, names in imports(name, path):
            if mod.startswith("snncompile") and mod != name:
                bad += [f"{name} imports {n} from {mod}" for n in names if n.startswith("_") and n != "__version__"]
    assert not bad, bad


def test_no_import_cycles():
    mods = modules()
    graph = {}
    for name, path in mods.items():
        deps = set()
        for mod, names in imports(name, path):
            for cand in [f"{mod}.{n}" for n in names] + [mod]:
                if cand in mods and cand != name:
                    deps.add(cand)
                    break
        graph[name] = deps
    state, cycles = {}, []

    def visit(n, stack):
        state[n] = 1
        for m in graph[n]:
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m, stack + [m])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [n])
    # a package's __init__ importing its own submodules is not a cycle of logic
    cycles = [c for c in cycles if not all(x == c[0] or x.startswith(c[0] + ".") for x in c)]
    assert not cycles, cycles


def test_long_modules_say_why():
    long = [name for name, path in modules().items()
            if len(path.read_text().splitlines()) > 400 and "Longer than 400 lines" not in path.read_text()]
    assert not long, long
