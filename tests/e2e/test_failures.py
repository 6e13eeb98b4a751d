"""A failure in any task, an I/O error or a killed process, never changes the published results;
the same run, resumed without the fault, then succeeds.

The fault comes from ``tests/faults/airflow_local_settings.py`` (an Airflow task policy), so
the DAG and the etl code run unchanged. A run whose process is killed is a real ``airflow dags
test``; the run with an I/O error in every attempt and the clean reruns are ``dag.test()`` in
this process. A rerun resumes the run as a person does in the UI (Clear on the failed task,
downstream included): the tasks that succeeded keep their results, the failed one and those
after it run again, over whatever the failure left in the run folder.
"""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from etl.releases.reader import current_release, release_is_intact
from etl.releases.registry import publish
from etl.storage.layout import TOP_FILES
from tests.conftest import (
    AIRFLOW,
    CANDIDATES,
    DAG_ID,
    PROJECT_ROOT,
    dag_test,
    inputs_of,
    run_command,
    succeeded_tasks,
    with_config,
)
from tests.e2e.test_tasks_test import ORDER, TWO_CANDIDATES

pytestmark = pytest.mark.airflow_cli

FAULTS = PROJECT_ROOT / "tests" / "faults"
PUBLISHED = TOP_FILES  # what users see at the top of results/
TWO_CANDIDATE_NAMES = CANDIDATES[:2]  # what TWO_CANDIDATES enables


def _published(results: Path) -> dict[str, bytes]:
    return {name: (results / name).read_bytes() for name in PUBLISHED} | {
        "current": os.readlink(results / "current").encode()
    }


@pytest.fixture
def published_before(tmp_path, evaluated_runs) -> tuple[Path, dict[str, bytes]]:
    """A results folder where an earlier, different model (C=0.1 on the small data) is published."""
    results = tmp_path / "results"
    shutil.copytree(evaluated_runs["old"], results / "runs" / "earlier")
    publish(inputs_of(results / "runs" / "earlier"), results)
    return results, _published(results)


@pytest.fixture
def fault_env(env, tmp_path) -> dict[str, str]:
    """One retry, one second apart: an I/O error is retried once, then the task fails. Two
    candidates (train_model still mapped) and fewer bootstrap resamples: 22 DAG runs here."""
    config = tmp_path / "fast-retries.toml"
    config.write_text("[airflow]\nretries = 1\nretry_delay_seconds = 1\n" + TWO_CANDIDATES
                      + "[evaluation]\nbootstrap_resamples = 50\n")
    return with_config(env, config)


def _fault_run(env: dict[str, str], date: str, task: str, kind: str) -> tuple[int, str]:
    broken = {**env, "PYTHONPATH": str(FAULTS), "ETL_FAULT": f"{task}:{kind}"}
    proc = run_command([AIRFLOW, "dags", "test", DAG_ID, date], env=broken)
    return proc.returncode, proc.stdout + proc.stderr


def _clean_rerun_publishes(results: Path, run: Path, env: dict[str, str], date: str) -> None:
    """The same run, resumed without the fault (its failed task and those after it run again),
    succeeds, publishes and uploads that run, whole. (In this process, ``dag.test()`` as
    ``airflow dags test`` runs it: the fault run before it is the one whose process matters.)"""
    state, tasks = dag_test(DAG_ID, date, env, resume=True)
    assert state == "success", tasks
    release = current_release(results)
    assert release.name.startswith(run.name) and release_is_intact(release)
    assert json.loads((results / "manifest.json").read_text())["run"]["run_key"] == run.name
    assert not list(run.glob(".*.tmp"))  # leftovers of a killed write are gone
    uploaded = env["UPLOAD_URI"] + f"/{run.name}"
    for name in PUBLISHED:
        assert Path(uploaded, name).read_bytes() == (results / name).read_bytes()


@pytest.mark.timeout(600)  # two DAG runs: about 80 s idle, room for a busy machine
@pytest.mark.parametrize("task", ORDER)
def test_an_io_error_then_a_killed_retry_leave_the_published_results_and_a_rerun_succeeds(
    airflow_db, published_before, fault_env, task
):
    """The task's first attempt raises an I/O error, which Airflow retries; the retry's process
    is killed mid-write (SIGKILL: a worker lost). Neither changes what is published, and a
    rerun of the run (resumed: the killed task and those after it) then succeeds."""
    results, before = published_before
    date = f"2025-{1 + ORDER.index(task):02d}-01"
    run = results / "runs" / f"{date}T000000Z"

    returncode, log = _fault_run(fault_env, date, task, "error-then-kill")
    assert returncode == -9, log[-3000:]  # the process running the retry is gone
    assert f"OSError: injected fault in task {task}" in log  # the first attempt's I/O error ...
    # ... was retried: train_model's mapped instances (one per candidate) each fail once, then
    # the first retry is killed.
    tries = len(TWO_CANDIDATE_NAMES) + 1 if task == "train_model" else 2
    assert len(re.findall(rf"starting task_id={task}\b", log)) == tries, log[-3000:]
    assert not any(f"starting task_id={later} " in log for later in ORDER[ORDER.index(task) + 1:])
    if task == "upload_results":  # published before the failure: the run's own release, complete
        assert release_is_intact(current_release(results))
        assert current_release(results).name.startswith(run.name)
    else:
        assert _published(results) == before
    # What the rerun keeps: every task before the killed one succeeded, the killed one did not.
    kept = succeeded_tasks(DAG_ID, date)
    assert set(ORDER[:ORDER.index(task)]) <= set(kept) and task not in kept, kept

    _clean_rerun_publishes(results, run, fault_env, date)


def _fault_policy():
    """The fault-injecting task policy of ``tests/faults/airflow_local_settings.py``, loaded as
    a module (Airflow's own loading of it needs its folder on ``PYTHONPATH`` at start-up)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fault_policy", FAULTS / "airflow_local_settings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.task_policy


@pytest.mark.timeout(600)
def test_an_io_error_in_every_attempt_fails_the_run_and_is_recorded_for_its_report(
    airflow_db, published_before, fault_env, monkeypatch
):
    """save_results (the step that publishes) fails in its attempt and its retry: the run fails,
    with the error recorded in the run folder for the run's Report tab (etl.orchestration.tasks.record_failure),
    and the published results unchanged; the clean rerun's task clears the record. (No process
    is killed here: the run is ``dag.test()`` in-process, with the same task policy set where
    Airflow calls it, ``airflow.settings.task_policy``.)"""
    import airflow.settings

    results, before = published_before
    task, date = "save_results", "2025-12-02"
    run = results / "runs" / f"{date}T000000Z"

    airflow_policy, faults = airflow.settings.task_policy, _fault_policy()
    with monkeypatch.context() as patched:
        patched.setattr(airflow.settings, "task_policy", lambda t: (airflow_policy(t), faults(t)))
        state, tasks = dag_test(DAG_ID, date, {**fault_env, "ETL_FAULT": f"{task}:error"})
    assert state == "failed", tasks
    assert tasks[task] == ("failed", 2)  # the I/O error retried once, then the task failed
    assert tasks["upload_results"][0] == "upstream_failed"
    records = [json.loads(p.read_text()) for p in sorted((run / "failures").glob("*.json"))]
    assert [(r["task_id"], r["error"]) for r in records] == [(task, f"injected fault in task {task}")], records
    assert _published(results) == before

    _clean_rerun_publishes(results, run, fault_env, date)
    assert not list(run.glob("failures/*.json"))  # the rerun task cleared its failure record
