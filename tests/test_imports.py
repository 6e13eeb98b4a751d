"""The import graph of ``etl``: no cycle anywhere, counting the imports inside functions too
(a cycle hidden in a function body is still a cycle), and the procedure imports no step."""

from __future__ import annotations

import ast
from pathlib import Path

from etl.config import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "etl"
#: The modules behind a DAG task: they may use the procedure and the foundation modules.
STEPS = {"load_data", "preprocess_data", "train_model", "nested_cv", "evaluate_model", "quality_gate",
         "report", "save_results", "upload_results", "predict", "score"}


def _graph() -> dict[str, set[str]]:
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name in modules:
        deps = set()
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "etl":
                deps |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("etl."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names if a.name.startswith("etl.")}
        graph[name] = deps - {name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep] if dep in path else [*path, dep]
            if dep not in state and (found := visit(dep, [*path, dep])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_etl_package_has_no_import_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_procedure_and_the_models_import_no_step():
    graph = _graph()
    for module in ("procedure", "models", "stats", "schema"):
        assert not graph[module] & STEPS, (module, graph[module] & STEPS)


def test_no_step_imports_another_step():
    """Steps share code through the procedure and the foundation modules (``etl.contract``,
    ``etl.releases``, ...), never through each other; only the Airflow callables
    (``etl.tasks``) call every step."""
    graph = _graph()
    for step in STEPS:
        assert not graph[step] & STEPS, (step, graph[step] & STEPS)


def test_the_package_is_where_the_test_looks():
    assert (PACKAGE / "procedure.py").is_file() and Path(__file__).parent.parent == PROJECT_ROOT


#: What the UI plugin, the release reader and the inbox watcher (in the triggerer) import: they
#: run in Airflow's long-lived processes and must not load the numerical stack.
LIGHT = ("breast_cancer_ui", "etl.config", "etl.releases", "etl.history", "etl.web", "etl.headline", "etl.inbox",
         "etl.inbox_trigger", "etl.progress", "etl.executor")
#: What the plugin's app needs and only the api-server should load (the plugin makes its app at
#: the first request): Airflow loads the plugin in every task's process and CLI command.
API_ONLY = "airflow.api_fastapi.core_api.security"
HEAVY = ("pandas", "numpy", "scipy", "sklearn", "matplotlib", "joblib")


def test_light_modules_import_no_numerical_library():
    """Each light module in turn, in one fresh interpreter: the first that pulls a heavy library
    in is named with it. The plugin first: loading it makes no app (``API_ONLY`` stays out)."""
    import json
    import os
    import subprocess
    import sys

    script = f"""
import importlib, json, sys
sys.path.insert(0, {str(PROJECT_ROOT / 'plugins')!r})
found = {{}}
for name in {list(LIGHT)!r}:
    importlib.import_module(name)
    found[name] = sorted(m for m in {[*HEAVY, API_ONLY]!r} if m in sys.modules)
print(json.dumps(found))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          check=False, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert list(found) == list(LIGHT)
    assert all(not heavy for heavy in found.values()), found
