"""OpenLineage for real: the three DAGs run by ``airflow dags test`` (each in a process of its
own, as Airflow runs tasks) with Airflow's OpenLineage provider configured the documented way
(``AIRFLOW__OPENLINEAGE__TRANSPORT``, the HTTP transport) to post to a receiver on 127.0.0.1:
one training run, one scoring run of a batch, one outcomes run that grows the training data. The
events name the files each task read and wrote (``etl.orchestration.lineage``), under the same
names from one run to the next, so the graph answers "which data trained the model that scored
this batch"."""

import json
import os
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from etl.catalog import OUTCOMES_DAG_ID
from tests.conftest import AIRFLOW, DAG_ID, SCORING_DAG_ID, run_command, with_config

pytestmark = [pytest.mark.airflow_cli, pytest.mark.timeout(900)]


def _dags_test(dag_id: str, date: str, env: dict[str, str]) -> None:
    proc = run_command([AIRFLOW, "dags", "test", dag_id, date], env=env, timeout=900)
    assert proc.returncode == 0 and "state=success" in proc.stdout + proc.stderr, proc.stderr[-3000:]


def _completed(posts: list[tuple[str, dict]]) -> dict[str, list[dict]]:
    """Each job's COMPLETE events (a mapped task's instances are one job), by job name."""
    jobs = defaultdict(list)
    for path, event in posts:
        assert path == "/api/v1/lineage", path
        if event.get("eventType") == "COMPLETE" and event["job"]["name"].count(".") == 1:
            jobs[event["job"]["name"]].append(event)
    return jobs


def _names(events: list[dict], side: str) -> set[str]:
    """The datasets of ``events``' inputs or outputs, as ``namespace:name``."""
    return {f"{d['namespace']}:{d['name']}" for e in events for d in e.get(side, [])}


def test_the_three_dags_report_the_files_they_read_and_wrote(airflow_db, tmp_path, webhook_server, shipped_csv):
    config = tmp_path / "lineage.toml"
    config.write_text("[outcomes]\nretrain_min_cases = 30\n")  # the 40 confirmed cases grow the data
    env = with_config({
        **os.environ, "RESULTS_DIR": str(tmp_path / "results"), "UPLOAD_URI": str(tmp_path / "uploads"),
        "SCORING_INBOX": str(tmp_path / "incoming"), "OUTCOMES_INBOX": str(tmp_path / "outcomes"),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "breast-cancer-tests",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "http", "url": f"http://127.0.0.1:{webhook_server.port}", "endpoint": "api/v1/lineage"}),
    }, config)
    results = tmp_path / "results"

    def file(path: Path) -> str:
        return f"file:{os.path.abspath(path)}"

    # 1. A training run publishes a release.
    _dags_test(DAG_ID, "2024-05-01", env)
    (release,) = (results / "published").iterdir()
    jobs = _completed(webhook_server.posts)
    assert file(shipped_csv) in _names(jobs[f"{DAG_ID}.load_data"], "inputs")
    published = {file(release / "model.pkl"), file(release / "model.skops"), file(results / "model.pkl")}
    assert published <= _names(jobs[f"{DAG_ID}.save_results"], "outputs")
    run = results / "runs" / "2024-05-01T000000Z"
    assert _names(jobs[f"{DAG_ID}.train_model"], "inputs") == {file(run / "data.parquet"), file(run / "train.parquet")}
    assert {file(run / "data.parquet"), file(run / "model.skops")} <= _names(jobs[f"{DAG_ID}.save_results"], "inputs")
    # each instance reports its own files only (one fold, one candidate)
    assert all(len(e["outputs"]) == 1 for e in jobs[f"{DAG_ID}.nested_cv"])
    assert all(len(e["outputs"]) == 3 for e in jobs[f"{DAG_ID}.train_model"])

    # 2. A batch is scored with it: the release's files are the same datasets.
    (tmp_path / "incoming").mkdir()
    cases = pd.read_csv(shipped_csv).head(40).assign(id=lambda d: d["id"] + 100_000)
    cases.drop(columns=["diagnosis"]).to_csv(tmp_path / "incoming" / "new-cases.csv", index=False)
    _dags_test(SCORING_DAG_ID, "2024-05-02", env)
    (batch,) = (results / "scoring").iterdir()
    jobs = _completed(webhook_server.posts)
    scored = jobs[f"{SCORING_DAG_ID}.score_batch"]
    assert published <= _names(scored, "inputs")
    assert file(tmp_path / "incoming" / "processed" / "new-cases.csv") in _names(scored, "inputs")
    assert {file(batch / "predictions.csv"), file(results / "scoring")} <= _names(scored, "outputs")

    # 3. Their confirmed diagnoses come back: recorded, monitored, and a new version of the data.
    (tmp_path / "outcomes").mkdir()
    cases[["id", "diagnosis"]].to_csv(tmp_path / "outcomes" / "pathology.csv", index=False)
    _dags_test(OUTCOMES_DAG_ID, "2024-05-03", env)
    jobs = _completed(webhook_server.posts)
    assert file(tmp_path / "outcomes" / "processed" / "pathology.csv") in _names(
        jobs[f"{OUTCOMES_DAG_ID}.record_outcomes"], "inputs")
    assert file(batch / "predictions.csv") in _names(jobs[f"{OUTCOMES_DAG_ID}.update_monitoring"], "inputs")
    grown = _names(jobs[f"{OUTCOMES_DAG_ID}.grow_training_data"], "outputs")
    assert {file(results / "datasets" / "v0001" / "data.csv"), file(results / "datasets" / "current.json")} <= grown
    assert file(shipped_csv) in _names(jobs[f"{OUTCOMES_DAG_ID}.grow_training_data"], "inputs")  # its parent

    # Which data trained the model that scored this batch: up the graph from its predictions.
    wrote_by = defaultdict(set)  # dataset -> the inputs of the jobs that wrote it
    for events in jobs.values():
        for event in events:
            for out in _names([event], "outputs"):
                wrote_by[out] |= _names([event], "inputs")
    seen, todo = set(), [file(batch / "predictions.csv")]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += wrote_by.get(name, ())
    assert {file(release / "model.skops"), file(run / "data.parquet"), file(shipped_csv)} <= seen
