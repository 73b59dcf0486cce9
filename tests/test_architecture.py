"""The package's shape: no import cycle, and no module outside `openbind.modalities` that lists modalities."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import openbind
from openbind.modalities import all_modalities, input_names

PACKAGE = Path(openbind.__file__).parent
# Where naming modalities is the point: the modality packages themselves, the model presets (data), and the
# built-in experiment that is about particular modalities (the world renders each one's files, the quickstart
# evaluates what the paper claims for them), as a published data set is. Nothing there dispatches for others.
MAY_NAME_MODALITIES = ("modalities/", "factory.py", "world/", "reproduce/")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Every openbind module `module` imports, at module level or inside functions (a lazy import still runs),
    with the packages whose `__init__` such an import runs, less the importer's own ancestors."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
        stack.extend(ast.iter_child_nodes(node))
    edges = set()
    for name in found:
        if not name.startswith("openbind"):
            continue
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            target = ".".join(parts[:i])
            if target in known and target != module and not module.startswith(target + "."):
                edges.add(target)
    return edges


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {
        name: _imports(ast.parse(path.read_text()), name, path.name == "__init__.py", known)
        for name, path in modules.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_walker_sees_lazy_imports_and_package_inits():
    graph = _graph()
    assert "openbind.modalities.registry" in graph["openbind.config"] | graph["openbind.modalities"]
    assert "openbind.preprocess" in graph["openbind.model.imagebind"]  # imported inside `embed`
    assert "openbind.modalities" in graph["openbind.config"]  # `from openbind.modalities import ...`
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_among_the_package_modules():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_model_imports_no_training_evaluation_or_data_code():
    graph = _graph()
    for name in ("openbind.model.imagebind", "openbind.model.encoder", "openbind.config", "openbind.modalities"):
        assert not {t for t in graph[name] if t.startswith(("openbind.train", "openbind.eval", "openbind.world"))}


def _names_of_modalities(node: ast.AST, names: set[str]) -> list[str]:
    """The modality names a literal collection holds, or a comparison tests against."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        hits = [v for v in values if v in names]
        return hits if len(hits) >= 2 else []
    if isinstance(node, ast.Compare):
        constants = [c for c in (node.left, *node.comparators) if isinstance(c, ast.Constant)]
        return [c.value for c in constants if isinstance(c.value, str) and c.value in names]
    return []


def test_no_module_outside_the_modalities_lists_or_dispatches_on_modality_names():
    names = set(all_modalities()) | set(input_names())
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(MAY_NAME_MODALITIES):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            hits = _names_of_modalities(node, names)
            if hits:
                offenders.append(f"{relative}:{node.lineno}: {hits}")
    assert not offenders, "modality names listed outside openbind/modalities:\n" + "\n".join(offenders)


def test_every_builtin_modality_is_complete():
    from openbind.modalities import get_modality

    for name in all_modalities():
        modality = get_modality(name)
        config = modality.config_cls(width=32, depth=1, heads=2)
        example = config.example_input(2)
        assert example.shape[0] == 2 and config.stem_macs() >= 0
        assert modality.from_official is not None and set(modality.official_defaults)
        for kind in modality.inputs:
            assert importlib.util.find_spec(kind.transform.__module__) is not None
