#!/usr/bin/env python
"""Print the import graph of hier_repro/*.py (module-level and function-local intra-package imports), its cycles and its
floors (a module's floor is one above the highest module it imports). Usage: python tools/import_graph.py [lib_dir]
Exit status 1 when the graph has a cycle. tests/test_repo.py runs `import_graph` on the package."""
import ast, sys
from pathlib import Path


def import_graph(lib: Path) -> dict[str, set[str]]:
    "module -> the package modules it imports (anywhere in the file, `from .x`, `from hier_repro.x`, `import hier_repro.x`)."
    mods = {p.stem for p in lib.glob('*.py') if not p.stem.startswith('_')}
    graph = {}
    for m in sorted(mods):
        out = set()
        for node in ast.walk(ast.parse((lib / f'{m}.py').read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level == 1 or base.startswith('hier_repro'):
                    base = base.removeprefix('hier_repro').lstrip('.')
                    names = [base.split('.')[0]] if base else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name.split('.')[1] for a in node.names if a.name.startswith('hier_repro.')]
            out |= {n for n in names if n in mods and n != m}
        graph[m] = out
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    "Every elementary cycle found by depth-first search, each as a list of modules (first module repeated at the end)."
    found, seen = [], set()
    def visit(path):
        for n in sorted(graph[path[-1]]):
            if n == path[0]:
                key = frozenset(path)
                if key not in seen: seen.add(key); found.append(path + [n])
            elif n not in path and n > path[0]: visit(path + [n])
    for m in sorted(graph): visit([m])
    return found


def floors(graph: dict[str, set[str]]) -> dict[str, int]:
    "Floor of each module: 1 when it imports no package module, else 1 + the highest floor it imports (cycles: not defined)."
    memo = {}
    def floor(m, stack=()):
        if m in memo: return memo[m]
        if m in stack: raise ValueError(f'import cycle through {m}')
        memo[m] = 1 + max((floor(n, stack + (m,)) for n in graph[m]), default=0)
        return memo[m]
    for m in graph: floor(m)
    return memo


if __name__ == '__main__':
    lib = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / 'hier_repro'
    g = import_graph(lib)
    for m in sorted(g): print(f'{m:12s} -> {", ".join(sorted(g[m])) or "-"}')
    cyc = cycles(g)
    for c in cyc: print('cycle:', ' -> '.join(c))
    if not cyc:
        fl = floors(g)
        for f in sorted(set(fl.values()), reverse=True): print(f'floor {f}: ' + ', '.join(sorted(m for m in fl if fl[m] == f)))
    print(f'{len(g)} modules, {sum(map(len, g.values()))} edges, {len(cyc)} cycles')
    sys.exit(1 if cyc else 0)
