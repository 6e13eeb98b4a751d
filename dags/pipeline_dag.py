"""
# Breast cancer diagnosis: training pipeline

Trains the enabled candidate classifiers (logistic regression, SVM, soft vote) that
tell malignant from benign breast tumours on the Breast Cancer Wisconsin (Diagnostic) data,
one mapped `train_model` task per candidate; `select_model` picks one by repeated
cross-validation on the training split (the simplest within one standard error of the best)
and sets a sensitivity-first decision threshold with a margin for unseen patients. Beside it,
one mapped `nested_cv` task per outer fold runs that whole procedure on the rest of the data
and scores it on the fold: the **expected performance on unseen patients**. The winner is
evaluated on a held-out split, judged by the quality gate (`quality_gate`: floors, and the
published model compared on rows neither trained on), reported in `report.html` and, if the
gate passed (and, with `[release] approval = "required"`, a person approved it in
`approve_release`), published: `metrics.json`, `model.pkl`, `scaler.pkl`, the model card
`model_card.md` and their `manifest.json` to the `results/` folder, all at once or not at all.

Each task runs one step of the `etl` package (`etl/<step>.py`) and hands the next task **file
paths**, never data. A run works in its own folder, `results/runs/<run key>/`. Triggered by hand (the form
below, the CLI) and by each new version of the training data grown from confirmed outcomes
(the training-data asset (`results/datasets/current.json`), `dags/outcomes_dag.py`): such a run trains on it.

**Parameters** (the trigger form): `data_path` (empty: the configured CSV), `test_size`,
`random_state` (the seed of the models and the cross-validation), `C`, `max_iter` (the logistic
regression's); each declared once, with its default and bounds, in `etl/settings.py`. The
candidates and every other setting come from `pipeline.toml`.

Bad data or parameters fail a task at once, with one line in its log; I/O errors are retried.
A task that fails for good sends an e-mail and/or a webhook message when `[alerts]` is set.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, chain

from etl.catalog import TRAINING_DAG_ID as DAG_ID
from etl.orchestration import alerts, assets, pipeline, tasks
from etl.settings import load_settings

settings = load_settings()

with DAG(
    dag_id=DAG_ID,
    description="Train and evaluate a breast tumour classifier (WDBC), publish the artifacts",
    doc_md=__doc__,
    # Manual (the UI's form, the CLI), and each new version of the training data grown from
    # confirmed outcomes (dags/outcomes_dag.py): such a run trains on that version.
    schedule=[assets.training_data(settings)],
    # A run whose logical date is before start_date runs no task at all: keep it early.
    start_date=datetime(2020, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=4,
    tags=["ml", "breast-cancer", "scikit-learn"],
    default_args=tasks.default_args(settings),  # retries, time limit, [alerts] failure alert
    params=settings.trigger_form(),  # the run parameters (etl.settings.RUN_PARAMS)
) as dag:
    def step(callable_, **kwargs) -> PythonOperator:
        return PythonOperator(
            task_id=callable_.__name__, python_callable=callable_, doc_md=callable_.__doc__, **kwargs
        )

    train = PythonOperator.partial(
        task_id="train_model",
        python_callable=tasks.train_model,
        doc_md=tasks.train_model.__doc__,
        map_index_template="{{ task.op_kwargs['candidate'] }}",  # the UI shows the candidate's name
    ).expand(op_kwargs=pipeline.expand("train_model", settings))

    # The expected performance of the whole procedure: one outer fold of nested CV per task,
    # beside the main path (both start from load_data's table), summarised by evaluate_model.
    nested = PythonOperator.partial(
        task_id="nested_cv",
        python_callable=tasks.nested_cv,
        doc_md=tasks.nested_cv.__doc__,
        map_index_template="fold {{ task.op_kwargs['fold'] }}",
    ).expand(op_kwargs=pipeline.expand("nested_cv", settings))

    load, evaluate = step(tasks.load_data), step(tasks.evaluate_model)
    load >> nested >> evaluate
    path = [
        step(tasks.ensure_results_dir),
        load,
        step(tasks.preprocess_data),
        train,
        step(tasks.select_model),
        evaluate,
        step(tasks.quality_gate),
        step(tasks.make_report),
        step(tasks.save_results, outlets=[assets.published_model(settings)]),  # an event only when it publishes
        # The last task succeeding is the run succeeding: announce it if [alerts] says so.
        step(tasks.upload_results,
             on_success_callback=alerts.on_run_success if settings.alerts.on_success else None),
    ]
    if settings.release.required:  # [release] approval: a person signs the release off first
        from etl.orchestration.approval import ReleaseApproval

        path.insert(-2, ReleaseApproval(settings=settings))
    chain(*path)
