"""The layering of src/lth, read from the import graph (every import, also those inside functions):
each package imports only the packages below it, the planning layer imports no torch, a model no
data generator; and what a package says it may import (its docstring) is what this test holds."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lth"

# Each package, and the packages of lth it may import (besides itself). Bottom to top.
MAY_IMPORT = {
    "core": set(),
    "plan": {"core"},
    "data": {"core", "plan"},
    "models": {"core", "plan"},
    "pruning": {"core", "plan", "models"},
    "store": {"core", "plan", "data", "pruning"},
    "training": {"core", "plan", "data", "models", "pruning", "store"},
    "jobs": {"core", "plan", "data", "models", "pruning", "store", "training"},
    "analyses": {"core", "plan", "data", "models", "pruning", "store", "training", "jobs"},
    "report": {"core", "plan", "store"},
    "cli": {"core", "plan", "data", "models", "pruning", "store", "training", "jobs", "analyses", "report"},
}
# Third-party modules a torch-free layer must not import (parsing the workflow stays cheap).
HEAVY = {"torch", "torchvision", "numpy", "pandas", "scipy", "sklearn", "matplotlib", "mlflow", "safetensors"}


def package_of(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0] if len(rel) > 1 else "lth"


def imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (absolute names)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            if node.module == "lth":  # from lth import <package>
                out.update(f"lth.{a.name}" for a in node.names)
    return out


def modules():
    return sorted(p for p in SRC.rglob("*.py"))


def test_every_package_is_in_the_table():
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(MAY_IMPORT)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_a_module_imports_only_the_packages_below_its_own(path):
    own = package_of(path)
    if own == "lth":  # lth/__init__.py, lth/__main__.py (the command line)
        return
    used = {m.split(".")[1] for m in imports(path) if m.startswith("lth.")}
    wrong = sorted(used - {own} - MAY_IMPORT[own])
    assert not wrong, f"{path.relative_to(SRC)} imports lth.{wrong}"


@pytest.mark.parametrize("package", ["core", "plan"])
def test_the_planning_layer_imports_no_torch(package):
    for path in (SRC / package).rglob("*.py"):
        heavy = {m.split(".")[0] for m in imports(path)} & HEAVY
        assert not heavy, f"{path.relative_to(SRC)} imports {sorted(heavy)}"


def test_a_model_imports_no_data_generator():
    for path in (SRC / "models").rglob("*.py"):
        assert not any(m.startswith("lth.data") for m in imports(path)), path.name


def test_each_package_states_what_it_may_import():
    """The docstring of every package's __init__ names the packages it may import (the code map: docs/extend)."""
    for package in MAY_IMPORT:
        doc = ast.get_docstring(ast.parse((SRC / package / "__init__.py").read_text())) or ""
        assert "May import" in doc or "may import" in doc, package


def test_no_module_name_is_used_twice():
    names = [p.stem for p in modules() if p.stem not in ("__init__", "__main__")]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_no_private_name_is_imported_from_another_module():
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lth"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.relative_to(SRC)} imports {private} from {node.module}"
