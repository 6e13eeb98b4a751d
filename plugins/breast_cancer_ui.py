"""Airflow UI plugin: each run's report as a "Report" tab of the DAG run, and a "Model" page
in the navigation (release history, headline metrics with intervals, the gate's decisions).

Airflow loads this file from its plugins folder (``[core] plugins_folder``; ``scripts/env.sh``
points it here). The api-server serves the app at ``/breast-cancer``; the app and its auth
check are in ``etl.ui.app``, the data it shows comes from ``etl.ui.history``.

Airflow loads every plugin in nearly every process it starts (each ``airflow tasks test`` and
``airflow dags test``, the scheduler, each task's process), and only the api-server serves the
app, so the app is made at its first request (``_AppAtFirstRequest``): making it imports
Airflow's API security, about 2.5 s of CPU that no other process needs.
"""

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from etl.catalog import UI_URL_PREFIX

_PATH = UI_URL_PREFIX.strip("/")  # external views' hrefs are relative to the UI's base URL


class _AppAtFirstRequest:
    """An ASGI app that makes ``etl.ui.app.create_app()`` at its first request and hands it each
    request (the api-server mounts any ASGI app: ``app.mount(url_prefix, app)``)."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._app is None:  # one event loop: no request sees it half-made
            from etl.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class BreastCancerModelPlugin(AirflowPlugin):
    name = "breast_cancer_model"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": _AppAtFirstRequest(), "url_prefix": UI_URL_PREFIX, "name": "Breast cancer model"}]
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
