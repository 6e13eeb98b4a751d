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
    module = re.search(r"python -m (etl\.[a-z_]+)", command).group(1)
    if module == "etl.":  # `python -m etl.<step>` as a pattern
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
    printed = format_summary(read_json(evaluated_runs["new"] / "metrics.json"), "/r", "rel")

    def shape(text: str) -> list[str]:  # each line's words, numbers and paths blanked
        return [re.sub(r"[\d.]+|/\S*|\(release \S+\)", "#", line).split()[0] for line in text.splitlines()]

    assert shape(printed)[-2:] == shape(sample)[-3:-1]  # the model and artifacts lines
    guarantee = read_json(evaluated_runs["new"] / "metrics.json")["guarantee"]
    assert printed.splitlines()[0] == sample.splitlines()[0] == f"Promise: {guarantee}"
    assert "Published artifacts" in printed and "metrics.json, model.pkl, scaler.pkl, model_card.md, manifest.json" in printed


def test_the_cluster_check_does_not_rely_on_assert():
    """The cluster's checks (deploy/checks.py, run by deploy/cluster.py) must hold under
    ``python -O`` too, which strips ``assert``."""
    import ast

    for name in ("cluster.py", "checks.py", "services.py"):
        tree = ast.parse(_text(PROJECT_ROOT / "deploy" / name))
        asserts = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
        assert not asserts, f"deploy/{name}: assert on line(s) {asserts}; use check()"
