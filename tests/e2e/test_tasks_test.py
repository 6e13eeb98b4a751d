"""``airflow tasks test`` for each task in order, on a date never run before."""

import json
import re

import pytest

from tests.conftest import AIRFLOW, DAG_ID, run_command

pytestmark = pytest.mark.airflow_cli

ORDER = ["ensure_results_dir", "load_data", "preprocess_data", "train_model", "evaluate_model",
         "save_results", "upload_results"]


def _tasks_test(task, date, env):
    proc = run_command([AIRFLOW, "tasks", "test", DAG_ID, task, date], env=env)
    log = proc.stdout + proc.stderr
    # `airflow tasks test` exits 0 even when the task fails: the state is in the log.
    states = re.findall(r"new_state=(\w+)", log)
    assert proc.returncode == 0, log[-3000:]
    return states[-1] if states else None, log


def test_each_task_in_order_on_a_fresh_date(airflow_db, env, tmp_path):
    date = "2024-05-06"
    state, log = _tasks_test("train_model", date, env)
    assert state == "failed"
    run = tmp_path / "results" / "runs" / "2024-05-06T000000Z"
    assert f"missing input {run} (written by task 'ensure_results_dir': run it first)" in log

    for task in ORDER:
        state, log = _tasks_test(task, date, env)
        assert state == "success", f"{task}:\n{log[-3000:]}"
        if task == "load_data":
            state, log = _tasks_test("train_model", date, env)
            assert state == "failed"
            assert f"missing input {run / 'train.csv'} (written by task 'preprocess_data': run it first)" in log

    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert 0.9 <= metrics["accuracy"] <= 1.0
    assert (tmp_path / "uploads" / "2024-05-06T000000Z" / "model.pkl").is_file()
