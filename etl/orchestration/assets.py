"""The Airflow assets that chain the three DAGs (shown in the UI's Assets view). Each has a name
and the URI of the file or folder it stands for, the same as the OpenLineage dataset of that file
in the tasks' events (``etl.orchestration.lineage``): ``file://<absolute path>`` or ``s3://...``,
which is also its name (``_asset``); the group ``breast_cancer`` gathers them in the UI.

- ``published_model``: ``results/model.pkl``, the published model. Updated by the training DAG's
  ``save_results`` when, and only when, it publishes a release (a refused model ends the task
  skipped: no event). The scoring DAG reads it (an inlet): a new release scores the *next*
  batches; nothing is re-scored.
- ``inbox_asset``: the scoring inbox folder. Its ``AssetWatcher`` (``etl.orchestration.triggers``,
  in the triggerer) claims new CSVs and fires; the scoring DAG is scheduled on it.
- ``scored_batches``: ``results/scoring/``, updated by the scoring DAG for each batch it scores.
- ``outcomes_asset``: the outcomes inbox folder, watched the same way; the outcomes DAG is
  scheduled on it. ``monitoring``: ``results/monitoring/summary.json``, updated by the outcomes
  DAG each time it recomputes the releases' realized performance.
- ``training_data``: ``results/datasets/current.json``, updated by the outcomes DAG when it
  writes a new version of the labelled data (its event's ``extra`` names the version's
  ``data_path``); the training DAG is scheduled on it and trains on that version.

Imported when the DAG files are parsed: Airflow's task SDK and the standard library only.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetWatcher

from etl.orchestration.triggers import InboxTrigger
from etl.settings import Settings


def _uri(location: object) -> str:
    from etl.orchestration.lineage import dataset_uri

    return dataset_uri(location) or str(location)


def _results(settings: Settings, *parts: str) -> str:
    root = str(settings.paths.results_dir).rstrip("/")  # (the setting: no S3 client made to parse a DAG)
    return _uri("/".join((root, *parts)))


def _asset(uri: str, **kwargs: object) -> Asset:
    """The asset of the file or folder at ``uri``, named by it (Airflow's default for an asset
    given only a URI): an asset's name and URI must each be unique among the active assets, so
    two results folders (a test's, a second deployment's) give two assets, never a conflict that
    would leave one inactive."""
    return Asset(name=uri, uri=uri, group="breast_cancer", **kwargs)


def published_model(settings: Settings) -> Asset:
    """``results/model.pkl``: a new release was published."""
    return _asset(_results(settings, "model.pkl"))


def scored_batches(settings: Settings) -> Asset:
    """``results/scoring/``: a batch was scored."""
    return _asset(_results(settings, "scoring"))


def monitoring(settings: Settings) -> Asset:
    """``results/monitoring/summary.json``: the realized performance was recomputed."""
    return _asset(_results(settings, "monitoring", "summary.json"))


def training_data(settings: Settings) -> Asset:
    """``results/datasets/current.json``: a new version of the training data."""
    return _asset(_results(settings, "datasets", "current.json"))


def outcomes_asset(settings: Settings) -> Asset:
    """The outcomes inbox asset, watched by an ``InboxTrigger`` on ``[outcomes] inbox``."""
    trigger = InboxTrigger(settings.outcomes.inbox, settings.paths.results_conn_id, settings.scoring.poll_seconds)
    return _asset(_uri(settings.outcomes.inbox), watchers=[AssetWatcher(name="breast_cancer_outcomes_watcher", trigger=trigger)])


def inbox_asset(settings: Settings) -> Asset:
    """The inbox asset, watched by an ``InboxTrigger`` on ``[scoring] inbox``."""
    trigger = InboxTrigger(settings.scoring.inbox, settings.paths.results_conn_id, settings.scoring.poll_seconds)
    return _asset(_uri(settings.scoring.inbox), watchers=[AssetWatcher(name="breast_cancer_inbox_watcher", trigger=trigger)])
