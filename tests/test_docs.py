"""The README and docs/ cannot drift from the code: every command they show is checked against
the code (``--help`` of the step, the Makefile's targets, the DAG's tasks), the Python example is
run, and the README stays one page that links every docs/ page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from etl.settings import load_settings
from tests.conftest import PROJECT_ROOT, inputs_of, module_help
from tests.e2e.test_tasks_test import ORDER

README = PROJECT_ROOT / "README.md"
PAGES = sorted((PROJECT_ROOT / "docs").glob("*.md"))
DOCS = [README, *PAGES]


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _code_blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"^ *```{language}\n(.*?)^ *```", _text(path), flags=re.S | re.M)


def _shell_lines(path: Path) -> list[str]:
    """The commands of the file's bash blocks, comments dropped, continuations joined."""
    lines = []
    for block in _code_blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _all_commands() -> list[tuple[str, str]]:
    """(file name, command) for every shell command and every inline `python -m etl.*` / `make`
    mention in the README and docs/."""
    found = []
    for path in DOCS:
        found += [(path.name, line) for line in _shell_lines(path)]
        found += [(path.name, m) for m in re.findall(r"`((?:python -m etl\.|make )[^`]+)`", _text(path))]
    return found


def test_the_readme_is_one_page_linking_every_docs_page():
    text = _text(README)
    assert len(text.splitlines()) <= 300
    for page in PAGES:
        assert f"(docs/{page.name})" in text, f"README does not link docs/{page.name}"
        assert "(../README.md)" in _text(page), f"docs/{page.name} does not link back"


def test_relative_links_resolve():
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", _text(path)):
            assert (path.parent / target).exists(), f"{path.name}: broken link {target}"


STEP_COMMANDS = sorted({(name, cmd) for name, cmd in _all_commands()
                        if re.search(r"python -m etl\.[a-z_]+", cmd)})


@pytest.mark.parametrize(("page", "command"), STEP_COMMANDS)
def test_every_step_command_uses_flags_the_step_has(page, command):
    module = re.search(r"python -m (etl(?:\.[a-z_]+)*)", command).group(1)
    if module == "etl":  # `python -m etl.<step>` as a pattern
        return
    help_text = module_help(module)
    flags = re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", command.split(module, 1)[1])
    for flag in flags:
        assert re.search(rf"(?<![\w-]){re.escape(flag)}\b", help_text), f"{page}: {module} has no {flag}"


def test_every_make_target_shown_exists():
    makefile = _text(PROJECT_ROOT / "Makefile")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    shown = {m for _, cmd in _all_commands() for m in re.findall(r"(?:^|[;&(] *)make ([a-z][a-z-]*)", cmd)}
    assert shown, "no make command found"
    assert shown <= targets, f"make targets shown but not in the Makefile: {sorted(shown - targets)}"


def test_the_task_by_task_recipe_runs_every_task_of_the_dag():
    """The README's `airflow tasks test` loop: every task, in order, each mapped task with one map
    index per candidate / outer fold of the shipped settings."""
    (block,) = ["\n".join(_shell_lines(README)[i:]) for i, line in enumerate(_shell_lines(README))
                if line.startswith("DAG=")]
    tasks, map_indexes = [], {}
    for values, body in re.findall(r"for \w+ in ([^;]+);\s*do\s+(.*?);?\s*done", block, flags=re.S):
        assert "airflow tasks test $DAG" in body, body
        if "--map-index" in body:
            task = re.search(r"airflow tasks test \$DAG (\w+)", body).group(1)
            tasks.append(task)
            map_indexes[task] = values.split()
        else:
            tasks += values.split()
    settings = load_settings(PROJECT_ROOT / "pipeline.toml")
    main_path = [t for t in tasks if t != "nested_cv"]
    assert main_path == ORDER
    assert tasks.index("nested_cv") < tasks.index("evaluate_model")
    assert map_indexes["train_model"] == [str(i) for i in range(len(settings.candidates))]
    assert map_indexes["nested_cv"] == [str(i) for i in range(settings.nested_cv.count)]


def test_the_python_example_runs(tmp_path, evaluated_runs, monkeypatch):
    import shutil

    from etl.releases.registry import publish

    shutil.copytree(evaluated_runs["new"], tmp_path / "results" / "runs" / "r")
    publish(inputs_of(tmp_path / "results" / "runs" / "r"), tmp_path / "results")
    (tmp_path / "data").mkdir()
    shutil.copy(PROJECT_ROOT / "data" / "wdbc.csv", tmp_path / "data" / "wdbc.csv")
    monkeypatch.chdir(tmp_path)
    (example,) = _code_blocks(README, "python")
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert len(namespace["p_malignant"]) == 569
    assert 0.8 < (namespace["predicted_malignant"] == (namespace["pd"].read_csv("data/wdbc.csv")["diagnosis"] == "M")).mean()


def test_the_summary_printed_by_make_run_has_the_readme_layout(evaluated_runs):
    from etl.runtime.summary import format_summary
    from etl.storage import read_json

    terminal = re.search(r"```\n(Airflow's log: .*?)```", _text(README), flags=re.S).group(1)
    assert len(terminal.splitlines()) < 30  # what make run prints: a line per task, the summary
    sample = terminal[terminal.index("Promise: "):]
    printed = format_summary(read_json(evaluated_runs["new"] / "metrics.json"), "/r", "rel", "ab" * 32)

    def shape(text: str) -> list[str]:  # each line's words, numbers and paths blanked
        return [re.sub(r"[\d.]+|/\S*|\(release [^)]+\)", "#", line).split()[0] for line in text.splitlines()]

    assert shape(printed)[-2:] == shape(sample)[-3:-1]  # the model and artifacts lines
    from etl.releases.wording import guarantee_line

    guarantee = guarantee_line(read_json(evaluated_runs["new"] / "metrics.json"))
    assert "called malignant" in guarantee  # both promises, one sentence each
    assert printed.splitlines()[0] == sample.splitlines()[0] == f"Promise: {guarantee}"
    assert "Published artifacts (release rel, signed with key abababababab..., verified)" in printed
    assert "metrics.json, model.pkl, scaler.pkl, model_card.md, manifest.json" in printed


def test_the_cluster_check_does_not_rely_on_assert():
    """The cluster's checks (deploy/checks.py, run by deploy/cluster.py) must hold under
    ``python -O`` too, which strips ``assert``."""
    import ast

    for name in ("cluster.py", "checks.py", "services.py"):
        tree = ast.parse(_text(PROJECT_ROOT / "deploy" / name))
        asserts = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
        assert not asserts, f"deploy/{name}: assert on line(s) {asserts}; use check()"


# -- the facts that drift: each said once in the code, checked wherever the docs repeat it ----------


def _requires_python() -> tuple[str, str]:
    """pyproject's ``requires-python`` as the first and last supported versions (``3.11``, ``3.13``)."""
    low, high = re.search(r'requires-python = ">=3\.(\d+),<3\.(\d+)"', _text(PROJECT_ROOT / "pyproject.toml")).groups()
    return f"3.{low}", f"3.{int(high) - 1}"


def test_the_python_range_is_the_one_pyproject_requires():
    low, last = _requires_python()
    said = {(path.name, m) for path in [*DOCS, PROJECT_ROOT / "Makefile"]
            for m in re.findall(r"Python (3\.\d+ ?(?:-|to) ?3\.\d+)", _text(path))}
    assert ("README.md", f"{low}-{last}") in said and ("Makefile", f"{low}-{last}") in said
    assert {m.replace(" to ", "-") for _, m in said} == {f"{low}-{last}"}, said
    assert f'target-version = "py{low.replace(".", "")}"' in _text(PROJECT_ROOT / "pyproject.toml")


def _spoken(candidate: str) -> str:
    return {"svm": "SVM"}.get(candidate, candidate.replace("_", " "))


def test_the_training_dags_doc_names_the_enabled_candidates():
    from dags.pipeline_dag import dag

    settings = load_settings(PROJECT_ROOT / "pipeline.toml", environ={})
    named = re.search(r"Trains the enabled candidate classifiers \(([^)]*)\)", dag.doc_md).group(1)
    assert named.split(", ") == [_spoken(c) for c in settings.candidates]


def test_the_docs_count_the_dags_there_are():
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    count = sum("with DAG(" in _text(path) for path in (PROJECT_ROOT / "dags").glob("*.py"))
    assert f"{words[count].capitalize()} DAGs" in _text(README)
    for path in DOCS:
        for said in re.findall(r"\b(one|two|three|four|five) DAGs\b", _text(path), flags=re.I):
            assert said.lower() == words[count], f"{path.name}: {said} DAGs, there are {count}"


def test_the_layout_names_every_package_and_every_path_the_docs_name_exists():
    layout = _text(PROJECT_ROOT / "docs" / "project.md")
    etl = PROJECT_ROOT / "etl"
    for package in sorted(p.name for p in etl.iterdir() if (p / "__init__.py").is_file()):
        assert re.search(rf"^│   ├── {package}/ ", layout, flags=re.M), f"docs/project.md: no line for etl/{package}/"
    for shared in ("settings.py", "catalog.py", "runner.py"):
        assert f"├── {shared} " in layout
    for path in DOCS:
        for named in re.findall(r"(?<![\w/.])(etl/[\w/]+\.(?:py|j2))", _text(path)):
            assert (PROJECT_ROOT / named).is_file(), f"{path.name} names {named}, which does not exist"


def test_the_readmes_parameters_are_the_declarations():
    from etl.settings import RUN_PARAMS

    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", _text(README), flags=re.M))
    configured = load_settings(PROJECT_ROOT / "pipeline.toml", environ={})
    for name, param in RUN_PARAMS.items():
        if param.default is None:  # the configured setting's value
            expected = f"empty: `{getattr(configured, param.section).data_path.relative_to(PROJECT_ROOT)}`"
        else:
            expected = f"`{param.default}`"
        assert rows[name].strip() == expected, (name, rows[name])


#: Import names that differ from their distribution's (``pyproject.toml``'s dependencies).
DISTRIBUTIONS = {"airflow": "apache-airflow", "sklearn": "scikit-learn", "markdown_it": "markdown-it-py",
                 "jinja2": "Jinja2", "markupsafe": "MarkupSafe", "in_toto_attestation": "in-toto-attestation",
                 "google": "protobuf", "mlflow": "mlflow-skinny"}


def test_every_library_the_code_imports_is_a_declared_dependency():
    import ast
    import sys

    imported = set()
    for path in (PROJECT_ROOT / "etl").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "etl"}
    block = re.search(r"^dependencies = \[(.*?)^\]", _text(PROJECT_ROOT / "pyproject.toml"), flags=re.S | re.M).group(1)
    declared = {re.split(r"[<>=\[ ]", d)[0].lower() for d in re.findall(r'^\s*"([^"]+)"', block, flags=re.M)}
    declared |= {line.split()[0].lower() for line in _text(PROJECT_ROOT / "requirements-nodeps.txt").splitlines()
                 if line.strip() and not line.startswith("#")}
    missing = {m for m in third_party if DISTRIBUTIONS.get(m, m).lower() not in declared}
    assert missing == set(), f"imported by etl/ but not in pyproject.toml's dependencies: {sorted(missing)}"


#: Old names docs/project.md's "What moved" gives on purpose.
MOVED = {"etl.config", "etl.summary", "etl.releases"}


def test_every_etl_name_the_docs_give_exists():
    """``etl.x.y`` in the README and docs/ is a module, or a name in one (a module moved, a
    function renamed: the docs follow)."""
    import importlib

    def is_module(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a name inside a module, not a submodule
            return False

    for path in DOCS:
        for name in set(re.findall(r"`(etl\.[A-Za-z_.]*[A-Za-z_])`", _text(path))) - MOVED:
            parts = name.split(".")
            module = next(".".join(parts[:i]) for i in range(len(parts), 0, -1) if is_module(".".join(parts[:i])))
            obj = importlib.import_module(module)
            for attr in parts[len(module.split(".")):]:
                assert hasattr(obj, attr), f"{path.name}: {name} does not exist"
                obj = getattr(obj, attr)
