"""A failure in any task, an exception or a killed process, never changes the published results;
a clean rerun of the same run then succeeds.

Real ``airflow dags test`` runs; the fault comes from ``tests/faults/airflow_local_settings.py``
(an Airflow task policy), so the DAG and the etl code run unchanged.
"""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from etl.releases import current_release, publish, release_is_intact
from tests.conftest import AIRFLOW, DAG_ID, PROJECT_ROOT, run_command, with_config
from tests.e2e.test_tasks_test import ORDER, TWO_CANDIDATES

pytestmark = pytest.mark.airflow_cli

FAULTS = PROJECT_ROOT / "tests" / "faults"
PUBLISHED = ("metrics.json", "model.pkl", "scaler.pkl", "manifest.json")


def _published(results: Path) -> dict[str, bytes]:
    return {name: (results / name).read_bytes() for name in PUBLISHED} | {
        "current": os.readlink(results / "current").encode()
    }


@pytest.fixture
def published_before(tmp_path, evaluated_runs) -> tuple[Path, dict[str, bytes]]:
    """A results folder where an earlier, different model (C=0.1 on the small data) is published."""
    results = tmp_path / "results"
    shutil.copytree(evaluated_runs["old"], results / "runs" / "earlier")
    publish(results / "runs" / "earlier", results)
    return results, _published(results)


@pytest.fixture
def fault_env(env, tmp_path) -> dict[str, str]:
    """One retry, one second apart: an I/O error is retried once, then the task fails. Two
    candidates (train_model still mapped) and fewer bootstrap resamples: 36 DAG runs here."""
    config = tmp_path / "fast-retries.toml"
    config.write_text("[airflow]\nretries = 1\nretry_delay_seconds = 1\n" + TWO_CANDIDATES
                      + "[evaluation]\nbootstrap_resamples = 50\n")
    return with_config(env, config)


@pytest.mark.parametrize("kind", ["error", "kill"])
@pytest.mark.parametrize("task", ORDER)
def test_a_failing_task_leaves_the_published_results_and_a_rerun_succeeds(
    airflow_db, published_before, fault_env, task, kind
):
    results, before = published_before
    date = f"2025-{1 + ORDER.index(task):02d}-{1 + ['error', 'kill'].index(kind):02d}"
    run = results / "runs" / f"{date}T000000Z"

    broken = {**fault_env, "PYTHONPATH": str(FAULTS), "ETL_FAULT": f"{task}:{kind}"}
    proc = run_command([AIRFLOW, "dags", "test", DAG_ID, date], env=broken)
    log = proc.stdout + proc.stderr
    if kind == "kill":
        assert proc.returncode == -9, log[-3000:]  # the process running the task is gone
    else:
        assert proc.returncode == 1, log[-3000:]
        assert f"OSError: injected fault in task {task}" in log
        # An I/O error is retried (once, by the test config), then the run fails.
        tries = 2 * (2 if task == "train_model" else 1)  # train_model: each mapped candidate
        assert len(re.findall(rf"starting task_id={task}\b", log)) == tries, log[-3000:]
        assert not any(f"starting task_id={later} " in log for later in ORDER[ORDER.index(task) + 1:])
        # The failure is recorded in the run folder for the run's Report tab (etl.tasks.record_failure).
        records = [json.loads(p.read_text()) for p in sorted((run / "failures").glob(f"{task}*.json"))]
        assert records and all(r["task_id"] == task for r in records), records
        assert all(r["error"] == f"injected fault in task {task}" for r in records), records

    if task == "upload_results":  # published before the failure: the run's own release, complete
        assert release_is_intact(current_release(results))
        assert current_release(results).name.startswith(run.name)
    else:
        assert _published(results) == before

    proc = run_command([AIRFLOW, "dags", "test", DAG_ID, date], env=fault_env)  # clean rerun
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    release = current_release(results)
    assert release.name.startswith(run.name) and release_is_intact(release)
    assert json.loads((results / "manifest.json").read_text())["run"]["run_key"] == run.name
    assert not list(run.glob(".*.tmp"))  # leftovers of the killed write are gone
    assert not list(run.glob("failures/*.json"))  # the rerun task cleared its failure record
    uploaded = fault_env["UPLOAD_URI"] + f"/{run.name}"
    for name in PUBLISHED:
        assert Path(uploaded, name).read_bytes() == (results / name).read_bytes()
