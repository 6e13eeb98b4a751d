"""Airflow UI plugin: each run's report as a "Report" tab of the DAG run, and a "Model" page
in the navigation (release history, headline metrics with intervals, the gate's decisions).

Airflow loads this file from its plugins folder (``[core] plugins_folder``; ``scripts/env.sh``
points it here). The api-server serves the app at ``/breast-cancer``; the app and its auth
check are in ``etl.web``, the data it shows comes from ``etl.history``.
"""

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from etl.web import URL_PREFIX, create_app

_PATH = URL_PREFIX.strip("/")  # external views' hrefs are relative to the UI's base URL


class BreastCancerModelPlugin(AirflowPlugin):
    name = "breast_cancer_model"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Breast cancer model"}]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Report",
            "href": _PATH + "/runs/{RUN_ID}/report?dag_id={DAG_ID}",
            "destination": "dag_run",
            "url_route": "breast-cancer-report",
        },
        {
            "name": "Model",
            "href": _PATH + "/model",
            "destination": "nav",
            "url_route": "breast-cancer-model",
            "nav_top_level": True,
        },
    ]
