"""
# Breast cancer diagnosis: confirmed outcomes

Joins the confirmed diagnoses of scored cases (pathology results, arriving days or weeks after
the prediction) to the predictions that scored them, and tracks each release against its
promise.

**Scheduled on the outcomes-inbox asset (the outcomes inbox folder)**: drop a CSV of `id, diagnosis` (M or
B; optionally `date`) into the outcomes inbox (`[outcomes] inbox`, default `data/outcomes/`);
its watcher claims it and starts a run. One mapped `record_outcomes` task per file validates it
into the ledger (`results/monitoring/outcomes/`); a bad file moves to `rejected/` with a
one-line reason. `update_monitoring` then recomputes, per release, per batch and per calendar
month: cases confirmed, caught / malignant and cleared / benign with exact intervals, PPV, the
Brier score and a calibration table (`results/monitoring/releases/<release>.json`), and raises
the **alarm** (through `[alerts]`, and on the Model page) when a release's realized sensitivity
is shown below its target or its calibration has moved. Past `[outcomes] retrain_min_cases` new
confirmed cases, `grow_training_data` writes the next version of the training data
(`results/datasets/`) and updates the training-data asset (`results/datasets/current.json`): the training DAG
runs on it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from etl.catalog import OUTCOMES_DAG_ID
from etl.orchestration import assets, tasks
from etl.settings import load_settings

settings = load_settings()

with DAG(
    dag_id=OUTCOMES_DAG_ID,
    description="Join confirmed diagnoses to their predictions; track each release; grow the training data",
    doc_md=__doc__,
    schedule=[assets.outcomes_asset(settings)],
    start_date=datetime(2020, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,  # one run records the queue at a time; files arriving meanwhile wait for the next
    tags=["ml", "breast-cancer", "monitoring"],
    default_args=tasks.default_args(settings),  # retries, time limit, [alerts] failure alert
) as dag:
    claim = PythonOperator(task_id="claim_outcomes", python_callable=tasks.claim_outcomes,
                           doc_md=tasks.claim_outcomes.__doc__)
    record = PythonOperator.partial(
        task_id="record_outcomes",
        python_callable=tasks.record_outcomes,
        doc_md=tasks.record_outcomes.__doc__,
        map_index_template="{{ task.op_kwargs['path'].rsplit('/', 1)[-1] }}",
    ).expand(op_kwargs=claim.output)
    # A rejected file fails only its own task: the others still count.
    update = PythonOperator(task_id="update_monitoring", python_callable=tasks.update_monitoring,
                            doc_md=tasks.update_monitoring.__doc__, trigger_rule="all_done",
                            inlets=[assets.scored_batches(settings)], outlets=[assets.monitoring(settings)])
    grow = PythonOperator(task_id="grow_training_data", python_callable=tasks.grow_training_data,
                          doc_md=tasks.grow_training_data.__doc__,
                          outlets=[assets.training_data(settings)])  # an event only when a version is written
    record >> update >> grow
