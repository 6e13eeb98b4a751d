"""The house of ``etl``: packages by concern in layers that import only downwards, no import
cycle anywhere (the imports inside functions counted: a cycle hidden in a function body is still
a cycle), the top level holding only the runnable steps and the three shared modules, and no
module over 400 lines. ``docs/project.md`` draws the same layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from etl.settings import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "etl"
#: The modules every step uses: the top level holds these and the runnable steps, nothing else.
SHARED = {"catalog", "settings", "runner"}
#: The runnable steps of the DAGs (``python -m etl.<step>``).
STEPS = {"load_data", "preprocess_data", "train_model", "nested_cv", "evaluate_model", "quality_gate",
         "report", "save_results", "upload_results", "predict", "score", "outcomes"}
#: The layers, lowest first: a unit (a top-level module or a subpackage) imports only from its own
#: layer or lower ones. ``steps`` stands for every module of ``STEPS``.
LAYERS = (
    {"catalog"},
    {"storage"},
    {"settings"},
    {"data", "modeling"},
    {"releases", "monitoring"},
    {"runner"},
    {"steps"},
    {"orchestration", "ui", "runtime"},
)
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _graph(modules: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """Module -> the project modules it imports (``from etl.x import y`` names ``etl.x.y`` when
    that is a module, else ``etl.x``)."""
    modules = modules or _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "etl":
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.split(".")[0] == "etl"}
        graph[name] = {d for d in deps if d in modules} - {name}
    return graph


def _unit(module: str) -> str:
    """The unit a module belongs to: its subpackage, ``steps`` for a step, or itself."""
    part = module.split(".")[1] if "." in module else ""
    return "steps" if part in STEPS else part


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


def test_no_import_cycle_between_modules_or_between_packages():
    graph = _graph()
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
    units: dict[str, set[str]] = {}
    for module, deps in graph.items():
        units.setdefault(_unit(module), set()).update(_unit(d) for d in deps)
    units = {u: deps - {u} for u, deps in units.items()}
    assert _cycle(units) is None, " -> ".join(_cycle(units) or [])


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _layer(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def test_every_module_imports_only_from_its_layer_or_below():
    upward = sorted(f"{module} -> {dep}" for module, deps in _graph().items() if _unit(module)
                    for dep in deps if _layer(_unit(dep)) > _layer(_unit(module)))
    assert upward == []


def test_the_layers_know_every_unit():
    known = set().union(*LAYERS)
    assert {_unit(m) for m in _modules() if m != "etl"} <= known


def test_no_step_imports_another_step():
    """Steps share code through the packages below them, never through each other; only the
    Airflow glue (``etl.orchestration``) calls every step."""
    for module, deps in _graph().items():
        if _unit(module) == "steps":
            assert not {d for d in deps if _unit(d) == "steps"}, (module, deps)


def test_the_top_level_holds_the_steps_and_the_shared_modules_alone():
    top = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert top == STEPS | SHARED
    assert len(top) + 1 <= 18
    for package in (p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "templates" and p.name[0] != "_"):
        assert (package / "__init__.py").is_file(), package


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_is_over_the_limit(module):
    lines = len(_modules()[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module}: {lines} lines (split it by what it does)"


def test_the_graph_reads_function_level_and_package_imports(tmp_path):
    (tmp_path / "etl" / "pkg").mkdir(parents=True)
    (tmp_path / "etl" / "a.py").write_text("def f():\n    from etl.pkg import b\n")
    (tmp_path / "etl" / "pkg" / "b.py").write_text("from etl import a\n")
    modules = {"etl.a": tmp_path / "etl" / "a.py", "etl.pkg.b": tmp_path / "etl" / "pkg" / "b.py"}
    graph = _graph(modules)
    assert graph == {"etl.a": {"etl.pkg.b"}, "etl.pkg.b": {"etl.a"}} and _cycle(graph)


#: What the UI plugin, the release reader and the inbox watcher (in the triggerer) import: they
#: run in Airflow's long-lived processes and must not load the numerical stack.
LIGHT = ("breast_cancer_ui", "etl.settings", "etl.releases.registry", "etl.ui.history", "etl.ui.app", "etl.releases.wording", "etl.storage.inbox",
         "etl.orchestration.triggers", "etl.runtime.progress", "etl.runtime.executor")
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
