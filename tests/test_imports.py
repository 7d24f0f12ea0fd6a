"""sambench's import structure (docs/architecture.md): no import cycle, and no module imports
one of a higher layer, counting imports inside functions too (read from the source, so the
test sees every import, not only those a run happens to execute)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "sambench"

# Bottom to top; a module belongs to the longest prefix that names it. A module may import its
# own layer and the layers below.
LAYERS = [
    ["sambench.errors", "sambench.registry", "sambench.resources", "sambench.types", "sambench.masks",
     "sambench.paths", "sambench.prompts", "sambench.distributed", "sambench.results", "sambench.options",
     "sambench.validate", "sambench.rundir", "sambench.matfile"],
    ["sambench.metrics", "sambench.text", "sambench.edges.nms", "sambench.edges.filters", "sambench.amg.utils",
     "sambench.amg.nms"],
    ["sambench.models", "sambench.datasets", "sambench.hub"],
    ["sambench.amg", "sambench.edges", "sambench.cache"],
    ["sambench.tasks"],
    ["sambench.engine", "sambench.bench", "sambench.train"],
    ["sambench.report"],
    ["sambench.cli", "sambench.__main__", "sambench.amg.cli", "sambench.report.cli", "sambench.train.cli",
     "sambench.metrics.bsds_cli", "sambench.sensitivity", "sambench.models.reference",
     "sambench.models.efficientvit_sam.official", "sambench.models.sam2.reference", "sambench"],
]


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = modules()


def _module(name: str) -> str:
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports(path: Path) -> list[str]:
    """The sambench module of every import in the file, at module level or inside a function;
    ``from sambench import __version__`` (a constant of the root package) is not a dependency."""
    found = []

    def visit(node) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.dump(child.test):
                continue
            if isinstance(child, ast.Import):
                found.extend(_module(a.name) for a in child.names if a.name.startswith("sambench"))
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and (child.module or "").startswith("sambench"):
                found.extend(_module(f"{child.module}.{alias.name}") for alias in child.names
                             if not (child.module == "sambench" and alias.name == "__version__"))
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def layer(name: str) -> int:
    matches = [(len(prefix), i) for i, names in enumerate(LAYERS) for prefix in names
               if name == prefix or name.startswith(prefix + ".")]
    assert matches, f"{name} belongs to no layer: add it to LAYERS"
    return max(matches)[1]


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    for name in MODULES:
        layer(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_from_a_higher_layer(name):
    upward = [dep for dep in GRAPH[name] if dep != name and layer(dep) > layer(name)]
    assert not upward, f"{name} (layer {layer(name)}) imports {upward} from a higher layer"


def test_no_import_cycle():
    """Depth-first search over every import, module-level and lazy (inside a function) alike:
    a lazy import only hides a cycle from the interpreter, not from the reader."""
    edges = {name: sorted(set(deps) - {name}) for name, deps in GRAPH.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in edges[name]:
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                walk(dep, path + [dep])
        state[name] = 2

    for name in edges:
        if name not in state:
            walk(name, [name])


def test_the_check_sees_a_cycle(tmp_path):
    """The walker is not vacuous: the two modules of a planted cycle import each other."""
    (tmp_path / "a.py").write_text("def f():\n    from sambench.report import sections\n")
    assert imports(tmp_path / "a.py") == ["sambench.report.sections"]
