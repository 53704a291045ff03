"""The package's import graph: layers only import downwards, and no module imports itself through others.

Every ``import`` statement counts, module-level and inside functions (lazy
imports are still dependencies). The layer order is stated once, in the package
docstring; ``LAYERS`` spells it for the checks, and a test keeps the two equal.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import bertology_widgets

PACKAGE = Path(bertology_widgets.__file__).parent
NAME = "bertology_widgets"

# The layers, lowest first, one per folder of the package. A module may import from its own layer or a lower one.
#   glue/      GLUE tasks, loaders and metrics
#   runtime/   files, caches, processes, progress, memory (no model in sight; a cache key may name examples)
#   core/      gating, adapters, capture, the layer-by-layer runner, pruning, labels, batching, precision,
#              mask files, the bound model
#   analyses/  evaluation, importance, masking curve, head roles, patching, ablation, probes, representations
#   models/    loading, the default model, fine-tuning, the small GPT-2 (and testing.py's tiny models)
#   session/   ModelSession: traitlets, no widgets
#   widgets/   the views (and snapshot/: the views written as one offline HTML page)
#   app        cli, __main__, commands/, benchmark/ (what ``bertology bench`` measures) and the package facade
LAYERS = ("glue", "runtime", "core", "analyses", "models", "session", "widgets", "app")
#: Top-level modules outside the folders, and their layer.
TOP_LEVEL = {"_version": "runtime", "testing": "models", "cli": "app", "__main__": "app", "snapshot": "widgets"}

# Known edges that break the rules, each with its reason. Keep this short.
ALLOWED: set[tuple[str, str]] = set()


def layer_of(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:  # the package's lazy facade re-exports every layer
        return "app"
    if parts[0] in ("commands", "benchmark"):
        return "app"
    if parts[0] in LAYERS:
        return parts[0]
    return TOP_LEVEL[parts[0]]  # a new top-level module must be given its layer here


def test_the_package_docstring_states_the_layers_in_this_order():
    folders = re.findall(r"^    ([a-z]+)/ ", bertology_widgets.__doc__, flags=re.MULTILINE)
    assert folders == [*LAYERS[:-1], "commands"]


def test_every_module_has_a_layer():
    assert {layer_of(module) for module in import_graph()} <= set(LAYERS)


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """Each package module -> the package modules it imports (anywhere in its body)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for importer, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(importer, is_package, node)
                # ``from . import state`` names a module; ``from .glue import load_glue`` a name in glue
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            for target in targets:
                while target and target not in files:  # ``import a.b.c`` where only a.b is ours
                    target = target.rpartition(".")[0]
                if target.startswith(NAME) and target != importer and target != NAME:
                    graph[importer].add(target)
    return graph


# Views call only the session. From the engine a view may import just these names: constants, types
# and pure functions of arrays or mask files, which run no model and load no data. Anything a view
# needs from the model (is it causal, a layer's note, parameter counts, a probe) is a session trait or method.
VIEW_ENGINE_NAMES = {
    "bertology_widgets.analyses.attribution": {"METHOD_LABELS"},  # a constant: method names for people
    "bertology_widgets.analyses.head_roles": {"ROLES", "ROLE_DESCRIPTIONS"},  # constants
    "bertology_widgets.analyses.masking_curve": {"heads_per_step"},  # arithmetic: how many heads a step masks
    "bertology_widgets.analyses.probe": {"ProbeResult"},  # the type of session.probe
    "bertology_widgets.analyses.pipeline": {"PipelineResult"},  # the type of session.pipeline
    "bertology_widgets.analyses.representations": {"POOLINGS",  # a constant; the rest: numpy over session.hidden_states
                                          "layer_to_layer_cosine", "pca_2d", "token_norms"},
    "bertology_widgets.core.mask_files": {"load_mask", "save_mask"},  # a mask array to and from a file
}


def engine_names_imported_by_views() -> set[tuple[str, str, str]]:
    """``(view module, engine module, name)`` for every engine name a view imports (``"*"``: the module)."""
    found = set()
    for path in (PACKAGE / "widgets").rglob("*.py"):
        importer = module_name(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {(importer, alias.name, "*") for alias in node.names if alias.name.startswith(NAME)}
            elif isinstance(node, ast.ImportFrom):
                base = resolve(importer, path.name == "__init__.py", node)
                found |= {(importer, base, alias.name) for alias in node.names}
    return {(view, module, name) for view, module, name in found
            if module.startswith(NAME) and LAYERS.index(layer_of(module)) < LAYERS.index("session")}


def test_views_import_from_the_engine_only_constants_types_and_array_helpers():
    imported = engine_names_imported_by_views()
    assert ("bertology_widgets.widgets.head_mask_grid", "bertology_widgets.core.mask_files", "save_mask") in imported
    refused = sorted(entry for entry in imported if entry[2] not in VIEW_ENGINE_NAMES.get(entry[1], ()))
    assert refused == []


def test_the_walk_sees_lazy_imports():
    graph = import_graph()
    assert "bertology_widgets.core.architectures" in graph["bertology_widgets.models.loading"]
    assert graph["bertology_widgets.cli"]  # cli imports its commands by name, so at least _version


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    graph = import_graph()
    upward = sorted((a, b) for a, targets in graph.items() for b in targets
                    if LAYERS.index(layer_of(b)) > LAYERS.index(layer_of(a)) and (a, b) not in ALLOWED)
    assert upward == []


def test_no_import_cycle():
    graph = {a: {b for b in targets if (a, b) not in ALLOWED} for a, targets in graph_items()}
    cycles = []
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def graph_items():
    return import_graph().items()
