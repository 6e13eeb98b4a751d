"""The Airflow assets that chain the two DAGs (shown in the UI's Assets view).

- ``PUBLISHED_MODEL``: updated by the training DAG's ``save_results`` when, and only when, it
  publishes a release (a refused model ends the task skipped: no event). The scoring DAG reads
  it (an inlet): a new release scores the *next* batches; nothing is re-scored.
- ``INBOX``: new CSVs in the scoring inbox. Its ``AssetWatcher`` (``etl.orchestration.triggers``, in the
  triggerer) claims them and fires; the scoring DAG is scheduled on it.
- ``SCORED_BATCHES``: updated by the scoring DAG for each batch it scores.
- ``OUTCOMES``: new CSVs of confirmed diagnoses in the outcomes inbox, watched the same way; the
  outcomes DAG is scheduled on it. ``MONITORING``: updated by the outcomes DAG each time it
  recomputes the releases' realized performance.
- ``TRAINING_DATA``: updated by the outcomes DAG when it writes a new version of the labelled
  data (its event's ``extra`` names the version's ``data_path``); the training DAG is scheduled
  on it and trains on that version.

Imported when the DAG files are parsed: Airflow's task SDK and the standard library only.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetWatcher

from etl.orchestration.triggers import InboxTrigger
from etl.settings import Settings

PUBLISHED_MODEL = Asset("breast_cancer_published_model")
SCORED_BATCHES = Asset("breast_cancer_scored_batches")


MONITORING = Asset("breast_cancer_monitoring")
TRAINING_DATA = Asset("breast_cancer_training_data")


def outcomes_asset(settings: Settings) -> Asset:
    """The outcomes inbox asset, watched by an ``InboxTrigger`` on ``[outcomes] inbox``."""
    trigger = InboxTrigger(settings.outcomes.inbox, settings.paths.results_conn_id, settings.scoring.poll_seconds)
    return Asset("breast_cancer_outcomes_inbox",
                 watchers=[AssetWatcher(name="breast_cancer_outcomes_watcher", trigger=trigger)])


def inbox_asset(settings: Settings) -> Asset:
    """The inbox asset, watched by an ``InboxTrigger`` on ``[scoring] inbox``."""
    trigger = InboxTrigger(settings.scoring.inbox, settings.paths.results_conn_id, settings.scoring.poll_seconds)
    return Asset("breast_cancer_inbox", watchers=[AssetWatcher(name="breast_cancer_inbox_watcher", trigger=trigger)])
