"""
# Breast cancer diagnosis: scoring new cases

Scores every CSV that arrives in the scoring inbox (`[scoring] inbox` of `pipeline.toml`,
default `data/incoming/`) with the **published** model at its published threshold, and checks
each batch for drift against the training data the model was fitted on.

**Scheduled on the inbox asset (the inbox folder)**: its watcher, running in the triggerer, claims
new files into `queued/` and fires; the first task also claims any it finds, so a manual trigger
or `airflow dags test` works the same. One mapped `score_batch` task per file writes
`results/scoring/<file>-<hash>/predictions.csv` (`id`, `malignant_probability`, `predicted`,
`release`, `call`: benign / refer / malignant) and `report.json` (counts, share predicted malignant, the drift check), then moves the
file to `processed/`. A file that breaks the input contract moves to `rejected/` with a one-line
reason and fails only its own task. A drifted batch is still scored, flagged in its report and
announced through `[alerts]`.

A newly published model (the published-model asset (`results/model.pkl`)) scores the batches that
arrive after it; nothing is re-scored. Each prediction names the release that made it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from etl.catalog import SCORING_DAG_ID
from etl.orchestration import assets, tasks
from etl.settings import load_settings

settings = load_settings()

with DAG(
    dag_id=SCORING_DAG_ID,
    description="Score new cases with the published model; flag batches that drift",
    doc_md=__doc__,
    schedule=[assets.inbox_asset(settings)],
    start_date=datetime(2020, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,  # one run scores the queue at a time; files arriving meanwhile wait for the next
    tags=["ml", "breast-cancer", "scoring"],
    default_args=tasks.default_args(settings),  # retries, time limit, [alerts] failure alert
) as dag:
    claim = PythonOperator(task_id="claim_batches", python_callable=tasks.claim_batches,
                           doc_md=tasks.claim_batches.__doc__)
    score = PythonOperator.partial(
        task_id="score_batch",
        python_callable=tasks.score_batch,
        doc_md=tasks.score_batch.__doc__,
        inlets=[assets.published_model(settings)],
        outlets=[assets.scored_batches(settings)],
        map_index_template="{{ task.op_kwargs['path'].rsplit('/', 1)[-1] }}",
    ).expand(op_kwargs=claim.output)
