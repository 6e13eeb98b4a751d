"""``airflow tasks test`` for each task in order, on a date never run before."""

import json
import os
import re
from pathlib import Path

import pytest

from tests.conftest import AIRFLOW, CANDIDATES, DAG_ID, run_command, with_config

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


@pytest.mark.timeout(2400)  # 16 airflow processes, 13 min inside the suite on an idle machine: room for twice as slow
def test_each_task_in_order_on_a_fresh_date(airflow_db, env, tmp_path):
    (tmp_path / "two.toml").write_text(TWO_CANDIDATES)
    env = with_config(env, tmp_path / "two.toml")
    date = "2024-05-06"
    state, log = _tasks_test("evaluate_model", date, env)
    assert state == "failed"
    run = tmp_path / "results" / "runs" / "2024-05-06T000000Z"
    assert f"missing input {run} (written by task 'ensure_results_dir': run it first)" in log

    for task, map_index in STEPS:
        state, log = _tasks_test(task, date, env, map_index)
        assert state == "success", f"{task}:\n{log[-3000:]}"
        if task == "load_data":
            state, log = _tasks_test("train_model", date, env, 0)
            assert state == "failed"
            assert f"missing input {run / 'train.parquet'} (written by task 'preprocess_data': run it first)" in log
        if task == "train_model" and map_index == 0:
            state, log = _tasks_test("select_model", date, env)
            assert state == "failed"  # the other candidates have not run yet
            assert f"missing input {run / 'candidates' / 'svm' / 'cv.json'} (written by task 'train_model'" in log

    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert 0.9 <= metrics["accuracy"] <= 1.0
    assert (tmp_path / "uploads" / "2024-05-06T000000Z" / "model.pkl").is_file()


@pytest.mark.timeout(2400)  # 14 airflow processes, 11 min inside the suite on an idle machine
def test_rerunning_each_task_is_idempotent_and_a_changed_model_is_refused(airflow_db, env, tmp_path):
    """After a whole run (``dags test``), ``tasks test`` of any task changes nothing. A separate
    test from the one above so that the two run on both pytest workers."""
    (tmp_path / "two.toml").write_text(TWO_CANDIDATES)
    env = with_config(env, tmp_path / "two.toml")
    date = "2024-05-07"
    run = tmp_path / "results" / "runs" / "2024-05-07T000000Z"
    proc = run_command([AIRFLOW, "dags", "test", DAG_ID, date], env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]

    # Rerunning any task is idempotent: same files, same bytes, the same single release.
    before = _snapshot(tmp_path)
    for task, map_index in STEPS[:4] + STEPS[5:]:  # every task; one candidate of train_model
        state, log = _tasks_test(task, date, env, map_index)
        assert state == "success", f"{task}:\n{log[-3000:]}"
        assert _snapshot(tmp_path) == before, f"rerunning {task} changed files"
    assert len(list((tmp_path / "results" / "published").iterdir())) == 1

    # A model changed after select_model wrote it is refused, once, without a retry.
    (run / "model.pkl").write_bytes((run / "model.pkl").read_bytes() + b"\0")
    state, log = _tasks_test("evaluate_model", date, env)
    assert state == "failed"
    assert re.search(rf"{run / 'model.pkl'}: SHA-256 \w+\.\.\. does not match \w+\.\.\. recorded in "
                     rf"{run / 'model.pkl.sha256'}; the file was changed after it was written, refusing to use it", log)
    assert "up_for_retry" not in log
    failure = "results/runs/2024-05-07T000000Z/failures/evaluate_model.json"  # for the run's Report tab
    after = _snapshot(tmp_path)
    assert json.loads(after.pop(failure))["error"].endswith("refusing to use it")
    assert after == {**before, "results/runs/2024-05-07T000000Z/model.pkl": (run / "model.pkl").read_bytes()}


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
