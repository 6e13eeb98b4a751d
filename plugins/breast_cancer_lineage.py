"""Airflow plugin: with OpenLineage configured, a listener that starts each task instance with an
empty hook lineage collector (``etl.orchestration.lineage.listener``), so each task's events
carry only the files it read and wrote, also when ``airflow dags test`` runs every task in one
process. Without OpenLineage configured it registers nothing.
"""

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from etl.orchestration import lineage


class BreastCancerLineagePlugin(AirflowPlugin):
    name = "breast_cancer_lineage"
    listeners: ClassVar[list[Any]] = [lineage.listener()] if lineage.enabled() else []
