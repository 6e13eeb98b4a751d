"""The model in the Airflow UI: a FastAPI app the api-server mounts (``plugins/breast_cancer_ui.py``).

- ``/breast-cancer/runs/{run_id}/report``: a DAG run's **Report** tab. The run's state in one
  line (published, refused by the quality gate with the gate's reason, failed with the failing
  task and its one-line error), its headline metrics with their 95 % intervals, then the run's
  ``report.html``.
- ``/breast-cancer/model``: the **Model** page. The published release (run, time, model,
  threshold, metrics with intervals, links to its report and manifest), a chart of the headline
  metrics of every kept run, the releases and the recent runs with the gate's decision.
- ``/breast-cancer/runs/{run_id}/model_card``, ``/breast-cancer/releases/{name}/model_card``:
  a run's model card (``etl.releases.model_card``) and a release's, with its sign-off, as HTML.
- ``/breast-cancer/api/...``: the JSON the pages are made from, for scripts:
  ``api/runs``, ``api/runs/{run}``, ``api/runs/{run}/metrics``, ``api/releases``,
  ``api/releases/{name}/manifest``.

Every endpoint requires the UI's logged-in user (the api-server's JWT, from the
``Authorization: Bearer`` header or the UI's ``_token`` cookie) with read access to this DAG's
runs, through Airflow's own auth manager: plugin apps are not protected by Airflow on their own.
Runs and releases are looked up among the folders listed under the results root
(``etl.ui.history``), so a name such as ``../../etc/passwd`` is a 404, never a path.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse

from etl import storage
from etl.catalog import TRAINING_DAG_ID
from etl.settings import load_settings
from etl.storage.layout import ResultsPaths
from etl.ui import history

DAG_ID = TRAINING_DAG_ID  # the DAG whose runs have run folders

_LABELS = {"sensitivity": "Sensitivity", "specificity": "Specificity", "roc_auc": "ROC AUC"}
_COLOURS = {"sensitivity": "#c0392b", "specificity": "#2874a6", "roc_auc": "#1e8449"}
_STATE_COLOURS = {"published": "#1e8449", "refused": "#b9770e", "failed": "#c0392b", "rejected": "#922b21",
                  "awaiting sign-off": "#7d3c98", "evaluated": "#566573", "running": "#566573"}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;padding:1em 1.5em;color:#1c2833}
h1{font-size:1.4em;margin:.2em 0 .6em}h2{font-size:1.15em;margin:1.2em 0 .4em}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #d5d8dc;padding:.25em .6em;text-align:left}
th{background:#f4f6f7}.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.state{display:inline-block;color:#fff;border-radius:.3em;padding:0 .45em;font-size:.9em}
.banner{border:1px solid #d5d8dc;border-radius:.4em;padding:.6em 1em;margin:0 0 1em;background:#fbfcfc}
.current{font-weight:bold;color:#1e8449}.muted{color:#566573}a{color:#1f618d}
.empty{border:1px dashed #aab7b8;border-radius:.4em;padding:1em 1.2em;max-width:48em}
code{background:#f4f6f7;padding:0 .2em}
"""


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


# -- formatting ---------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "&ndash;"


def _interval(item: dict[str, Any] | None) -> str:
    """``0.976 (95 % CI 0.874&ndash;0.999)``."""
    if not item:
        return "&ndash;"
    ci = item.get("ci95")
    text = _num(item.get("value"))
    if ci and len(ci) == 2:
        text += f" (95 % CI {_num(ci[0])}&ndash;{_num(ci[1])})"
    return text


def _state(state: str) -> str:
    return f'<span class="state" style="background:{_STATE_COLOURS.get(state, "#566573")}">{_e(state)}</span>'


def _run_link(dag_id: str | None, run_id: str | None, text: str) -> str:
    """A link to the run's page in the Airflow UI (relative: works under any base URL)."""
    if not run_id:
        return _e(text)
    from urllib.parse import quote

    return (f'<a target="_top" href="../dags/{quote(dag_id or DAG_ID, safe="")}/runs/'
            f'{quote(run_id, safe="")}">{_e(text)}</a>')


def _signoff(signoff: dict[str, Any] | None) -> str:
    """A release's sign-off in one line (``etl.releases.model_card``'s record)."""
    decision = (signoff or {}).get("decision")
    if decision is None:
        return "<span class=muted>not recorded (published before sign-offs were recorded)</span>"
    if decision == "auto":
        return 'decided by the quality gate alone (<code>[release] approval = "auto"</code>)'
    comment = f" &mdash; &ldquo;{_e(signoff['comment'])}&rdquo;" if signoff.get("comment") else ""
    return f"{_e(decision)} by <b>{_e(history.signer(signoff))}</b> at {_e(signoff.get('at'))}{comment}"


def _required_actions(run: dict[str, Any], up: str) -> str:
    """A link to the Airflow UI page where the run's sign-off is answered."""
    from urllib.parse import quote

    return (f'<a target="_top" href="{up}dags/{quote(run["dag_id"] or DAG_ID, safe="")}/runs/'
            f'{quote(run["run_id"] or run["key"], safe="")}/tasks/approve_release/required_actions">'
            "Required Actions</a>")


def _html(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<title>{_e(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>')


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(_html(title, body))


def _metrics_table(headline: dict[str, Any], expected: dict[str, Any]) -> str:
    rows = []
    for label, name in _LABELS.items():
        exp = expected.get(label)
        if exp and "pooled" in exp:
            cell = _interval({"value": exp["pooled"], "ci95": exp["ci95"]})
        else:
            cell = _num(exp["mean"]) + " ± " + _num(exp["sd"]) if exp else "&ndash;"
        rows.append(f"<tr><td>{name}</td><td class=num>{_interval(headline.get(label))}</td>"
                    f"<td class=num>{cell}</td></tr>")
    return ("<table><tr><th>metric</th><th>test split (95 % CI)</th>"
            "<th>expected on unseen patients (nested CV: pooled, 95 % CI; ROC AUC mean ± SD)</th></tr>"
            + "".join(rows) + "</table>")


def _chart(runs: list[dict[str, Any]], releases: set[str]) -> str:
    """An SVG line chart of the headline metrics of every run with metrics, oldest first; runs
    that published a release are ringed."""
    points = [r for r in reversed(runs) if r["headline"]]
    if not points:
        return ""
    width, height, left, right, top, bottom = 760, 240, 48, 130, 12, 34
    values = [item["value"] for r in points for item in r["headline"].values() if item.get("value") is not None]
    low = min(0.8, min(values)) if values else 0.8
    low = max(0.0, (int(low * 20)) / 20)

    def x(i: int) -> float:
        return left + (width - left - right) * (i / max(1, len(points) - 1) if len(points) > 1 else 0.5)

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - low) / (1 - low))

    parts = [f'<svg role="img" aria-label="headline metrics by run" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" font-size="11">']
    step = 0.05 if 1 - low <= 0.25 else 0.1
    tick = low
    while tick <= 1.0001:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#eaeded"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
        tick += step
    for n, (label, name) in enumerate(_LABELS.items()):
        coords = [(x(i), y(r["headline"][label]["value"]), r) for i, r in enumerate(points) if label in r["headline"]]
        colour = _COLOURS[label]
        if len(coords) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="'
                         + " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _ in coords) + '"/>')
        for cx, cy, r in coords:
            ring = ' stroke="#1c2833" stroke-width="1.5"' if r["release"] in releases else ""
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{colour}"{ring}>'
                         f'<title>{_e(r["key"])}: {name} {_interval(r["headline"][label])}</title></circle>')
        parts.append(f'<rect x="{width - right + 12}" y="{top + 16 * n}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{width - right + 27}" y="{top + 9 + 16 * n}">{name}</text>')
    parts.append(f'<text x="{width - right + 12}" y="{top + 64}" fill="#566573">ringed: published</text>')
    ends = [(0, points[0], "start"), (len(points) - 1, points[-1], "end")] if len(points) > 1 \
        else [(0, points[0], "middle")]
    for i, r, anchor in ends:
        parts.append(f'<text x="{x(i):.1f}" y="{height - 10}" text-anchor="{anchor}" fill="#566573">'
                     f'{_e((r.get("started_at") or r["key"])[:16])}</text>')
    parts.append("</svg>")
    return "".join(parts)


# -- the pages ----------------------------------------------------------------------------------


def _report_link(run: dict[str, Any]) -> str:
    return f'<a href="runs/{_e(run["key"])}/report">report</a>' if run["has_report"] else ""


def _decision(run: dict[str, Any]) -> str:
    """The one-line outcome of a run, with the gate's decision."""
    text = f"{_state(run['state'])} {_e(run['reason'])}"
    gate = run.get("gate")
    if gate and run["state"] in ("published", "refused", "evaluated"):
        text += (" <span class=muted>(quality gate: " + ("passed" if gate["passed"] else "refused")
                 + f", {len(gate['checks'])} checks)</span>")
    return text


def report_page(layout: ResultsPaths, key: str) -> str:
    """The Report tab's HTML for the run in folder ``key``."""
    run = history.run_summary(layout, key)
    current = history.current_name(layout)
    banner = [f'<div class="banner"><h1>Run {_e(run["run_id"] or key)}</h1><p>{_decision(run)}</p>']
    if run["release"]:
        mark = ' <span class="current">(current release)</span>' if run["release"] == current else ""
        banner.append(f"<p>Release <code>{_e(run['release'])}</code>{mark}</p>")
    for failure in run["failures"]:
        banner.append(f"<p>Failed at <b>{_e(failure['task_id'])}</b>"
                      f"{' [' + _e(failure['map_index']) + ']' if failure.get('map_index', -1) >= 0 else ''}: "
                      f"{_e(failure['error'])}</p>")
    signoff = run.get("signoff") or {}
    if signoff.get("decision") == "rejected":
        banner.append(f'<p id="signoff">Rejected by <b>{_e(history.signer(signoff))}</b> at {_e(signoff.get("at"))}'
                      + (f": &ldquo;{_e(signoff['comment'])}&rdquo;" if signoff.get("comment") else " (no comment)")
                      + ". Nothing was published; the published release is unchanged.</p>")
    elif signoff.get("decision") == "pending":
        banner.append(f'<p id="signoff">Awaiting sign-off by {_e(", ".join(signoff.get("approvers") or []) or "anyone")}'
                      f" since {_e(signoff.get('asked_at'))}: answer under Browse &rarr; "
                      f"{_required_actions(run, '../../../')} (or the REST API). Nothing is published until "
                      "someone approves.</p>")
    elif signoff.get("decision") in ("approved", "timed_out", "not_asked"):
        banner.append(f'<p id="signoff">Sign-off: {_signoff(signoff)}</p>')
    if run.get("has_card"):
        banner.append('<p><a href="model_card">Model card</a></p>')
    gate = run["gate"]
    if gate and gate["failed_checks"]:
        banner.append("<p>Checks that refused the model:</p><ul>" + "".join(
            f"<li>{_e(c['check'])}: {_num(c.get('value'), 4)} (limit {_num(c.get('limit'), 4)})</li>"
            for c in gate["failed_checks"]) + "</ul>")
    if run["headline"]:
        banner.append('<p id="headline">' + "; ".join(
            f"{name} {_interval(run['headline'].get(label))}" for label, name in _LABELS.items()
            if label in run["headline"]) + f" on {_e(run['n_test'])} held-out rows, "
            f"threshold {_num(run['threshold'])}</p>")
    banner.append("</div>")
    head = "".join(banner)
    paths = layout.run(key)
    if run["has_report"]:
        report = storage.read_bytes(paths.report).decode("utf-8")
        match = re.search(r"<body[^>]*>", report)
        if match:
            return report[:match.end()] + f"<style>{_CSS}</style>" + head + report[match.end():]
    note = ("<p class=muted>No report yet: the report is written by <code>make_report</code>, "
            "after evaluation and the quality gate.</p>")
    return _html(f"Run {key}", head + note)


def _share(k: Any, n: Any, value: Any, ci: Any) -> str:
    """``0.974 [0.943, 0.991] (413 of 424)``; without ``k`` (the promise: pooled over repeated
    outer folds), ``(n = 424)``."""
    if not n:
        return "&ndash;"
    interval = f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else ""
    count = f"{_e(k)} of {_e(n)}" if k is not None else f"n = {_e(n)}"
    return f"{_num(value)}{interval} <span class=muted>({count})</span>"


def _outcomes_section(monitoring: dict[str, Any], current: str | None) -> str:
    """Expected against realized, per release, from the confirmed outcomes; the calibration
    table of the current release (or the newest with outcomes); the alarms."""
    head = "<h2>Confirmed outcomes</h2>"
    releases = monitoring["releases"]
    if not releases:
        return head + ('<div class="empty" id="outcomes"><p><b>No confirmed outcomes yet.</b> When the pathology '
                       "results of scored cases come back, drop a CSV of <code>id, diagnosis</code> (M or B, "
                       "optionally <code>date</code>) into the outcomes inbox (<code>[outcomes] inbox</code>, "
                       "default <code>data/outcomes/</code>): each release's real sensitivity and specificity "
                       "then appear here, beside what it promised.</p></div>")
    rows = []
    for name, rec in sorted(releases.items(), reverse=True):
        r, e = rec["realized"], rec.get("expected") or {}
        alarm = rec.get("alarm") or {}
        flag = (f'<span class="state" style="background:#c0392b">alarm</span> {_e("; ".join(alarm["reasons"]))}'
                if alarm.get("raised") else '<span class="muted">no alarm</span>')
        rows.append(
            f"<tr><td><code>{_e(name)}</code>{' <span class=current>current</span>' if name == current else ''}</td>"
            f"<td class=num>{_e(r['confirmed'])}</td>"
            f"<td class=num>{_share(None, e.get('malignant'), e.get('sensitivity'), e.get('sensitivity_ci95'))}</td>"
            f"<td class=num>{_share(r['caught'], r['malignant'], r['sensitivity'], r['sensitivity_ci95'])}</td>"
            f"<td class=num>{_share(None, e.get('benign'), e.get('specificity'), e.get('specificity_ci95'))}</td>"
            f"<td class=num>{_share(r['cleared'], r['benign'], r['specificity'], r['specificity_ci95'])}</td>"
            f"<td class=num>{_num(r['ppv'])}</td><td class=num>{_num(r['brier'])}</td><td>{flag}</td></tr>")
    table = ('<table id="outcomes"><tr><th>release</th><th>confirmed</th><th>sensitivity promised (nested CV)</th>'
             "<th>sensitivity realized</th><th>specificity promised</th><th>specificity realized</th><th>PPV</th>"
             "<th>Brier</th><th>alarm</th></tr>" + "".join(rows) + "</table>")
    shown = current if current in releases else sorted(releases)[-1]
    bands = releases[shown]["realized"].get("calibration") or []
    calibration = (f"<p>Calibration of <code>{_e(shown)}</code> on its confirmed cases:</p><table><tr><th>predicted "
                   "risk</th><th>cases</th><th>mean predicted</th><th>observed malignant</th><th>95 % CI</th></tr>"
                   + "".join(f"<tr><td>{b['band'][0]:.0%}&ndash;{b['band'][1]:.0%}</td><td class=num>{b['cases']}</td>"
                             f"<td class=num>{_num(b['mean_predicted'])}</td><td class=num>{_num(b['observed'])}</td>"
                             f"<td class=num>{_num(b['observed_ci95'][0])}&ndash;{_num(b['observed_ci95'][1])}</td></tr>"
                             for b in bands) + "</table>")
    summary = monitoring["summary"]
    notes = []
    if summary.get("unmatched"):
        notes.append(f"{len(summary['unmatched'])} outcome(s) for ids never scored, kept aside")
    if summary.get("conflicts"):
        notes.append(f"{len(summary['conflicts'])} id(s) with two different diagnoses, counted nowhere: "
                     + ", ".join(_e(c["id"]) for c in summary["conflicts"][:10]))
    return (head + f"<p>From {_e(len(summary.get('files', [])))} outcome file(s), {_e(summary.get('outcomes'))} "
            f"confirmed id(s); updated {_e(summary.get('updated_at'))}.</p>" + table + calibration
            + "".join(f"<p class=muted>{n}.</p>" for n in notes))


def _empty_model_page() -> str:
    return ('<h1>Breast cancer model</h1><div class="empty"><p><b>No run yet.</b> Nothing has been '
            'trained or published in this results folder.</p><p>Trigger the DAG: '
            f'<a target="_top" href="../dags/{DAG_ID}">{DAG_ID}</a> → <b>Trigger</b> (or '
            '<code>make run</code> from the project). Each run\'s report then appears in its '
            '<b>Report</b> tab, and published models here.</p></div>')


def model_page(layout: ResultsPaths) -> str:
    """The Model page's HTML: the published release, the chart, the releases and the runs."""
    runs = history.list_runs(layout)
    catalog = history.list_releases(layout)
    if not runs and not catalog["releases"]:
        return _html("Breast cancer model", _empty_model_page())
    parts = ["<h1>Breast cancer model</h1>"]
    current = next((r for r in catalog["releases"] if r["current"]), None)
    if current:
        model = current.get("model") or {}
        parts.append(
            f'<h2>Published release</h2><p id="current-release"><span class="current">current</span> '
            f"<code>{_e(current['name'])}</code>, published {_e(current['published_at'])} by run "
            f"{_run_link(current['dag_id'], current['run_id'], current['run_id'] or current['run_key'])}</p>"
            f"<p>Model <b>{_e(model.get('candidate'))}</b> ({_e(model.get('estimator'))}), decision threshold "
            f"{_num(current['threshold'])}. <a href=\"runs/{_e(current['run_key'])}/report\">Report</a> · "
            + (f"<a id=\"model-card\" href=\"releases/{_e(current['name'])}/model_card\">Model card</a> · "
               if current.get("has_card") else "")
            + f"<a href=\"api/releases/{_e(current['name'])}/manifest\">Manifest</a></p>"
            f'<p id="current-signoff">Sign-off: {_signoff(current.get("signoff"))}</p>'
            + (f'<p id="promise"><b>{_e(current["promise"])}</b></p>' if current.get("promise") else "")
            + (f"<p>Expected on unseen patients (nested CV, pooled): {_e(current['expected_line'])}.</p>"
               if current.get("expected_line") else "")
            + _metrics_table(current["headline"], current["expected"]))
    else:
        parts.append('<h2>Published release</h2><p id="current-release">None yet: no run has passed the '
                     "quality gate in this results folder.</p>")
    parts.append(_outcomes_section(history.monitoring(layout), current["name"] if current else None))
    parts.append("<h2>Headline metrics by run</h2>" + _chart(runs, {r["name"] for r in catalog["releases"]}))
    if catalog["releases"]:
        rows = "".join(
            f"<tr><td><code>{_e(r['name'])}</code>{' <span class=current>current</span>' if r['current'] else ''}</td>"
            f"<td>{_e(r['published_at'])}</td><td>{_e((r.get('model') or {}).get('candidate'))}</td>"
            + "".join(f"<td class=num>{_interval(r['headline'].get(label))}</td>" for label in _LABELS)
            + f"<td>{_signoff(r.get('signoff'))}</td>"
            + f"<td><a href=\"runs/{_e(r['run_key'])}/report\">report</a> · "
            + (f"<a href=\"releases/{_e(r['name'])}/model_card\">model card</a> · " if r.get("has_card") else "")
            + f"<a href=\"api/releases/{_e(r['name'])}/manifest\">manifest</a></td></tr>"
            for r in catalog["releases"])
        parts.append("<h2>Releases</h2><table><tr><th>release</th><th>published</th><th>model</th>"
                     + "".join(f"<th>{name}</th>" for name in _LABELS.values()) + "<th>sign-off</th><th></th></tr>"
                     + rows + "</table>")
    rows = "".join(
        f"<tr><td>{_e((r['started_at'] or '')[:19])}</td><td>{_run_link(r['dag_id'], r['run_id'], r['run_id'] or r['key'])}</td>"
        f"<td>{_decision(r)}</td>"
        + "".join(f"<td class=num>{_interval(r['headline'].get(label))}</td>" for label in _LABELS)
        + f"<td>{_report_link(r)}</td></tr>"
        for r in runs)
    parts.append("<h2>Recent runs</h2><table><tr><th>started</th><th>run</th><th>outcome</th>"
                 + "".join(f"<th>{name}</th>" for name in _LABELS.values()) + "<th></th></tr>" + rows + "</table>")
    return _html("Breast cancer model", "".join(parts))


def card_page(markdown: str, title: str, signoff: dict[str, Any] | None = None) -> str:
    """A model card as HTML (``etl.releases.model_card.to_html``); for a run's card written before the
    decision, the sign-off recorded since as a banner on top."""
    from etl.releases.model_card import to_html

    page = to_html(markdown, title)
    if signoff and signoff.get("decision") not in (None, "pending"):
        page = page.replace("<body>", f'<body><p id="signoff" style="border:1px solid #ccc;padding:.4em">'
                                      f"Sign-off since this card was written: {_signoff(signoff)}</p>", 1)
    return page


# -- the app ------------------------------------------------------------------------------------


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
        key = history.find_run(layout(), ident)
        if key is None:
            raise HTTPException(status_code=404, detail=f"no results for run {ident!r} in this results folder")
        return key

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("model")

    @app.get("/model", response_class=HTMLResponse)
    def model() -> HTMLResponse:
        return HTMLResponse(model_page(layout()))

    @app.get("/runs/{run_id}/report", response_class=HTMLResponse)
    def report(run_id: str, dag_id: str | None = None) -> HTMLResponse:
        if dag_id is not None and dag_id != DAG_ID:
            return _page("Report", f"<p class=muted>Reports are kept for runs of {DAG_ID}; "
                                   f"{_e(dag_id)} writes none.</p>")
        key = history.find_run(layout(), run_id)
        if key is None:
            return _page("Report", f"<h1>Run {_e(run_id)}</h1><p class=muted>No results for this run: it "
                                   "has not started its first task yet, or its folder was pruned.</p>")
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
