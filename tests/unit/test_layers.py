"""The package's layers, read from its source: what each module imports, wherever in the file.

Layers, lowest first: ``numerics`` and ``files`` (numpy only); the TensorFlow/LiteRT
technique folders ``zoo``, ``conversion``, ``ptq`` and ``qat`` (side by side), and
``compression``; ``plots``, ``widgets``, ``workbook``, then the top (``__init__``,
``cli``). A module imports only from its own layer or lower ones; ``plots`` uses no
technique folder at all (so no picture pulls in TensorFlow); no module reaches into
another's private names; and no chain of imports, lazy ones included, leads a module
back to itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "qlab"

#: The technique folders, lowest first: each may use the ones before it (ptq and qat each other's).
TECHNIQUES = {"zoo": 1, "conversion": 2, "ptq": 3, "qat": 3, "compression": 4}
RANK = {"numerics": 0, "files": 0, **TECHNIQUES, "plots": 5, "widgets": 6, "workbook": 7, "top": 8}
#: Third-party packages a layer must not import (a prefix matches sub-modules too).
FORBIDDEN = {
    "numerics": ("tensorflow", "tf_keras", "tensorflow_model_optimization", "ai_edge_litert",
                 "matplotlib", "ipywidgets", "keras"),
    "files": ("tensorflow", "tf_keras", "tensorflow_model_optimization", "ai_edge_litert",
              "matplotlib", "ipywidgets", "keras"),
    "plots": ("tensorflow", "tf_keras", "tensorflow_model_optimization", "ai_edge_litert",
              "matplotlib.pyplot", "ipywidgets", "keras"),
}
#: Layers a layer may not use even though they rank below it.
NOT_USED_BY = {"plots": tuple(TECHNIQUES)}


def layer_of(module: str) -> str:
    """'qlab.zoo.models' -> 'zoo'; 'qlab.widgets' -> 'widgets'; 'qlab' or 'qlab.cli' -> 'top'."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in RANK:
        return parts[1]
    return "top"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str) -> list[tuple[str, list[str]]]:
    """Every ``(imported module, [names])`` of a source file, at any depth, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: len(module.split(".")) - node.level]
                base = ".".join([*package, base] if base else package)
            found.append((base, [alias.name for alias in node.names]))
    return found


def private_attributes(source: str, qlab_aliases: set[str]) -> list[str]:
    """``alias._name`` uses where ``alias`` is a qlab module imported into this file."""
    return [f"{node.value.id}.{node.attr}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in qlab_aliases and node.attr.startswith("_")
            and not node.attr.startswith("__")]


def qlab_aliases(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qlab"):
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("qlab")}
    return names


def _packages() -> tuple[str, ...]:
    return tuple(module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py"))


#: qlab and its sub-packages: ``from <package> import name`` may import a module.
PACKAGES = ("qlab", *_packages())


def violations(source: str, module: str) -> list[str]:
    """What breaks the layering rules in one module's source (empty when it keeps them)."""
    layer, problems = layer_of(module), []
    for target, names in imports(source, module):
        if target == "qlab" or target.startswith("qlab."):
            full = [f"{target}.{n}" for n in names] if target in PACKAGES else [target]
            for name in full:
                used = layer_of(name)
                if RANK[used] > RANK[layer] or used in NOT_USED_BY.get(layer, ()):
                    problems.append(f"{module} ({layer}) imports {name} ({used})")
                if any(part.startswith("_") and not part.startswith("__") for part in name.split(".")):
                    problems.append(f"{module} imports the private name {name}")
            problems += [f"{module} imports the private name {target}.{n}" for n in names
                         if n.startswith("_") and target not in PACKAGES]
        elif any(target == bad or target.startswith(bad + ".") or
                 any(f"{target}.{n}" == bad for n in names) for bad in FORBIDDEN.get(layer, ())):
            problems.append(f"{module} ({layer}) imports {target}")
    problems += [f"{module} uses the private {name}"
                 for name in private_attributes(source, qlab_aliases(source))]
    return problems


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_package_has_one_folder_per_layer():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == {"numerics", "files", *TECHNIQUES, "plots", "workbook"}
    assert (PACKAGE / "widgets.py").exists() and not (PACKAGE / "bench.py").exists()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_keeps_the_layering_rules(path):
    assert violations(path.read_text(), module_name(path)) == []


@pytest.mark.parametrize("source, module, expected", [
    ("from qlab.zoo.models import MODELS", "qlab.numerics.quant", "imports qlab.zoo.models (zoo)"),
    ("from qlab.qat.training import fine_tune", "qlab.conversion.converter", "imports qlab.qat.training (qat)"),
    ("from qlab.workbook.studies import weight_bits", "qlab.ptq.equalize", "(workbook)"),
    ("from qlab.compression import prune", "qlab.qat.training", "imports qlab.compression.prune (compression)"),
    ("from qlab.ptq.ranges import activation_ranges", "qlab.qat.ranges", None),  # ptq and qat: side by side
    ("def f():\n    import tensorflow as tf", "qlab.numerics.quant", "imports tensorflow"),
    ("from matplotlib import pyplot", "qlab.plots.buckets", "imports matplotlib"),
    ("import matplotlib.pyplot as plt", "qlab.plots.buckets", "imports matplotlib.pyplot"),
    ("from qlab.ptq import debug", "qlab.plots.buckets", "imports qlab.ptq.debug (ptq)"),
    ("from qlab.workbook.pipeline import compare", "qlab.widgets", "(workbook)"),
    ("from qlab.conversion.tflite import _cpu_count", "qlab.workbook.pipeline", "private name"),
    ("from qlab.conversion import tflite\ntflite._cpu_count()", "qlab.workbook.pipeline", "private tflite._cpu_count"),
    ("from . import quant", "qlab.plots.buckets", None),  # qlab.plots.quant: same layer
    ("from ..ptq import debug", "qlab.plots.buckets", "imports qlab.ptq.debug (ptq)"),
])
def test_the_checker_catches_each_kind_of_violation(source, module, expected):
    found = violations(source, module)
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0], found


def test_numerics_and_plots_import_without_tensorflow():
    import subprocess
    import sys

    code = ("import sys, qlab.numerics.quant, qlab.numerics.accumulate, qlab.plots.buckets, "
            "qlab.plots.accumulation, qlab.plots.channel_ranges, qlab.plots.comparison, "
            "qlab.plots.layer_errors, qlab.files.data\n"
            "bad = [m for m in ('tensorflow', 'tf_keras', 'matplotlib.pyplot') if m in sys.modules]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the qlab modules it imports (at any depth: lazy imports count), from ``{module: source}``.

    ``from qlab.ptq import ranges`` is an edge to ``qlab.ptq.ranges``; ``from qlab.ptq.ranges import x``
    one to ``qlab.ptq.ranges``. The parent packages Python runs first are not edges: their
    ``__init__`` files are modules of their own, with their own imports.
    """
    graph = {module: set() for module in sources}
    for module, source in sources.items():
        for target, names in imports(source, module):
            for name in ([f"{target}.{n}" for n in names] if target in PACKAGES else [target]):
                while name and name not in sources:  # `from qlab.zoo.models import MODELS` -> qlab.zoo.models
                    name = name.rpartition(".")[0]
                if name and name != module:
                    graph[module].add(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle: the strongly connected components of more than one module (Tarjan), sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def package_sources() -> dict[str, str]:
    return {module_name(path): path.read_text() for path in MODULES}


def test_no_module_imports_itself_back():
    found = cycles(import_graph(package_sources()))
    paths = {module_name(path): str(path.relative_to(PACKAGE.parent)) for path in MODULES}
    files = [" <-> ".join(paths[m] for m in cycle) for cycle in found]
    assert found == [], "import cycles (files in each): " + "; ".join(files)


def test_the_cycle_check_finds_a_cycle_put_into_the_real_package():
    sources = package_sources()
    assert cycles(import_graph(sources)) == []
    # zoo.models imports zoo.cache; a lazy import back from the cache closes a circle
    sources["qlab.zoo.cache"] += "\n\ndef f():\n    from qlab.zoo.models import load_or_train\n"
    assert ["qlab.zoo.cache", "qlab.zoo.models"] in cycles(import_graph(sources))


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set(), "c": {"b"}}, []),
    ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b"], ["c", "d"]]),
])
def test_cycles_on_small_graphs(graph, expected):
    assert cycles(graph) == expected


def test_import_graph_resolves_names_to_modules():
    sources = {"qlab.ptq": "", "qlab.ptq.ranges": "", "qlab.qat.ranges": "from qlab.ptq import ranges\n",
               "qlab.qat.training": "def f():\n    from qlab.ptq.ranges import activation_ranges\n"}
    graph = import_graph(sources)
    assert graph["qlab.qat.ranges"] == {"qlab.ptq.ranges"} and graph["qlab.qat.training"] == {"qlab.ptq.ranges"}
