"""The DAG file parses cleanly, light and offline, into the documented task graph."""

import itertools
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from etl.catalog import OUTCOMES_DAG_ID
from etl.settings import load_settings
from tests.conftest import CANDIDATES, DAG_ID, PROJECT_ROOT, SCORING_DAG_ID
from tests.e2e.test_tasks_test import ORDER as TASKS


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    assert sorted(bag.dags) == sorted([DAG_ID, SCORING_DAG_ID, OUTCOMES_DAG_ID])
    return bag.dags[DAG_ID]


def test_tasks_and_their_order(dag):
    """The main path is one chain; nested_cv runs beside it, from load_data to evaluate_model."""
    assert sorted(t.task_id for t in dag.tasks) == sorted([*TASKS, "nested_cv"])
    for upstream, downstream in itertools.pairwise(TASKS):
        extra = {"nested_cv"} if upstream == "load_data" else set()
        assert dag.get_task(upstream).downstream_task_ids == {downstream} | extra
    assert dag.get_task(TASKS[-1]).downstream_task_ids == set()
    assert dag.get_task("nested_cv").upstream_task_ids == {"load_data"}
    assert dag.get_task("nested_cv").downstream_task_ids == {"evaluate_model"}


def test_each_task_calls_the_etl_step_of_its_name(dag):
    for task in dag.tasks:
        if task.task_id in ("train_model", "nested_cv"):  # mapped: tested below
            continue
        assert type(task).__name__ == "PythonOperator"
        assert task.python_callable.__module__ == "etl.orchestration.tasks"
        assert task.python_callable.__name__ == task.task_id
        assert task.doc_md


def test_train_model_is_mapped_over_the_enabled_candidates(dag):
    from etl.orchestration import tasks

    train = dag.get_task("train_model")
    assert type(train).__name__ == "MappedOperator"
    assert train.partial_kwargs["python_callable"] is tasks.train_model
    assert train.expand_input.value["op_kwargs"] == [{"candidate": name} for name in CANDIDATES]
    assert train.map_index_template == "{{ task.op_kwargs['candidate'] }}"


def test_nested_cv_is_mapped_over_the_outer_folds(dag):
    from etl.orchestration import tasks
    from etl.settings import load_settings

    nested = dag.get_task("nested_cv")
    assert type(nested).__name__ == "MappedOperator"
    assert nested.partial_kwargs["python_callable"] is tasks.nested_cv
    folds = load_settings().nested_cv.count
    assert folds >= 2 and nested.expand_input.value["op_kwargs"] == [{"fold": i} for i in range(folds)]


def test_settings(dag):
    # triggered by hand (the UI, the CLI), and by each new version of the grown training data
    (asset,) = dag.timetable.asset_condition.objects
    assert asset.name == asset.uri == _file_uri(load_settings().results_dir, "datasets/current.json")
    assert dag.catchup is False
    assert dag.start_date.tzinfo is not None
    assert set(dag.tags) == {"ml", "breast-cancer", "scikit-learn"}
    assert dag.doc_md and "# Breast cancer diagnosis" in dag.doc_md
    from etl.orchestration import alerts
    from etl.orchestration.tasks import record_failure

    settings = load_settings()
    for task in dag.tasks:
        if task.task_id == "train_model":  # mapped: its arguments are in partial_kwargs
            task = SimpleNamespace(**{k: task.partial_kwargs.get(k) for k in
                                      ("retries", "retry_delay", "on_failure_callback", "on_success_callback")})
        assert task.retries == settings.airflow.retries, task
        assert task.retry_delay.total_seconds() == settings.airflow.retry_delay_seconds
        assert task.on_failure_callback == [record_failure, alerts.on_task_failure], task
        assert not task.on_success_callback  # [alerts] on_success is off by default


def test_params_default_to_the_settings(dag):
    from etl.settings import load_settings

    s = load_settings()
    params = {k: dag.params[k] for k in dag.params}
    # every run parameter of etl.settings.RUN_PARAMS, defaulting to its section's value (the input:
    # empty, meaning the configured one)
    assert params == {**s.run_params, "data_path": None}


@pytest.mark.parametrize("results_dir", ["", "s3://pipeline-results/results"])
def test_parse_imports_no_heavy_library_and_opens_no_connection(results_dir):
    """Parse in a fresh interpreter whose sockets refuse to connect; with the results folder on
    S3 too (the cluster setup), whose file system is made only when a task uses it."""
    script = """
import json, socket, sys
def refuse(*a, **k):
    raise AssertionError("network access while parsing the DAG")
socket.socket.connect = refuse
socket.create_connection = refuse
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
heavy = sorted(m for m in ("pandas", "sklearn", "joblib", "pydrive2", "s3fs", "botocore") if m in sys.modules)
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": list(bag.dags), "heavy": heavy}))
"""
    proc = subprocess.run([sys.executable, "-c", script, str(PROJECT_ROOT / "dags")],
                          check=False, capture_output=True, text=True, timeout=120, env={**os.environ, "RESULTS_DIR": results_dir})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # An s3:// results root gives the assets s3:// URIs, which Airflow normalizes through the
    # Amazon provider's S3 asset handler: botocore, and nothing else.
    assert result["errors"] == {} and result["heavy"] == (["botocore"] if results_dir.startswith("s3://") else [])
    assert sorted(result["dags"]) == sorted([DAG_ID, SCORING_DAG_ID, OUTCOMES_DAG_ID])


def _file_uri(root, name: str = "") -> str:
    """An asset's URI (and name): the OpenLineage dataset of that file (etl.orchestration.lineage)."""
    return "file://" + os.path.abspath(os.path.join(str(root), name) if name else str(root))


def test_save_results_announces_the_published_model(dag):
    assert [a.uri for a in dag.get_task("save_results").outlets] == [_file_uri(load_settings().results_dir, "model.pkl")]
    assert all(not dag.get_task(t).outlets for t in TASKS if t != "save_results")


def test_the_scoring_dag_is_scheduled_on_the_watched_inbox():
    from airflow.dag_processing.dagbag import DagBag

    scoring = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags[SCORING_DAG_ID]
    assert sorted(t.task_id for t in scoring.tasks) == ["claim_batches", "score_batch"]
    assert scoring.get_task("claim_batches").downstream_task_ids == {"score_batch"}
    (asset,) = scoring.timetable.asset_condition.objects
    assert asset.name == asset.uri == _file_uri(os.environ["SCORING_INBOX"]) and asset.group == "breast_cancer"
    (watcher,) = asset.watchers
    kind, kwargs = watcher.trigger.serialize()
    assert kind == "etl.orchestration.triggers.InboxTrigger" and kwargs["inbox"] == os.environ["SCORING_INBOX"]
    score = scoring.get_task("score_batch")
    results = load_settings().results_dir
    assert [a.uri for a in score.inlets] == [_file_uri(results, "model.pkl")]
    assert [a.uri for a in score.outlets] == [_file_uri(results, "scoring")]
    assert scoring.max_active_runs == 1 and score.partial_kwargs["retries"] == 2


def test_the_outcomes_dag_is_scheduled_on_its_watched_inbox_and_starts_training():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags[OUTCOMES_DAG_ID]
    assert sorted(t.task_id for t in dag.tasks) == ["claim_outcomes", "grow_training_data", "record_outcomes",
                                                     "update_monitoring"]
    (asset,) = dag.timetable.asset_condition.objects
    assert asset.uri == _file_uri(load_settings().outcomes.inbox)
    (watcher,) = asset.watchers
    kind, kwargs = watcher.trigger.serialize()
    assert kind == "etl.orchestration.triggers.InboxTrigger" and kwargs["inbox"] == load_settings().outcomes.inbox
    update = dag.get_task("update_monitoring")
    assert update.trigger_rule == "all_done"  # a rejected file fails only its own task
    assert update.upstream_task_ids == {"record_outcomes"} and update.downstream_task_ids == {"grow_training_data"}
    assert [a.uri for a in dag.get_task("grow_training_data").outlets] == [
        _file_uri(load_settings().results_dir, "datasets/current.json")]
    assert [a.uri for a in update.outlets] == [_file_uri(load_settings().results_dir, "monitoring/summary.json")]
    assert dag.max_active_runs == 1
