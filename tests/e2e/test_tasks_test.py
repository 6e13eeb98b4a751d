"""``airflow tasks test`` for each task in order, on a date never run before."""

import json
import os
import re
from pathlib import Path

import pytest

from tests.conftest import AIRFLOW, CANDIDATES, DAG_ID, dag_test, run_command, with_config

pytestmark = pytest.mark.airflow_cli

#: The main path, one chain (nested_cv runs beside it, from load_data to evaluate_model).
ORDER = ["ensure_results_dir", "load_data", "preprocess_data", "train_model", "select_model",
         "evaluate_model", "quality_gate", "make_report", "save_results", "upload_results"]
#: This test enables two candidates (each `airflow tasks test` costs seconds): two map indexes.
TWO_CANDIDATES = f"[candidates]\nenabled = {json.dumps(CANDIDATES[:2])}\n"
#: The tests' settings (tests/fast.toml) run two outer folds of nested_cv: two more map indexes.
STEPS = [(task, None) for task in ORDER[:3]] + [("train_model", 0), ("train_model", 1)] + [
    ("nested_cv", 0), ("nested_cv", 1)] + [(task, None) for task in ORDER[4:]]


def _tasks_test(task, date, env, map_index=None):
    extra = ["--map-index", str(map_index)] if map_index is not None else []
    proc = run_command([AIRFLOW, "tasks", "test", DAG_ID, task, date, *extra], env=env)
    log = proc.stdout + proc.stderr
    # `airflow tasks test` exits 0 even when the task fails: the state is in the log.
    states = re.findall(r"new_state=(\w+)", log)
    assert proc.returncode == 0, log[-3000:]
    return states[-1] if states else None, log


@pytest.mark.timeout(2400)  # 12 airflow processes, 4.5 min inside the suite on an idle machine: room for twice as slow
def test_each_task_in_order_on_a_fresh_date(airflow_db, env, tmp_path, monkeypatch):
    """Every task, once, through the CLI, in order (a mapped task at its first map index, with
    ``--map-index``; its other instance by its callable in-process, as the CLI calls it); a task
    run before its inputs exist fails in one line naming the task that writes them (every other
    such case: tests/etl/test_catalog.py, in-process)."""
    (tmp_path / "two.toml").write_text(TWO_CANDIDATES)
    env = with_config(env, tmp_path / "two.toml")
    date = "2024-05-06"
    state, log = _tasks_test("evaluate_model", date, env)
    assert state == "failed"
    run = tmp_path / "results" / "runs" / "2024-05-06T000000Z"
    assert f"missing input {run} (written by task 'ensure_results_dir': run it first)" in log

    dag = None
    for task, map_index in STEPS:
        if map_index:  # the second instance of a mapped task
            dag = dag or _dag_in_process(env, monkeypatch)
            _call_task(task, json.loads((run / "run.json").read_text()), dag, **_mapped(task, map_index))
            continue
        state, log = _tasks_test(task, date, env, map_index)
        assert state == "success", f"{task}:\n{log[-3000:]}"

    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert 0.9 <= metrics["accuracy"] <= 1.0
    assert (tmp_path / "uploads" / "2024-05-06T000000Z" / "model.pkl").is_file()


def _dag_in_process(env: dict, monkeypatch):
    """The training DAG parsed in this process, with ``env``'s run settings set for the test."""
    from airflow.dag_processing.dagbag import DagBag

    for name in ("RESULTS_DIR", "UPLOAD_URI", "SCORING_INBOX", "PIPELINE_CONFIG"):
        monkeypatch.setenv(name, env[name])
    dag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags")).get_dag(DAG_ID)
    assert dag is not None and dag.params["random_state"] is not None
    return dag


def _mapped(task: str, map_index: int | None) -> dict:
    """The mapped argument of ``task``'s instance ``map_index``."""
    if task == "train_model":
        return {"candidate": CANDIDATES[map_index]}
    return {"fold": map_index} if task == "nested_cv" else {}


def _call_task(task: str, record: dict, dag, **mapped) -> None:
    """Task ``task``'s callable (``etl.orchestration.tasks``), in this process, as Airflow calls it in the DAG
    run ``record`` (its run folder's ``run.json``), with no XComs: what ``airflow tasks test`` on
    that date does."""
    from datetime import datetime
    from types import SimpleNamespace

    from etl.orchestration import tasks

    def at(value):
        return datetime.fromisoformat(value) if value else None

    context = {
        "dag": dag, "params": {k: dag.params[k] for k in dag.params}, "run_id": record["run_id"],
        "dag_run": SimpleNamespace(dag_id=DAG_ID, logical_date=at(record["logical_date"]), run_id=record["run_id"],
                                   conf={}, start_date=at(record["started_at"])),
        "ti": SimpleNamespace(task_id=task, map_index=-1, try_number=1, xcom_pull=lambda task_ids: None),
        **mapped,
    }
    getattr(tasks, task)(**context)


@pytest.mark.timeout(1200)  # 1 airflow process, a DAG run and 13 task calls in-process, about 1 min idle
def test_rerunning_each_task_is_idempotent_and_a_changed_model_is_refused(airflow_db, env, tmp_path, monkeypatch):
    """After a whole run (``dag.test()`` in-process, as ``airflow dags test`` runs it), rerunning
    any task changes nothing: each task's callable, in-process, as ``airflow tasks test`` calls
    it on the same date (the CLI itself is the test above's). Then a model changed after
    ``select_model`` is refused by ``airflow tasks test``, once, without a retry."""
    (tmp_path / "two.toml").write_text(TWO_CANDIDATES)
    env = with_config(env, tmp_path / "two.toml")
    date = "2024-05-07"
    run = tmp_path / "results" / "runs" / "2024-05-07T000000Z"
    state, tasks = dag_test(DAG_ID, date, env)
    assert state == "success", tasks

    # Rerunning any task is idempotent: same files, same bytes, the same single release.
    dag = _dag_in_process(env, monkeypatch)
    before = _snapshot(tmp_path)
    for task, map_index in STEPS:
        mapped = _mapped(task, map_index)
        _call_task(task, json.loads((run / "run.json").read_text()), dag, **mapped)
        assert _snapshot(tmp_path) == before, f"rerunning {task} {mapped} changed files"
    assert len(list((tmp_path / "results" / "published").iterdir())) == 1

    # A model changed after select_model wrote it is refused, once, without a retry.
    (run / "model.skops").write_bytes((run / "model.skops").read_bytes() + b"\0")
    state, log = _tasks_test("evaluate_model", date, env)
    assert state == "failed"
    assert re.search(rf"{run / 'model.skops'}: SHA-256 \w+\.\.\. does not match \w+\.\.\. recorded in "
                     rf"{run / 'model.skops.sha256'}; the file was changed after it was written, refusing to use it", log)
    assert "up_for_retry" not in log
    failure = "results/runs/2024-05-07T000000Z/failures/evaluate_model.json"  # for the run's Report tab
    after = _snapshot(tmp_path)
    assert json.loads(after.pop(failure))["error"].endswith("refusing to use it")
    assert after == {**before, "results/runs/2024-05-07T000000Z/model.skops": (run / "model.skops").read_bytes()}


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under results/ and uploads/ (links as their targets)."""
    files = {}
    for path in sorted(root.glob("*/**/*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            files[rel] = os.readlink(path).encode()
        elif path.is_file() and rel.split("/")[0] in ("results", "uploads"):
            files[rel] = path.read_bytes()
    return files
