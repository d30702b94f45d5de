"""The package map holds: no import cycles between modules, and every pipeline verb has one home.

import-linter (run by ``scripts/test``) checks who may import whom; this test
checks what its contracts cannot: that no module imports one that imports it
back, directly or through others — imports inside functions included.
"""

from __future__ import annotations

import grimp
import pytest

PACKAGES = ("napari_histo", "qupath_bridge", "training")


def import_cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root) & modules)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child) & modules)))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
    return cycles


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def test_no_import_cycles_between_modules(graph):
    modules = {m for m in graph.modules if m.split(".")[0] in PACKAGES}
    cycles = import_cycles(graph, modules)
    assert not cycles, "import cycles (each group imports itself back): " + "; ".join(
        " ↔ ".join(c) for c in cycles
    )


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for a, b in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d"), ("p.e", "p.d")]:
        graph.add_import(importer=a, imported=b)
    assert import_cycles(graph, set(graph.modules)) == [["p.a", "p.b", "p.c"]]


def test_slide_level_work_lives_in_pipeline_only(graph):
    """The CLI and the docks call pipeline verbs; they never drive the engine or read tiles themselves."""
    low_level = {"napari_histo.models.engine.predict_tiles", "napari_histo.io.regions"}
    front_ends = [m for m in graph.modules if m.startswith(("napari_histo.cli", "napari_histo._napari"))]
    offenders = []
    for module in front_ends:
        for imported in graph.find_modules_directly_imported_by(module):
            details = graph.get_import_details(importer=module, imported=imported)
            names = {f"{imported}.{d['line_contents'].split('import')[-1].strip()}" for d in details}
            if imported in low_level or names & low_level:
                offenders.append(f"{module} imports {imported}")
    assert not offenders, offenders
