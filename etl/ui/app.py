"""The model in the Airflow UI: a FastAPI app the api-server mounts (``plugins/breast_cancer_ui.py``).

- ``/breast-cancer/runs/{run_id}/report``: a DAG run's **Report** tab. The run's state in one
  line (published, refused by the quality gate with the gate's reason, failed with the failing
  task and its one-line error), its headline metrics with their 95 % intervals, then the run's
  ``report.html``.
- ``/breast-cancer/model``: the **Model** page. The published release (run, time, model,
  threshold, metrics with intervals, links to its report and manifest, who signed it and whether
  it verifies now), a chart of the headline
  metrics of every kept run, the newest scored batches (each linking its view), the releases
  and the recent runs with the gate's decision.
- ``/breast-cancer/batches/{name}``: a **scored batch**'s view (linked from the Model page's
  "Scored batches"): its counts per call, its drift in one line, and its cases (the first
  ``history.SHOWN_CASES``) sortable by call, probability and id, each with its reasons or why it
  is out of scope; ``batches/{name}/predictions.csv`` is the whole batch.
- ``/breast-cancer/runs/{run_id}/model_card``, ``/breast-cancer/releases/{name}/model_card``:
  a run's model card (``etl.releases.model_card``) and a release's, with its sign-off, as HTML.
- ``/breast-cancer/api/...``: the JSON the pages are made from, for scripts:
  ``api/runs``, ``api/runs/{run}``, ``api/runs/{run}/metrics``, ``api/releases``,
  ``api/releases/{name}/manifest``, ``api/batches``, ``api/batches/{name}``.

Every endpoint requires the UI's logged-in user (the api-server's JWT, from the
``Authorization: Bearer`` header or the UI's ``_token`` cookie) with read access to this DAG's
runs, through Airflow's own auth manager: plugin apps are not protected by Airflow on their own.
Runs and releases are looked up among the folders listed under the results root
(``etl.ui.history``), so a name such as ``../../etc/passwd`` is a 404, never a path. The pages are
Jinja2 templates (``etl/templates/ui/``, every value escaped), their shared sentences
``etl/templates/wording.j2`` (``etl.releases.wording``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from etl import storage
from etl.catalog import TRAINING_DAG_ID
from etl.releases.wording import render
from etl.settings import load_settings
from etl.storage.layout import ResultsPaths
from etl.ui import history

DAG_ID = TRAINING_DAG_ID  # the DAG whose runs have run folders
T = TypeVar("T")

#: The headline metrics the chart draws, and their colours.
COLOURS = {"sensitivity": ("Sensitivity", "#c0392b"), "specificity": ("Specificity", "#2874a6"),
           "roc_auc": ("ROC AUC", "#1e8449")}


def _reader() -> Callable[..., Any]:
    """The auth dependency: Airflow's ``get_user`` (JWT from header or ``_token`` cookie; 401
    without one, 403 for an invalid one), then the auth manager's DAG-run read permission."""
    from airflow.api_fastapi.core_api.security import get_user

    async def require_reader(user: Any = Depends(get_user)) -> Any:  # noqa: B008 (FastAPI's idiom)
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

        if not get_auth_manager().is_authorized_dag(
                method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=DAG_ID), user=user):
            raise HTTPException(status_code=403, detail=f"Forbidden: no read access to {DAG_ID}'s runs")
        return user

    return require_reader


# -- the pages ----------------------------------------------------------------------------------


def _page(title: str, heading: str, message: str) -> HTMLResponse:
    """A page of one message."""
    return HTMLResponse(render("ui/page.html.j2", html=True, title=title, heading=heading, message=message))


def chart(runs: list[dict[str, Any]], releases: set[str]) -> dict[str, Any] | None:
    """The geometry of the chart of the headline metrics of every run with metrics, oldest first
    (``ui/chart.svg.j2`` draws it); None without such a run."""
    points = [r for r in reversed(runs) if r["headline"]]
    if not points:
        return None
    width, height, left, right, top, bottom = 760, 240, 48, 130, 12, 34
    values = [item["value"] for r in points for item in r["headline"].values() if item.get("value") is not None]
    low = max(0.0, int(min(0.8, min(values) if values else 0.8) * 20) / 20)

    def x(i: int) -> float:
        return round(left + (width - left - right) * (i / (len(points) - 1) if len(points) > 1 else 0.5), 1)

    def y(v: float) -> float:
        return round(top + (height - top - bottom) * (1 - (v - low) / (1 - low)), 1)

    step = 0.05 if 1 - low <= 0.25 else 0.1
    ticks = [low + i * step for i in range(int((1.0001 - low) / step) + 1)]
    lines = [{"name": name, "colour": colour, "points": [
        {"x": x(i), "y": y(r["headline"][label]["value"]), "key": r["key"], "item": r["headline"][label],
         "published": r["release"] in releases} for i, r in enumerate(points) if label in r["headline"]]}
        for label, (name, colour) in COLOURS.items()]
    ends = [(0, points[0], "start"), (len(points) - 1, points[-1], "end")] if len(points) > 1 \
        else [(0, points[0], "middle")]
    return {"width": width, "height": height, "left": left, "right": width - right, "top": top,
            "ticks": [{"value": v, "y": y(v)} for v in ticks], "lines": lines,
            "ends": [{"x": x(i), "anchor": a, "label": (r.get("started_at") or r["key"])[:16]} for i, r, a in ends]}


def report_page(layout: ResultsPaths, key: str) -> str:
    """The Report tab's HTML for the run in folder ``key``: the banner, then the run's report."""
    run = history.run_summary(layout, key)
    context = {"run": run, "key": key, "current": history.current_name(layout), "dag": DAG_ID}
    if run["has_report"]:
        report = storage.read_bytes(layout.run(key).report).decode("utf-8")
        match = re.search(r"<body[^>]*>", report)
        if match:
            banner = render("ui/banner.html.j2", html=True, **context)
            style = render("ui/style.css", html=True)
            return report[:match.end()] + f"<style>{style}</style>" + banner + report[match.end():]
    return render("ui/no_report.html.j2", html=True, title=f"Run {key}", **context)


def model_page(layout: ResultsPaths) -> str:
    """The Model page's HTML: the published release, the outcomes, the chart, the releases, the runs."""
    runs = history.list_runs(layout)
    releases = history.list_releases(layout)["releases"]
    current = next((r for r in releases if r["current"]), None)
    return render("ui/model.html.j2", html=True, title="Breast cancer model", dag=DAG_ID, runs=runs,
                  releases=releases, current=current, current_name=current["name"] if current else None,
                  monitoring=history.monitoring(layout), chart=chart(runs, {r["name"] for r in releases}),
                  batches=history.list_batches(layout), calls=history.CALL_ORDER)


#: What each call means, as a batch's view says it.
MEANINGS = {
    "malignant": "at or above the second threshold: at most the stated share of benign cases get this call",
    "refer": "between the two thresholds: uncertain, send for review",
    "benign": "below the sensitivity threshold: at most the stated share of malignant cases get this call",
    "out of scope": "the model may not answer (a value out of range, or unlike the training rows): no probability",
}
SORTS = {"call": "call (malignant, refer, benign, out of scope), then probability",
         "probability": "probability of malignancy", "id": "id"}


def batch_page(layout: ResultsPaths, name: str, sort: str = "call", order: str = "desc") -> str:
    """A scored batch's view: its counts per call, its drift, its cases sorted by ``sort``."""
    batch = history.batch_summary(layout, name)
    if batch is None:
        return render("ui/page.html.j2", html=True, title=f"Batch {name}", heading=f"Batch {name}",
                      message="This batch has no report yet: it is being scored.")
    cases = history.batch_cases(layout, name, sort if sort in SORTS else "call", order != "asc")
    return render("ui/batch.html.j2", html=True, title=f"Batch {name}", batch=batch, cases=cases,
                  meanings=MEANINGS, sort_names=SORTS)


def card_page(markdown: str, title: str, signoff: dict[str, Any] | None = None) -> str:
    """A model card as HTML (``etl.releases.model_card.to_html``); for a run's card written before the
    decision, the sign-off recorded since as a banner on top."""
    from etl.releases.model_card import to_html
    from etl.releases.wording import signoff as sentence

    page = to_html(markdown, title)
    if signoff and signoff.get("decision") not in (None, "pending"):
        page = page.replace("<body>", f'<body><p id="signoff" style="border:1px solid #ccc;padding:.4em">'
                                      f"Sign-off since this card was written: {sentence(signoff, html=True)}</p>", 1)
    return page


# -- the app ------------------------------------------------------------------------------------


def _found(value: T | None, detail: str) -> T:
    """``value``; a 404 saying ``detail`` when there is none."""
    if value is None:
        raise HTTPException(status_code=404, detail=detail)
    return value


def create_app(results_dir: storage.Location | None = None) -> FastAPI:
    """The app the plugin mounts at ``etl.catalog.UI_URL_PREFIX``; ``results_dir`` defaults to the settings'
    results root (read at the first request)."""
    app = FastAPI(title="Breast cancer model", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(_reader())])

    @functools.cache
    def layout() -> ResultsPaths:
        root = storage.location(results_dir) if results_dir is not None else load_settings().results_dir
        return ResultsPaths(root)

    def run_key_of(ident: str) -> str:
        return _found(history.find_run(layout(), ident), f"no results for run {ident!r} in this results folder")

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("model")

    @app.get("/model", response_class=HTMLResponse)
    def model() -> HTMLResponse:
        return HTMLResponse(model_page(layout()))

    @app.get("/runs/{run_id}/report", response_class=HTMLResponse)
    def report(run_id: str, dag_id: str | None = None) -> HTMLResponse:
        if dag_id is not None and dag_id != DAG_ID:
            return _page("Report", "Report", f"Reports are kept for runs of {DAG_ID}; {dag_id} writes none.")
        key = history.find_run(layout(), run_id)
        if key is None:
            return _page("Report", f"Run {run_id}", "No results for this run: it has not started its first "
                                                    "task yet, or its folder was pruned.")
        return HTMLResponse(report_page(layout(), key))

    @app.get("/runs/{run_id}/model_card", response_class=HTMLResponse)
    def run_card(run_id: str) -> HTMLResponse:
        key = run_key_of(run_id)
        paths = layout().run(key)
        if not storage.exists(paths.model_card):
            raise HTTPException(status_code=404, detail="this run has no model card (yet): make_report writes it")
        return HTMLResponse(card_page(storage.read_bytes(paths.model_card).decode("utf-8"), f"Model card, run {key}",
                                      history.run_summary(layout(), key).get("signoff")))

    @app.get("/releases/{name}/model_card", response_class=HTMLResponse)
    def release_card(name: str) -> HTMLResponse:
        release = history.find_release(layout(), name)
        if release is None or not storage.exists(release.model_card):
            raise HTTPException(status_code=404, detail=f"no model card for release {name!r}")
        return HTMLResponse(card_page(storage.read_bytes(release.model_card).decode("utf-8"), f"Model card, {name}"))

    def batch_of(name: str) -> str:
        return _found(history.find_batch(layout(), name), f"no scored batch {name!r}")

    @app.get("/batches/{name}", response_class=HTMLResponse)
    def batch(name: str, sort: str = "call", order: str = "desc") -> HTMLResponse:
        return HTMLResponse(batch_page(layout(), batch_of(name), sort, order))

    @app.get("/batches/{name}/predictions.csv")
    def batch_predictions(name: str) -> Response:
        path = layout().batch(batch_of(name)).predictions
        if not storage.exists(path):
            raise HTTPException(status_code=404, detail="this batch has no predictions (yet)")
        return Response(storage.read_bytes(path), media_type="text/csv")

    @app.get("/api/batches")
    def batches() -> dict[str, Any]:
        return {"batches": history.list_batches(layout(), limit=1000)}

    @app.get("/api/batches/{name}")
    def batch_json(name: str) -> Any:
        return _found(history.batch_summary(layout(), batch_of(name)), "this batch has no report (yet)")

    @app.get("/api/runs")
    def runs() -> dict[str, Any]:
        return {"runs": history.list_runs(layout())}

    @app.get("/api/runs/{run_id}")
    def run(run_id: str) -> dict[str, Any]:
        return history.run_summary(layout(), run_key_of(run_id))

    @app.get("/api/runs/{run_id}/metrics")
    def run_metrics(run_id: str) -> Any:
        paths = layout().run(run_key_of(run_id))
        if not storage.exists(paths.metrics):
            raise HTTPException(status_code=404, detail="this run has no metrics (yet)")
        return storage.read_json(paths.metrics)

    @app.get("/api/releases")
    def releases() -> dict[str, Any]:
        return history.list_releases(layout())

    @app.get("/api/releases/{name}/manifest")
    def manifest(name: str) -> Any:
        release = history.find_release(layout(), name)
        if release is None or not storage.exists(release.manifest):
            raise HTTPException(status_code=404, detail=f"no release {name!r}")
        return storage.read_json(release.manifest)

    return app
