"""What each task of the three DAGs read and wrote, for OpenLineage: reported to Airflow's hook
lineage collector, which Airflow's OpenLineage provider (``apache-airflow-providers-openlineage``)
turns into the input and output datasets of the task's events.

Off unless OpenLineage is configured the way Airflow documents it (``[openlineage] transport``,
``AIRFLOW__OPENLINEAGE__TRANSPORT``, ``OPENLINEAGE_URL``, a config file or connection; the
provider's own ``is_disabled``): then nothing here runs and the OpenLineage client is never
imported.

Each file is a dataset named by its location: ``file://<absolute path>`` (OpenLineage namespace
``file``, name the path) or ``s3://bucket/key`` (namespace ``s3://bucket``, name the key). The
same file has the same name in every run that touches it, which is what links the runs:

- the training tasks' files come from the run catalog (``etl.catalog``: the files each task
  reads and writes in its run folder), plus what lies outside the run folder: ``load_data`` reads
  the input CSV (or a grown version of the training data), ``save_results`` writes the release's
  files and the published files at the top of the results folder (``results/model.pkl`` is the
  published-model asset (``results/model.pkl``)), ``upload_results`` the uploaded copies;
- ``score_batch`` reads the scored file and the release that scored it (its files, and the
  published model), and writes the batch's predictions, report and rows;
- the outcomes DAG reads the outcome files, the ledger and the scored batches, and writes the
  monitoring records and a new version of the training data, which the next training run reads.

So "which data trained the model that scored this batch" is a walk up the graph: the batch's
predictions, the release's model file, the run's tables, the input CSV.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from etl import catalog

logger = logging.getLogger(__name__)


def enabled() -> bool:
    """Whether OpenLineage is configured (and the provider installed)."""
    try:
        from airflow.providers.openlineage.conf import is_disabled
    except ImportError:
        return False
    return not is_disabled()


def dataset_uri(location: Any) -> str | None:
    """The dataset URI of a file: ``file://`` and its absolute path (links not followed: the
    published ``results/model.pkl`` is its own dataset), an ``s3://`` URI as it is; None for
    other schemes (a Google Drive upload)."""
    text = str(location)
    if "://" not in text or text.startswith("file://"):
        path = text[len("file://"):] if text.startswith("file://") else text
        return "file://" + os.path.abspath(path)
    return text if text.startswith("s3://") else None


class _Context:
    """What the collector files a task's assets under (one per report)."""


def fresh_collector() -> None:
    """Start a task with an empty hook lineage collector. Airflow keeps one per process; a task
    process runs one task, but ``airflow dags test`` (``make run``) runs every task of the run in
    one process, where each task's events would otherwise carry the files of the tasks before
    it."""
    from airflow.sdk.lineage import get_hook_lineage_collector

    get_hook_lineage_collector.cache_clear()


def listener() -> Any:
    """The Airflow listener (``plugins/breast_cancer_lineage.py``, registered only when
    OpenLineage is configured) that gives each task instance a fresh collector before the
    OpenLineage provider's own listener reads it for the task's START event."""
    from airflow.listeners import hookimpl

    class Listener:
        @hookimpl(tryfirst=True)
        def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
            fresh_collector()

    return Listener()


def report(files: Callable[[], tuple[Iterable[Any], Iterable[Any]]]) -> None:
    """Tell the hook lineage collector the files a task read and wrote, ``files()`` (``(inputs,
    outputs)``: called only when OpenLineage is enabled). Never raises: lineage must not fail a
    task."""
    if not enabled():
        return
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector

        inputs, outputs = files()
        collector, context = get_hook_lineage_collector(), _Context()
        for add, found in ((collector.add_input_asset, inputs), (collector.add_output_asset, outputs)):
            for uri in dict.fromkeys(u for u in map(dataset_uri, found) if u):
                add(context=context, uri=uri)
    except Exception as exc:  # lineage is a report, never a reason to fail
        logger.warning("OpenLineage: could not report this task's files: %s", catalog.first_line(exc))


# -- the files of each task ------------------------------------------------------------------------


def _existing(paths: Iterable[Any]) -> list[Any]:
    from etl import storage

    return [p for p in paths if p is not None and storage.exists(p)]


def _release_files(results_dir: Any, release: str) -> list[Any]:
    """A release's files and the published files at the top of the results folder."""
    from etl.storage.layout import RELEASE_FILES, TOP_FILES, ResultsPaths

    layout = ResultsPaths(results_dir)
    return [layout.release(release).file(n) for n in RELEASE_FILES] + [layout.top(n) for n in TOP_FILES]


def training_files(task: str, run: Any, outputs: Mapping[str, Any], **instance: Any) -> tuple[list, list]:
    """``(inputs, outputs)`` of a training task instance: the catalog's files of the task (a
    mapped instance's own), and the files outside the run folder (the module docstring)."""
    from etl import storage

    root = run.folder.root

    def files(entries: Iterable[catalog.File]) -> list[Any]:
        found = []
        for entry in entries:
            if entry.name == "failure":
                continue
            if entry.name == "outer_fold":  # one fold's instance writes its own; evaluate_model reads all
                folds = [instance["fold"]] if "fold" in instance else range(run.settings.nested_cv.count)
                found += [root / catalog.path_of("outer_fold", fold=i) for i in folds]
            elif "{candidate}" in entry.path:
                names = [instance["candidate"]] if "candidate" in instance else list(run.settings.candidates)
                found += [root / catalog.path_of(entry.name, candidate=c) for c in names]
            else:
                found.append(root / catalog.path_of(entry.name))
        return found

    read, wrote = files(catalog.inputs(task)), files(catalog.outputs(task))
    if task == "load_data":
        read.append(storage.location(run.settings.paths.data_path))
    if task == "save_results" and outputs.get("release"):
        wrote += _release_files(run.settings.results_dir, storage.location(outputs["release"]).name)
    if task == "upload_results":
        wrote += [v for v in outputs.values() if isinstance(v, str)]
    return _existing(read), [w for w in wrote if "://" in str(w) or storage.exists(w)]


def scoring_files(outcome: Mapping[str, Any], results_dir: Any) -> tuple[list, list]:
    """``(inputs, outputs)`` of ``score_batch``: the file (where it was filed) and the release
    that scored it; the batch's predictions, report and rows."""
    from etl.storage.layout import ResultsPaths

    layout = ResultsPaths(results_dir)
    batch = layout.batch(outcome["batch"])
    read = [outcome.get("processed"), *_release_files(results_dir, outcome["release"])]
    wrote = _existing([batch.predictions, batch.report, batch.rows])
    return _existing(read), ([*wrote, layout.scoring] if wrote else wrote)  # (the folder: the scored batches' asset)


def outcomes_files(task: str, result: Mapping[str, Any], results_dir: Any) -> tuple[list, list]:
    """``(inputs, outputs)`` of a task of the outcomes DAG, from what it returned and the
    results folder it read."""
    from etl import storage
    from etl.storage.layout import ResultsPaths

    layout = ResultsPaths(results_dir)
    ledger = storage.list_files(layout.monitoring.ledger, ".parquet")
    batches = [layout.batch(name) for name in storage.list_folders(layout.scoring)]
    if task == "record_outcomes":
        return _existing([result.get("processed")]), _existing([result.get("ledger")])
    if task == "update_monitoring":
        written = [result.get("summary"), *(v for k, v in result.items() if k.startswith("release:"))]
        return _existing([*ledger, *(b.predictions for b in batches)]), _existing(written)
    # grow_training_data: the parent data, the ledger and the scored rows -> the new version
    version = storage.location(result["data_path"])
    parent = storage.read_json(version.parent / "manifest.json").get("parent_data")
    return (_existing([parent and storage.location(parent), *ledger, *(b.rows for b in batches)]),
            _existing([version, version.parent / "manifest.json", layout.datasets / "current.json"]))
