"""The package's layering, checked from its source: owners per concern, no import cycles."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "pipelines"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Modules of `pipelines` that `name` imports anywhere (module level or inside functions)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t.startswith("pipelines") and t != name and not name.startswith(t + "."):
                found.add(t)
    return found


def test_no_import_cycles() -> None:
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_only_the_airflow_adapter_imports_airflow() -> None:
    for name, path in MODULES.items():
        if name.startswith("pipelines.airflow"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                mods = [node.module or ""]
            assert not [m for m in mods if m.split(".")[0] == "airflow"], f"{name} imports Airflow"


def _code_lines(owner: str, pattern: str) -> list[str]:
    """Lines of Python code outside `owner` that match `pattern` (docstrings and SQL files aside)."""
    hits = []
    for name, path in MODULES.items():
        if name == owner or name.startswith(owner + "."):
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(pattern, line):
                hits.append(f"{path.relative_to(PKG.parent)}:{i}: {line.strip()}")
    return hits


def test_only_the_lake_knows_file_names_and_layout() -> None:
    assert not _code_lines(
        "pipelines.lake",
        r"part-\d|\.parquet[\"']|_manifest\.json|(snapshot_date|run_date|shard)=\{|[\"']_(seam|state)[\"']",
    )


def test_only_the_db_adapters_branch_on_the_dialect() -> None:
    assert not _code_lines("pipelines.db", r"dialect\.name\s*==|dialect\s*==|get_backend_name\(\)\s*==")


def test_resources_are_found_through_the_package_not_the_checkout() -> None:
    assert not _code_lines("pipelines.__nothing__", r"Path\(__file__\)")


def test_the_nightly_steps_import_no_model_library() -> None:
    """Every Airflow task imports `pipelines.steps`; the models' libraries (statsmodels, scipy, about
    two seconds) are imported only by the steps that fit models, not by extract, load or report."""
    code = (
        "import sys, pipelines.steps, pipelines.load, pipelines.report; "
        "print(sorted(m for m in ('statsmodels', 'scipy', 'great_expectations') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PKG.parent
    )
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("package", ["pipelines.forecasting", "pipelines.anomaly"])
def test_a_stages_public_names_resolve_to_its_modules(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        home = importlib.import_module(f"{package}.{module._EXPORTS[name]}")
        assert value is getattr(home, name), name
    assert set(module.__all__) == set(module._EXPORTS)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = module.nothing
