"""The Airflow task callables: each runs one etl step for the current DAG run.

A callable finds its run's folder (``results/runs/<run key>/``, see ``etl.storage.layout.run_key``),
takes each input the one way ``_input`` resolves it, calls the step and returns the paths it
wrote (its XCom). An input is named by its ``etl.storage.layout.RunPaths`` attribute, which is also the
key its producer returns it under: the producer's returned path in this run, or, where the run
has no XCom of it (``airflow tasks test`` on a fresh date makes a new run per call), the run
folder's file of that name.

Errors in the data or the parameters (``etl.catalog.PipelineError``) fail the task at once with
``AirflowFailException``: retrying cannot fix them. Other errors (I/O) are left to the task's
retries.

Imported when the DAG file is parsed: the step modules (pandas, scikit-learn) are imported
inside the callables, never here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from etl import catalog
from etl.catalog import (
    TRAINING_DAG_ID,
    MissingInputError,
    PipelineError,
    Skipped,
    first_line,
    refuse_unknown,
)
from etl.orchestration import lineage
from etl.orchestration.pipeline import Run, run_step
from etl.runner import Resolver
from etl.settings import Settings, load_settings
from etl.storage import Target, is_local, write_json
from etl.storage.layout import RunPaths, run_key

logger = logging.getLogger(__name__)

Outputs = dict[str, str]


def default_args(settings: Settings) -> dict[str, Any]:
    """The task defaults of both DAGs: retries for I/O errors (bad data and parameters are never
    retried, see ``_step``), a time limit, and the ``[alerts]`` failure alert (a no-op unless
    configured)."""
    from etl.orchestration import alerts

    return {
        "owner": "ml-platform",
        "retries": settings.airflow.retries,
        "retry_delay": timedelta(seconds=settings.airflow.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": [record_failure, alerts.on_task_failure],
    }


def record_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback`` of every task: write the failed task's one-line error into its
    run folder (``RunPaths.failure``), where the UI's Report tab and ``etl.ui.history`` find it.

    Runs once a task has failed for good (not on a retry). Never raises: a results folder that
    cannot be written (the very error that may have failed the task) is only logged.
    """
    ti = context.get("ti")
    try:
        path = _failure_record(context)
        if path is None:
            return
        record = {
            "task_id": ti.task_id,
            "map_index": getattr(ti, "map_index", -1),
            "try_number": getattr(ti, "try_number", None),
            "error": first_line(context.get("exception")) or "failed (no error message; see the task log)",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json(record, path)
    except Exception as exc:  # a callback must never hide the task's own failure
        logger.warning("could not record the failure in the run folder: %s", first_line(exc))


def _step(func: Callable[..., Outputs]) -> Callable[..., Outputs]:
    """Turn a ``PipelineError`` into a one-line, non-retried task failure.

    Airflow 3.3's ``ExceptionRetryPolicy`` (a ``RetryRule`` that fails ``PipelineError`` at once)
    would say "not retried" too, but the task runner consults it after logging the exception with
    its whole traceback through the step; raising ``AirflowFailException`` ``from None`` here
    keeps the refusal to the line a user reads, takes fewer lines than the policy, and works on
    every Airflow 3.
    """

    @functools.wraps(func)
    def wrapper(**context: Any) -> Outputs:
        try:
            outputs = func(**context)
        except PipelineError as exc:
            logger.error("%s", exc)
            raise AirflowFailException(str(exc)) from None
        _clear_failure(context)
        return outputs

    return wrapper


def run_folder(context: dict[str, Any], settings: Settings) -> RunPaths:
    """This DAG run's folder (its name is the run key)."""
    dag_run = context["dag_run"]
    return settings.layout.run(run_key(getattr(dag_run, "logical_date", None), context.get("run_id") or dag_run.run_id))


def _failure_record(context: dict[str, Any]) -> Target | None:
    """Where ``record_failure`` writes this task instance's failure (training runs only: the
    scoring DAG's runs have no run folder)."""
    ti, dag_run = context["ti"], context["dag_run"]
    if getattr(dag_run, "dag_id", TRAINING_DAG_ID) != TRAINING_DAG_ID:
        return None
    return run_folder(context, load_settings()).failure(ti.task_id, getattr(ti, "map_index", -1))


def _clear_failure(context: dict[str, Any]) -> None:
    """A task that succeeds (a retry, a cleared and rerun task) removes its old failure record,
    so the run's Report tab does not show a failure that was fixed."""
    try:
        record = _failure_record(context)
        if record is None:
            return
        if is_local(record):
            record.unlink(missing_ok=True)
        elif record.exists():
            record.unlink()
    except Exception as exc:  # the task's own outcome matters more than its record
        logger.warning("could not clear an old failure record: %s", first_line(exc))


def run_settings(context: dict[str, Any]) -> Settings:
    """The settings, after checking the run's conf names only parameters the DAG has."""
    refuse_unknown(getattr(context["dag_run"], "conf", None) or {}, context["dag"].params.keys())
    return load_settings()


def _from_xcom(context: dict[str, Any]) -> Resolver:
    """Where a producer's task instance returned a file's path in this DAG run (a mapped
    producer returns one value per instance: the one whose fields match, ``candidate`` or
    ``fold``), or None: ``airflow tasks test`` on a fresh date makes a new run per call, with
    no XComs, and the run folder's file is taken."""

    def resolve(entry: catalog.File, fields: dict[str, Any]) -> str | None:
        pushed = context["ti"].xcom_pull(task_ids=entry.producer)
        for value in pushed if isinstance(pushed, list) else [pushed]:
            if isinstance(value, dict) and entry.name in value and all(value.get(k) == v for k, v in fields.items()):
                return value[entry.name]
        return None

    return resolve


def _task(task: str) -> Callable[..., Outputs]:
    """The callable of ``task``: its step (``etl.orchestration.pipeline``) on this DAG run, inputs from the
    producers' XComs. A step that finds nothing to do (``Skipped``) ends the task skipped."""

    @_step
    def callable_(**context: Any) -> Outputs:
        settings = run_settings(context)
        folder = run_folder(context, settings)
        first = catalog.TASKS[0]  # makes the run folder
        if task != first and is_local(folder.root) and not folder.root.is_dir():
            raise MissingInputError(folder.root, first)  # (object stores: no folders)
        run = Run(settings.with_run_params(_run_params(context)), folder, _from_xcom(context), _run_info(context))
        mapped = {k: context[k] for k in ("candidate", "fold") if k in context}
        try:
            outputs = run_step(task, run, **mapped)
        except Skipped as skipped:  # a clear state: skipped (so are the tasks after it), not failed
            raise AirflowSkipException(str(skipped)) from None
        lineage.report(lambda: lineage.training_files(task, run, outputs, **mapped))
        return outputs

    callable_.__name__ = callable_.__qualname__ = task
    callable_.__doc__ = catalog.ABOUT[task]
    return callable_


def _run_params(context: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters; a run started by a new version of the training data (the
    training-data asset (``results/datasets/current.json``), ``etl.monitoring.datasets``) trains on that version unless its
    ``data_path`` was given."""
    params = dict(context["params"])
    if not params.get("data_path"):
        for _, events in _items(context.get("triggering_asset_events")):
            for event in events:
                path = (getattr(event, "extra", None) or {}).get("data_path")
                if path:
                    params["data_path"] = path
    return params


def _items(mapping: Any) -> list[tuple[Any, Any]]:
    try:
        return list(mapping.items()) if mapping else []
    except (AttributeError, TypeError):
        return []


def _run_info(context: dict[str, Any]) -> dict[str, Any]:
    """What identifies this DAG run in a manifest."""
    dag_run = context["dag_run"]

    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "dag_id": dag_run.dag_id,
        "run_id": context["run_id"],
        "logical_date": iso(getattr(dag_run, "logical_date", None)),
        "started_at": iso(getattr(dag_run, "start_date", None)),
    }


# The training DAG's task callables, one per task of the catalog (``etl.catalog.TASKS``): the
# DAG file wires them; each runs its step from ``etl.orchestration.pipeline``.
ensure_results_dir = _task("ensure_results_dir")
load_data = _task("load_data")
preprocess_data = _task("preprocess_data")
train_model = _task("train_model")
select_model = _task("select_model")
nested_cv = _task("nested_cv")
evaluate_model = _task("evaluate_model")
quality_gate = _task("quality_gate")
make_report = _task("make_report")
save_results = _task("save_results")
upload_results = _task("upload_results")


# -- the scoring DAG ------------------------------------------------------------------------------


@_step
def claim_batches(**context: Any) -> list[dict[str, str]]:
    """Claim the CSVs at the top of the inbox (the watcher claims them too) and list every file
    waiting in ``queued/``: one mapped ``score_batch`` task each."""
    from etl.storage.inbox import claim_queue

    return claim_queue(run_settings(context).inbox)


@_step
def score_batch(path: str, **context: Any) -> Outputs:
    """Score one queued file with the published model and check it for drift (predictions and
    report under ``results/scoring/<batch>/``), then move it to ``processed/``; a file that breaks
    the input contract moves to ``rejected/`` and fails this task, in one line. A drifted batch
    is still scored, and announced through ``[alerts]``."""
    from etl.orchestration import alerts
    from etl.score import process

    settings = run_settings(context)
    outcome = process(path, settings.inbox, settings.results_dir, settings.scoring)
    lineage.report(lambda: lineage.scoring_files(outcome, settings.results_dir))
    if outcome["drifted"]:
        logger.warning("%s", outcome["drift"])
        alerts.send_message(
            context, f"[Airflow] batch {outcome['batch']} drifted (DAG {context['dag_run'].dag_id})",
            f"Batch: {outcome['batch']} ({outcome['rows']} rows, scored by release {outcome['release']})\n"
            f"{outcome['drift']}\nReport: {outcome['report']}\nPredictions: {outcome['predictions']}",
            settings)
    return {k: str(v) for k, v in outcome.items()}


# -- the outcomes DAG -----------------------------------------------------------------------------


@_step
def claim_outcomes(**context: Any) -> list[dict[str, str]]:
    """Claim the CSVs at the top of the outcomes inbox (its watcher claims them too) and list
    every file waiting in ``queued/``: one mapped ``record_outcomes`` task each."""
    from etl.storage.inbox import claim_queue

    return claim_queue(run_settings(context).outcomes_inbox)


@_step
def record_outcomes(path: str, **context: Any) -> Outputs:
    """Validate one outcome file (``id``, ``diagnosis`` M/B, optional ``date``) into the ledger
    (``results/monitoring/outcomes/``), then move it to ``processed/``; a bad file moves to
    ``rejected/`` and fails this task only, in one line."""
    from etl.outcomes import process

    settings = run_settings(context)
    outcome = process(path, settings.outcomes_inbox, settings.results_dir)
    lineage.report(lambda: lineage.outcomes_files("record_outcomes", outcome, settings.results_dir))
    return {k: str(v) for k, v in outcome.items()}


@_step
def update_monitoring(**context: Any) -> Outputs:
    """Recompute each release's realized performance from every confirmed outcome and scored
    batch (``results/monitoring/``); announce a newly raised alarm through ``[alerts]``."""
    from etl.orchestration import alerts
    from etl.outcomes import alarm_message
    from etl.outcomes import update_monitoring as update

    settings = run_settings(context)
    out = update(settings.results_dir, settings.outcomes)
    for release, alarm in out["new_alarms"].items():
        alerts.send_message(context, *alarm_message(release, alarm), settings)
    result = {"summary": out["summary"], **{f"release:{k}": v for k, v in out["releases"].items()}}
    lineage.report(lambda: lineage.outcomes_files("update_monitoring", result, settings.results_dir))
    return result


@_step
def grow_training_data(**context: Any) -> Outputs:
    """Past ``[outcomes] retrain_min_cases`` new confirmed cases, write the next version of the
    training data (``results/datasets/``) and update the training-data asset (``results/datasets/current.json``),
    which starts the training DAG on it; else end skipped (no event)."""
    from etl.monitoring.datasets import grow
    from etl.orchestration import assets
    from etl.outcomes import confirmed

    settings = run_settings(context)
    record = grow(confirmed(settings.results_dir), settings.results_dir, settings.paths.data_path,
                  settings.outcomes.retrain_min_cases)
    if record is None:
        raise AirflowSkipException(f"fewer than {settings.outcomes.retrain_min_cases} new confirmed cases: "
                                   "no new training data version")
    context["outlet_events"][assets.training_data(settings)].extra = {k: str(v) for k, v in record.items()}
    lineage.report(lambda: lineage.outcomes_files("grow_training_data", record, settings.results_dir))
    return {k: str(v) for k, v in record.items()}
