"""The code's shape: no import loop anywhere in fst_ray (function-level imports and the package
``__init__`` each import runs included), no core module importing Ray, and one role registry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fst_ray import roles
from fst_ray.models import create_model

PKG = Path(__file__).resolve().parent.parent / "fst_ray"

#: the core (docs/design.md §2): pure numpy/torch modules, no Ray
CORE = ["fst_ray.frames", "fst_ray.roles", "fst_ray.tables", "fst_ray.metrics", "fst_ray.storage", "fst_ray.ffpp",
        "fst_ray.data.align", "fst_ray.data.decode", "fst_ray.data.views", "fst_ray.data.pairs",
        "fst_ray.shapley.game", "fst_ray.shapley.baselines", "fst_ray.shapley.estimators", "fst_ray.train.engine", "fst_ray.train.labels",
        "fst_ray.train.augment", "fst_ray.models.factory", "fst_ray.synth.render", "fst_ray.attribution"]


def _module(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """Module -> the fst_ray modules it imports (an import of ``a.b.c`` also runs ``a.b``'s ``__init__``)."""
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                parts = t.split(".")
                for k in range(1, len(parts) + 1):
                    candidate = ".".join(parts[:k])
                    if candidate in modules and candidate != name and not name.startswith(candidate + "."):
                        deps.add(candidate)
        graph[name] = deps
    return graph


def test_no_import_loop():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                raise AssertionError("import loop: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_graph_sees_the_imports():
    """The checker itself reads imports (so an empty graph cannot pass the loop test)."""
    graph = _graph()
    assert "fst_ray.frames" in graph["fst_ray.data.ingest.video"]
    assert "fst_ray.tables" in graph["fst_ray.frames"]


@pytest.mark.parametrize("module", CORE)
def test_core_modules_do_not_import_ray(module):
    path = PKG.parent / module.replace(".", "/")
    files = sorted(path.glob("*.py")) if path.is_dir() else [path.with_suffix(".py")]  # a package: all its files
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "ray" or n.startswith("ray.") for n in names), f"{file.name} imports {names}"


def test_registry_holds_everything_a_role_is():
    for name, spec in roles.ROLES.items():
        sets = {"source_id": ["000", "001", "002"], "target_id": ["000", "001"]}
        model = create_model(name, "test_resnet", spec.num_classes(sets))
        assert model is not None
        assert spec.mask in ("m_encoder", "m_detector")
        assert spec.column in ("det_label", "source_id", "target_id")
    assert roles.detectors() == ["det", "fst"] and roles.encoders() == ["source", "target"]
    row = {"det_label": 1, "source_id": "000", "target_id": "001"}
    assert roles.explained_class("target", ["000", "001"], row) == ("001", 1)
    with pytest.raises(ValueError, match="unknown role"):
        roles.get("detector")


def test_a_new_role_is_one_registration():
    """A new identity encoder (say, a dataset's scene encoder) registered in one place trains, builds and
    explains through the same code."""
    spec = roles.register_role("scene", detector=False, column="source_id", label="source", subset="encoder",
                               augment=roles.IDENTITY, family="classifier", heads=("source_id",), word="scene",
                               doc="test role")
    try:
        model = create_model("scene", "test_resnet", 3)
        assert model(__import__("torch").zeros(2, 3, 32, 32)).shape == (2, 3)
        assert roles.explained_class("scene", ["000"], {"source_id": "000"}) == ("000", 0)
        assert "scene" in roles.encoders() and spec.num_classes({"source_id": ["a", "b"]}) == 2
    finally:
        del roles.ROLES["scene"]
