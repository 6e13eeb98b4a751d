"""The Airflow task callables: each runs one etl step for the current DAG run.

A callable finds its run's folder (``results/runs/<run key>/``, see ``etl.config.run_key``),
takes each input the one way ``_input`` resolves it, calls the step and returns the paths it
wrote (its XCom). An input is named by its ``etl.config.RunPaths`` attribute, which is also the
key its producer returns it under: the producer's returned path in this run, or, where the run
has no XCom of it (``airflow tasks test`` on a fresh date makes a new run per call), the run
folder's file of that name.

Errors in the data or the parameters (``etl.errors.PipelineError``) fail the task at once with
``AirflowFailException``: retrying cannot fix them. Other errors (I/O) are left to the task's
retries.

Imported when the DAG file is parsed: the step modules (pandas, scikit-learn) are imported
inside the callables, never here.
"""

from __future__ import annotations

import difflib
import functools
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from etl.config import (
    TRAINING_DAG_ID,
    CandidatePaths,
    RunPaths,
    Settings,
    load_settings,
    resolve_path,
    run_key,
)
from etl.errors import MissingInputError, ParameterError, PipelineError, first_line
from etl.storage import Target, is_local, location, remove_interrupted_writes, require, write_json
from etl.storage import uri as storage_uri

logger = logging.getLogger(__name__)

Outputs = dict[str, str]


def default_args(settings: Settings) -> dict[str, Any]:
    """The task defaults of both DAGs: retries for I/O errors (bad data and parameters are never
    retried, see ``_step``), a time limit, and the ``[alerts]`` failure alert (a no-op unless
    configured)."""
    from etl import alerts

    return {
        "owner": "ml-platform",
        "retries": settings.retries,
        "retry_delay": timedelta(seconds=settings.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": [record_failure, alerts.on_task_failure],
    }


def record_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback`` of every task: write the failed task's one-line error into its
    run folder (``RunPaths.failure``), where the UI's Report tab and ``etl.history`` find it.

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
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(record, path)
    except Exception as exc:  # a callback must never hide the task's own failure
        logger.warning("could not record the failure in the run folder: %s", first_line(exc))


def _step(func: Callable[..., Outputs]) -> Callable[..., Outputs]:
    """Turn a ``PipelineError`` into a one-line, non-retried task failure."""

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


def _run_folder(context: dict[str, Any], settings: Settings) -> RunPaths:
    """This DAG run's folder (its name is the run key)."""
    dag_run = context["dag_run"]
    return settings.layout.run(run_key(getattr(dag_run, "logical_date", None), context.get("run_id") or dag_run.run_id))


def _failure_record(context: dict[str, Any]) -> Target | None:
    """Where ``record_failure`` writes this task instance's failure (training runs only: the
    scoring DAG's runs have no run folder)."""
    ti, dag_run = context["ti"], context["dag_run"]
    if getattr(dag_run, "dag_id", TRAINING_DAG_ID) != TRAINING_DAG_ID:
        return None
    return _run_folder(context, load_settings()).failure(ti.task_id, getattr(ti, "map_index", -1))


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


def check_run_conf(conf: dict[str, Any] | None, params: Iterable[str]) -> None:
    """Refuse a run whose conf names a parameter the DAG does not have (a typo such as ``c``
    for ``C`` would otherwise run silently with the default).

    Raises:
        ParameterError: one line naming the unknown keys and listing the valid parameters.
    """
    valid = sorted(params)
    unknown = sorted(set(conf or {}) - set(valid))
    if unknown:
        def hint(key: str) -> str:
            close = [v for v in valid if v.lower() == key.lower()] or difflib.get_close_matches(key, valid, n=1)
            return f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)

        hints = [hint(key) for key in unknown]
        raise ParameterError(f"unknown run parameter(s) {', '.join(hints)}; valid parameters: {', '.join(valid)}")


def _settings(context: dict[str, Any]) -> Settings:
    """The settings, after checking the run's conf names only parameters the DAG has."""
    check_run_conf(getattr(context["dag_run"], "conf", None), context["dag"].params.keys())
    return load_settings()


def _run(context: dict[str, Any], must_exist: bool = True) -> tuple[Settings, RunPaths]:
    """The settings (``_settings``) and this DAG run's folder (its name is the run key)."""
    settings = _settings(context)
    run = _run_folder(context, settings)
    if must_exist and is_local(run.root) and not run.root.is_dir():  # (object stores: no folders)
        raise MissingInputError(run.root, "ensure_results_dir")
    return settings, run


def _input(
    context: dict[str, Any],
    run: RunPaths | CandidatePaths,
    producer: str,
    name: str,
    candidate: str | None = None,
) -> Target:
    """Input ``name`` (a ``RunPaths`` attribute; of a ``CandidatePaths`` for ``candidate``): the
    path task ``producer`` returned under that name in this run, else the layout's; must exist.

    A mapped producer returns one value per task instance: ``candidate`` picks the one whose
    ``candidate`` is that name.
    """
    pushed = context["ti"].xcom_pull(task_ids=producer)
    for value in pushed if isinstance(pushed, list) else [pushed]:
        if isinstance(value, dict) and name in value and (candidate is None or value.get("candidate") == candidate):
            return require(location(value[name]), producer)
    return require(getattr(run, name), producer)


@_step
def ensure_results_dir(**context: Any) -> Outputs:
    """Create the results folder and this run's folder; clear leftovers of killed writes."""
    from etl.releases import ensure_results_dir as ensure

    settings, run = _run(context, must_exist=False)
    ensure(settings.results_dir, run.root)
    for leftover in remove_interrupted_writes(run.root):
        logger.info("removed %s, left by an interrupted write", leftover)
    write_json(_run_info(context), run.run_record)  # which Airflow run the folder is (the UI views)
    return {"run_dir": str(run.root)}


@_step
def load_data(**context: Any) -> Outputs:
    """Validate the input CSV (param ``data_path``: relative to the project root; empty: the
    configured one)."""
    from etl.load_data import load_data as step

    settings, run = _run(context)
    data_path = resolve_path(context["params"].get("data_path") or settings.data_path)
    return step(
        data_path,
        run.data,
        run.profile,
        max_missing_share=settings.max_missing_share,
        min_rows_per_class=settings.min_rows_per_class,
    )


@_step
def preprocess_data(**context: Any) -> Outputs:
    """Split and scale the validated data."""
    from etl.preprocess_data import preprocess_data as step

    settings, run = _run(context)
    params = Settings.typed_run_params(context["params"])
    return step(
        _input(context, run, "load_data", "data"),
        run.train,
        run.test,
        run.scaler,
        run.preprocessing,
        test_size=float(params["test_size"]),
        random_state=int(params["random_state"]),
        method=settings.split_method,
        salt=settings.split_salt,
    )


@_step
def train_model(candidate: str, **context: Any) -> Outputs:
    """Cross-validate one candidate model on the training split and fit it (one mapped task
    per candidate in ``[candidates] enabled``)."""
    from etl.models import candidate_params
    from etl.train_model import train_candidate

    settings, run = _run(context)
    params = Settings.typed_run_params(context["params"])
    if candidate not in settings.candidates:
        raise ParameterError(f"candidate {candidate!r} is not enabled in [candidates]")
    return train_candidate(
        _input(context, run, "load_data", "data"),
        _input(context, run, "preprocess_data", "train"),
        candidate,
        candidate_params(settings.candidates, params)[candidate],
        run.candidate(candidate),
        folds=settings.cv_folds,
        repeats=settings.cv_repeats,
        random_state=int(params["random_state"]),
    )


@_step
def select_model(**context: Any) -> Outputs:
    """Give each candidate its operating point by ``[selection] rule`` on its out-of-fold
    predictions and pick one by its specificity there (one standard error, paired folds)."""
    from etl.train_model import select_model as step

    settings, run = _run(context)
    return step(
        {name: CandidatePaths(_input(context, run.candidate(name), "train_model", "cv", name).parent)
         for name in settings.candidates},
        run.model,
        run.training,
        **settings.selection_settings,
    )


@_step
def nested_cv(fold: int, **context: Any) -> Outputs:
    """Run the whole training procedure on all but one outer fold of the data and score it on
    that fold (one mapped task per outer fold of ``[nested_cv]``): the expected performance
    on unseen patients."""
    from etl.models import candidate_params
    from etl.nested_cv import nested_cv as step

    settings, run = _run(context)
    params = Settings.typed_run_params(context["params"])
    return step(
        _input(context, run, "load_data", "data"),
        fold,
        run.outer_fold(fold),
        candidate_params(settings.candidates, params),
        settings.procedure(int(params["random_state"])),
        settings.outer_folds,
        settings.outer_repeats,
    )


@_step
def evaluate_model(**context: Any) -> Outputs:
    """Score the selected model on the test split, at its threshold and at 0.5, with bootstrap
    confidence intervals (after checking the model's SHA-256)."""
    from etl.evaluate_model import evaluate_model as step

    settings, run = _run(context)
    return step(
        _input(context, run, "select_model", "model"),
        _input(context, run, "preprocess_data", "test"),
        _input(context, run, "select_model", "training"),
        run.metrics,
        run.predictions,
        bootstrap_resamples=settings.bootstrap_resamples,
        random_state=int(context["params"]["random_state"]),
        outer_fold_paths=[require(run.outer_fold(i), "nested_cv") for i in range(settings.outer_fold_count)],
    )


@_step
def quality_gate(**context: Any) -> Outputs:
    """Decide whether the run's model may be published: floors on its test split, and a
    comparison with the published model on rows neither trained on (gate.json)."""
    from etl.gate import check_run, gate_from

    settings, run = _run(context)
    _input(context, run, "evaluate_model", "metrics")
    return check_run(run.root, settings.results_dir, gate_from(settings))


@_step
def make_report(**context: Any) -> Outputs:
    """Write the run's self-contained HTML report (report.html)."""
    from etl.report import make_report as step

    _, run = _run(context)
    _input(context, run, "quality_gate", "gate")
    return step(run.root, run.report, random_state=int(context["params"]["random_state"]))


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


@_step
def save_results(**context: Any) -> Outputs:
    """Publish the run's metrics, model, scaler and manifest to the top of the results folder,
    all or nothing, if the model cleared the quality gate (else: skipped, with the reason);
    prune old runs."""
    from etl.save_results import gate_from
    from etl.save_results import save_results as step

    settings, run = _run(context)
    outcome = step(
        run.root,
        settings.results_dir,
        _run_info(context),
        keep_runs=settings.keep_runs,
        prune_min_age=timedelta(hours=settings.prune_min_age_hours),
        gate=gate_from(settings),
    )
    if not outcome.get("published", True):  # a clear state: skipped (so is the upload), not failed
        raise AirflowSkipException(outcome["reason"])
    return outcome


@_step
def upload_results(**context: Any) -> Outputs:
    """Upload the release this run published, under the run key (local folder, s3://,
    gdrive://)."""
    from etl.releases import run_release
    from etl.upload_results import upload_results as step

    settings, run = _run(context)
    pushed = context["ti"].xcom_pull(task_ids="save_results")
    release = (location(pushed["release"]) if isinstance(pushed, dict) and "release" in pushed
               else run_release(run.root, settings.results_dir))
    if release is None:
        raise AirflowSkipException("nothing to upload: the quality gate kept this run's model unpublished")
    return step(release, settings.upload_uri, run.root.name, settings.upload_conn_id,
                settings.drive_credentials)


# -- the scoring DAG ------------------------------------------------------------------------------


@_step
def claim_batches(**context: Any) -> list[dict[str, str]]:
    """Claim the CSVs at the top of the inbox (the watcher claims them too) and list every file
    waiting in ``queued/``: one mapped ``score_batch`` task each."""
    from etl.inbox import claim, queued

    settings = _settings(context)
    claim(settings.inbox)
    waiting = queued(settings.inbox)
    logger.info("%d file(s) to score in %s", len(waiting), storage_uri(settings.inbox.queued))
    return [{"path": str(path)} for path in waiting]


@_step
def score_batch(path: str, **context: Any) -> Outputs:
    """Score one queued file with the published model and check it for drift (predictions and
    report under ``results/scoring/<batch>/``), then move it to ``processed/``; a file that breaks
    the input contract moves to ``rejected/`` and fails this task, in one line. A drifted batch
    is still scored, and announced through ``[alerts]``."""
    from etl import alerts
    from etl.score import process

    settings = _settings(context)
    outcome = process(path, settings.inbox, settings.results_dir, drift_settings=settings.drift_settings)
    if outcome["drifted"]:
        logger.warning("%s", outcome["drift"])
        alerts.send_message(
            context, f"[Airflow] batch {outcome['batch']} drifted (DAG {context['dag_run'].dag_id})",
            f"Batch: {outcome['batch']} ({outcome['rows']} rows, scored by release {outcome['release']})\n"
            f"{outcome['drift']}\nReport: {outcome['report']}\nPredictions: {outcome['predictions']}",
            settings)
    return {k: str(v) for k, v in outcome.items()}
