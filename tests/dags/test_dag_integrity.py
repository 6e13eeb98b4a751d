"""The DAG file parses cleanly, light and offline, into the documented task graph."""

import json
import subprocess
import sys

import pytest

from tests.conftest import DAG_ID, PROJECT_ROOT

TASKS = ["ensure_results_dir", "load_data", "preprocess_data", "train_model", "evaluate_model",
         "save_results", "upload_results"]


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    assert list(bag.dags) == [DAG_ID]
    return bag.dags[DAG_ID]


def test_tasks_and_their_order(dag):
    assert [t.task_id for t in dag.topological_sort()] == TASKS
    for upstream, downstream in zip(TASKS, TASKS[1:]):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    assert dag.get_task(TASKS[-1]).downstream_task_ids == set()


def test_each_task_calls_the_etl_step_of_its_name(dag):
    for task in dag.tasks:
        assert type(task).__name__ == "PythonOperator"
        assert task.python_callable.__module__ == "etl.tasks"
        assert task.python_callable.__name__ == task.task_id
        assert task.doc_md


def test_settings(dag):
    assert dag.schedule is None  # triggered by hand, from the UI or the CLI
    assert dag.catchup is False
    assert dag.start_date.tzinfo is not None
    assert set(dag.tags) == {"ml", "breast-cancer", "scikit-learn"}
    assert dag.doc_md and "# Breast cancer diagnosis" in dag.doc_md
    from etl import alerts
    from etl.config import load_settings

    settings = load_settings()
    for task in dag.tasks:
        assert task.retries == settings.retries, task.task_id
        assert task.retry_delay.total_seconds() == settings.retry_delay_seconds
        assert task.on_failure_callback == [alerts.on_task_failure], task.task_id
        assert not task.on_success_callback  # [alerts] on_success is off by default


def test_params_default_to_the_settings(dag):
    from etl.config import load_settings

    s = load_settings()
    params = {k: dag.params[k] for k in dag.params}
    assert params == {"data_path": None, "test_size": s.test_size, "random_state": s.random_state,
                      "C": s.C, "max_iter": s.max_iter}


def test_parse_imports_no_heavy_library_and_opens_no_connection():
    """Parse in a fresh interpreter whose sockets refuse to connect."""
    script = """
import json, socket, sys
def refuse(*a, **k):
    raise AssertionError("network access while parsing the DAG")
socket.socket.connect = refuse
socket.create_connection = refuse
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
heavy = sorted(m for m in ("pandas", "sklearn", "joblib", "pydrive2") if m in sys.modules)
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": list(bag.dags), "heavy": heavy}))
"""
    proc = subprocess.run([sys.executable, "-c", script, str(PROJECT_ROOT / "dags")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"errors": {}, "dags": [DAG_ID], "heavy": []}
