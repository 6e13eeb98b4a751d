"""The UI plugin's app (``etl.ui.app``) and what it reads (``etl.ui.history``), in-process with Airflow's
own auth manager and real tokens: the Report tab, the Model page and the JSON API on a results
folder with a published, a refused, a failed and a running run; auth on every endpoint;
traversal; the empty state; an ``s3://`` results root (moto on 127.0.0.1)."""

from __future__ import annotations

import html
import json
import re
import shutil
import uuid
from types import SimpleNamespace

import pytest

from etl import storage
from etl.catalog import DataValidationError
from etl.storage.layout import ResultsPaths, RunPaths, run_key
from tests.conftest import build_run, decide_and_publish, gate_settings
from tests.servers import BUCKET

PUBLISHED, REFUSED, FAILED, RUNNING = (
    "manual__2026-01-01T10:00:00+00:00", "manual__2026-01-02T10:00:00+00:00",
    "manual__2026-01-03T10:00:00+00:00", "manual__2026-01-04T10:00:00+00:00")
#: Every endpoint of the app (run and release names filled in by the tests).
ENDPOINTS = ["/", "/model", "/runs/{run}/report", "/runs/{run}/model_card", "/releases/{release}/model_card",
             "/api/runs", "/api/runs/{run}", "/api/runs/{run}/metrics", "/api/releases", "/api/releases/{release}/manifest",
             "/batches/{batch}", "/batches/{batch}/predictions.csv", "/api/batches", "/api/batches/{batch}"]
EASY = gate_settings(min_roc_auc=0.5)


@pytest.fixture(scope="module")
def auth(airflow_db):
    """Airflow's configured auth manager (the simple one), as the api-server initializes it,
    and a function minting its JWTs (the metadata DB holds the revoked-token list it checks)."""
    import os

    os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", uuid.uuid4().hex * 2)
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = init_auth_manager()
    return lambda role="admin": manager.generate_jwt(SimpleAuthManagerUser(username=f"u-{role}", role=role))


def _run_record(run: RunPaths, run_id: str, started: str) -> None:
    """What ``ensure_results_dir`` writes first in every run folder."""
    storage.write_json({"dag_id": "breast_cancer_etl_pipeline", "run_id": run_id, "logical_date": None,
                        "started_at": started}, run.run_record)


def _folder(results, run_id: str) -> RunPaths:
    return ResultsPaths(storage.location(results)).run(run_key(None, run_id))


@pytest.fixture(scope="module")
def results(tmp_path_factory, evaluated_runs, small_csv):
    """A results folder with four runs: published, refused by the gate, failed in load_data,
    still running (only its run record); and a batch scored with the published release, its first
    five rows with areas in another unit (x100)."""
    import pandas as pd

    from etl.orchestration.tasks import record_failure
    from etl.score import score_batch
    from etl.settings import load_settings

    root = tmp_path_factory.mktemp("web") / "results"
    published, refused = _folder(root, PUBLISHED), _folder(root, REFUSED)
    shutil.copytree(evaluated_runs["old"], published.root)
    _run_record(published, PUBLISHED, "2026-01-01T10:00:00+00:00")
    decide_and_publish(published.root, root, EASY, {"dag_id": "breast_cancer_etl_pipeline", "run_id": PUBLISHED})
    shutil.copytree(evaluated_runs["new"], refused.root)
    _run_record(refused, REFUSED, "2026-01-02T10:00:00+00:00")
    decide_and_publish(refused.root, root, gate_settings(min_roc_auc=1.01), {"run_id": REFUSED})
    failed = _folder(root, FAILED)
    _run_record(failed, FAILED, "2026-01-03T10:00:00+00:00")
    context = {"ti": SimpleNamespace(task_id="load_data", map_index=-1, try_number=1),
               "dag_run": SimpleNamespace(logical_date=None, run_id=FAILED), "run_id": FAILED,
               "exception": DataValidationError("row 7: 'radius_mean' is not a number ('abc')\nmore detail")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESULTS_DIR", str(root))
        record_failure(context)  # the tasks' on_failure_callback
    _run_record(_folder(root, RUNNING), RUNNING, "2026-01-04T10:00:00+00:00")
    rows = pd.read_csv(small_csv)
    rows.loc[:4, "area_worst"] *= 100
    rows.drop(columns=["diagnosis"]).to_csv(root.parent / "cases.csv", index=False)
    score_batch(root.parent / "cases.csv", root, load_settings().scoring)
    return root


def _client(results_dir):
    from fastapi.testclient import TestClient

    from etl.ui.app import create_app

    return TestClient(create_app(results_dir))


@pytest.fixture(scope="module")
def client(results, auth):
    client = _client(results)
    client.headers["Authorization"] = f"Bearer {auth()}"
    return client


def _text(page: str) -> str:
    """The page's text as a browser shows it (tags out, entities decoded, spaces collapsed)."""
    body = page.split("</style>")[-1]
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def test_the_failure_callback_records_the_task_and_its_first_line(results):
    record = json.loads((_folder(results, FAILED).failure("load_data")).read_text())
    assert record["task_id"] == "load_data" and record["map_index"] == -1
    assert record["error"] == "row 7: 'radius_mean' is not a number ('abc')"


def test_a_failure_record_goes_when_the_task_succeeds_later_and_scoring_runs_write_none(tmp_path, monkeypatch):
    from etl.catalog import SCORING_DAG_ID, TRAINING_DAG_ID
    from etl.orchestration.tasks import _step, record_failure

    monkeypatch.setenv("RESULTS_DIR", str(tmp_path))
    context = {"ti": SimpleNamespace(task_id="upload_results", map_index=-1, try_number=3),
               "dag_run": SimpleNamespace(dag_id=TRAINING_DAG_ID, logical_date=None, run_id="manual__x"),
               "run_id": "manual__x", "exception": OSError("Could not connect to the endpoint URL")}
    record = ResultsPaths(tmp_path).run(run_key(None, "manual__x")).failure("upload_results")
    record_failure(context)
    assert json.loads(record.read_text())["error"] == "Could not connect to the endpoint URL"
    assert _step(lambda **_: {"uploaded": "x"})(**context) == {"uploaded": "x"}  # cleared and rerun
    assert not record.exists()
    record_failure({**context, "dag_run": SimpleNamespace(dag_id=SCORING_DAG_ID, logical_date=None,
                                                          run_id="manual__x")})
    assert list(record.parent.iterdir()) == []  # nothing written for a scoring run


def test_runs_api_gives_each_runs_state_reason_and_headline(client, results):
    runs = client.get("/api/runs").json()["runs"]
    assert [r["run_id"] for r in runs] == [RUNNING, FAILED, REFUSED, PUBLISHED]  # newest first
    by_id = {r["run_id"]: r for r in runs}
    assert by_id[PUBLISHED]["state"] == "published" and by_id[PUBLISHED]["release"]
    metrics = json.loads((_folder(results, PUBLISHED).metrics).read_text())
    sensitivity = by_id[PUBLISHED]["headline"]["sensitivity"]
    assert sensitivity == {"value": metrics["recall"], "ci95": metrics["ci95"]["recall"],
                           "method": metrics["ci_method"]["recall"]}
    assert by_id[REFUSED]["state"] == "refused" and by_id[REFUSED]["release"] is None
    assert by_id[REFUSED]["reason"].startswith("quality gate: not published (roc_auc >= min_roc_auc")
    assert by_id[REFUSED]["gate"]["passed"] is False
    assert [c["check"] for c in by_id[REFUSED]["gate"]["failed_checks"]] == ["roc_auc >= min_roc_auc"]
    assert by_id[FAILED]["state"] == "failed"
    assert by_id[FAILED]["reason"] == "load_data: row 7: 'radius_mean' is not a number ('abc')"
    assert by_id[RUNNING]["state"] == "running" and by_id[RUNNING]["headline"] == {}
    # One run by its run id or its folder name; its metrics as evaluate_model wrote them.
    key = run_key(None, PUBLISHED)
    assert client.get(f"/api/runs/{key}").json() == by_id[PUBLISHED]
    assert client.get("/api/runs/" + PUBLISHED.replace("+", "%2B")).json() == by_id[PUBLISHED]
    assert client.get(f"/api/runs/{key}/metrics").json() == metrics
    assert client.get(f"/api/runs/{run_key(None, RUNNING)}/metrics").status_code == 404


def test_releases_api_marks_the_current_release(client, results):
    body = client.get("/api/releases").json()
    (release,) = body["releases"]
    assert body["current"] == release["name"] and release["current"] is True
    assert release["run_id"] == PUBLISHED and release["name"].startswith(run_key(None, PUBLISHED))
    manifest = client.get(f"/api/releases/{release['name']}/manifest").json()
    assert manifest == json.loads((results / "manifest.json").read_text())
    assert release["threshold"] == manifest["model"]["threshold"]


def test_report_tab_shows_state_headline_and_the_report(client, results):
    page = client.get(f"/runs/{PUBLISHED}/report", params={"dag_id": "breast_cancer_etl_pipeline"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = _text(page.text)
    metrics = json.loads((_folder(results, PUBLISHED).metrics).read_text())
    low, high = metrics["ci95"]["recall"]
    assert f"Sensitivity {metrics['recall']:.3f} (95 % CI {low:.3f}\u2013{high:.3f})" in text
    assert "(current release)" in text and "published" in text
    report = (_folder(results, PUBLISHED).report).read_text()
    assert report.split("<body>", 1)[1][:200] in page.text  # the run's own report follows

    refused = _text(client.get(f"/runs/{REFUSED}/report").text)
    assert "refused" in refused and "roc_auc >= min_roc_auc" in refused
    failed = _text(client.get(f"/runs/{FAILED}/report").text)
    assert "Failed at load_data : row 7: 'radius_mean' is not a number ('abc')" in failed
    assert "No report yet" in failed
    other = _text(client.get(f"/runs/{FAILED}/report", params={"dag_id": "breast_cancer_scoring"}).text)
    assert "Reports are kept for runs of breast_cancer_etl_pipeline" in other
    missing = client.get("/runs/manual__never/report")
    assert missing.status_code == 200 and "No results for this run" in missing.text


def test_model_page_shows_the_release_history_and_every_run(client, results):
    page = client.get("/model")
    assert page.status_code == 200
    text = _text(page.text)
    release = json.loads((results / "manifest.json").read_text())["release"]
    assert f"current {release}" in text
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["guarantee"] in text  # the promise, then the pooled nested estimate as counts
    pooled = metrics["expected_performance"]["pooled"]
    assert f"caught {pooled['confusion_matrix']['tp']} of {pooled['malignant']} malignant" in text
    assert "<svg" in page.text and "polyline" in page.text  # the chart: two runs with metrics
    for run_id in (PUBLISHED, REFUSED, FAILED, RUNNING):
        assert run_id in text
    assert "quality gate: refused" in text and "load_data: row 7" in text
    assert client.get("/", follow_redirects=False).headers["location"] == "model"


def _batch(client) -> str:
    (batch,) = client.get("/api/batches").json()["batches"]
    return batch["name"]


def test_a_scored_batch_has_its_view_from_the_model_page(client, results):
    """The Model page lists the batch with its counts per call and links its view: the counts, the
    drift line, every case with its call, probability and reasons (or why it is out of scope)."""
    import pandas as pd

    name = _batch(client)
    model = client.get("/model").text
    assert f'href="batches/{name}"' in model and "Scored batches" in model
    report = client.get(f"/api/batches/{name}").json()
    assert report["calls"]["out of scope"] == 5 and sum(report["calls"].values()) == report["rows"] == 60
    page = client.get(f"/batches/{name}")
    text = _text(page.text)
    for call, count in report["calls"].items():
        assert f"{call} {count} " in text, (call, text[:600])
    assert report["drift_line"] and report["drift_line"] in text
    scored = pd.read_csv(results / "scoring" / name / "predictions.csv")
    shown = re.findall(r"<tr><td>(\d+)</td><td>([a-z ]+)</td>", page.text)
    assert len(shown) == 60 and {int(i) for i, _ in shown} == set(scored["id"])
    # by call: malignant, refer, benign, out of scope; within a call, highest probability first
    order = ["malignant", "refer", "benign", "out of scope"]
    calls = [c for _, c in shown]
    assert calls == sorted(calls, key=order.index)
    first = scored.set_index("id").loc[int(shown[0][0])]
    assert first["reason_1"] in html.unescape(page.text)
    assert first["malignant_probability"] == scored.loc[scored["call"] == calls[0], "malignant_probability"].max()
    outside = scored.loc[scored["call"] == "out of scope"].iloc[0]
    assert html.unescape(outside["out_of_scope"]) in html.unescape(page.text)
    # by probability, lowest first
    low = client.get(f"/batches/{name}?sort=probability&order=asc").text
    ids = [int(i) for i, _ in re.findall(r"<tr><td>(\d+)</td><td>([a-z ]+)</td>", low)]
    expect = scored.assign(p=pd.to_numeric(scored["malignant_probability"])).sort_values("p", kind="stable")["id"]
    assert ids == list(expect)
    assert client.get(f"/batches/{name}/predictions.csv").content == (results / "scoring" / name / "predictions.csv").read_bytes()


def test_the_model_card_and_the_signoff_of_releases_and_runs(tmp_path, evaluated_runs, auth):
    """The Model page links the published release's card and says who signed it off; the Report
    tab of a run awaiting sign-off says where to answer, and that of a rejected run who rejected
    it and why; each card is served as HTML."""
    from etl.orchestration.approval import record

    root = tmp_path / "results"
    approved, waiting, rejected = (_folder(root, r) for r in (PUBLISHED, REFUSED, FAILED))
    for folder, run_id in ((approved, PUBLISHED), (waiting, REFUSED), (rejected, FAILED)):
        shutil.copytree(evaluated_runs["new"], folder.root)
        _run_record(folder, run_id, "2026-01-01T10:00:00+00:00")
    record(approved, decision="approved", by={"id": "ana", "name": "ana"}, at="2026-01-01T11:00:00+00:00",
           comment="read the card")
    decide_and_publish(approved.root, root, EASY, {"run_id": PUBLISHED}, approval="required")
    record(waiting, decision="pending", approvers=["ana", "ben"], asked_at="2026-01-02T10:05:00+00:00")
    record(rejected, decision="rejected", by={"id": "ben", "name": "ben"}, at="2026-01-03T11:00:00+00:00",
           comment="too few malignant cases")
    client = _client(root)
    client.headers["Authorization"] = f"Bearer {auth()}"

    page = client.get("/model").text
    release = client.get("/api/releases").json()["current"]
    assert f'href="releases/{release}/model_card"' in page
    text = _text(page)
    # the sign-off in the sentence of etl/templates/wording.j2, as the card says it
    assert "Sign-off: Approved by ana at 2026-01-01T11:00:00+00:00. Comment: “read the card”." in text
    assert "rejected by ben" in text and "awaiting sign-off by ana, ben" in text  # the runs' outcomes
    card = client.get(f"/releases/{release}/model_card")
    assert card.status_code == 200 and "<table>" in card.text
    assert "Approved by <strong>ana</strong> at 2026-01-01T11:00:00+00:00. Comment: “read the card”." in card.text
    assert f"Release <code>{release}</code>" in card.text

    report = client.get(f"/runs/{REFUSED}/report").text
    assert "Awaiting sign-off by ana, ben since 2026-01-02T10:05:00+00:00" in _text(report)
    link = f'href="../../../dags/breast_cancer_etl_pipeline/runs/{REFUSED}/tasks/approve_release/required_actions"'
    assert link.replace(":", "%3A").replace("+", "%2B") in report
    report = _text(client.get(f"/runs/{FAILED}/report").text)
    assert ("Rejected by ben at 2026-01-03T11:00:00+00:00: not published; the published release is unchanged. "
            "Comment: “too few malignant cases”.") in report
    run_card = client.get(f"/runs/{FAILED}/model_card").text
    assert "Sign-off since this card was written: Rejected by ben" in _text(run_card)
    assert client.get(f"/runs/{RUNNING}/model_card").status_code == 404


def test_every_endpoint_refuses_anonymous_invalid_and_unprivileged_callers(results, auth, client):
    release = client.get("/api/releases").json()["current"]
    anonymous = _client(results)
    for template in ENDPOINTS:
        path = template.format(run=PUBLISHED, release=release, batch=_batch(client))
        assert client.get(path, follow_redirects=False).status_code in (200, 307), path
        assert anonymous.get(path).status_code == 401, path
        assert anonymous.get(path, headers={"Authorization": "Bearer not.a.token"}).status_code == 403, path
        assert anonymous.get(path, headers={"Authorization": f"Bearer {auth(None)}"}).status_code == 403, path
        # The UI's session cookie is what the iframes send.
        assert anonymous.get(path, cookies={"_token": auth()}, follow_redirects=False).status_code in (200, 307)
    assert anonymous.get("/docs").status_code == 404 and anonymous.get("/openapi.json").status_code == 404


def test_the_plugin_mounts_the_app_made_at_its_first_request(results, auth, monkeypatch):
    """The plugin's app as the api-server mounts it (``app.mount(url_prefix, app)``): made at
    the first request (loading the plugin makes none: tests/test_imports.py), then the same
    app for every request, with its auth."""
    import importlib
    import sys

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from tests.conftest import PROJECT_ROOT

    monkeypatch.setenv("RESULTS_DIR", str(results))
    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "plugins"))
    sys.modules.pop("breast_cancer_ui", None)
    plugin = importlib.import_module("breast_cancer_ui").BreastCancerModelPlugin
    (mounted,) = plugin.fastapi_apps
    assert mounted["app"]._app is None  # nothing made by loading the plugin
    root = FastAPI()
    root.mount(mounted["url_prefix"], mounted["app"])
    api = TestClient(root)
    assert api.get("/breast-cancer/api/runs").status_code == 401
    made = mounted["app"]._app
    assert made is not None
    runs = api.get("/breast-cancer/api/runs", headers={"Authorization": f"Bearer {auth()}"})
    assert runs.status_code == 200 and PUBLISHED in {r["run_id"] for r in runs.json()["runs"]}
    assert mounted["app"]._app is made  # one app for every request


@pytest.mark.parametrize("name", [
    "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2E%2E", "%2E", "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "..%252F..%252Fetc", "%2Fetc%2Fpasswd", "runs", "published", "current", "manifest.json",
])  # (a bare "." or ".." is resolved by the HTTP client before it is sent)
def test_no_name_reaches_outside_the_listed_runs_and_releases(client, name):
    for template in ("/api/runs/{}", "/api/runs/{}/metrics", "/api/releases/{}/manifest", "/runs/{}/model_card",
                     "/releases/{}/model_card", "/batches/{}", "/batches/{}/predictions.csv", "/api/batches/{}"):
        response = client.get(template.format(name))
        assert response.status_code == 404, (template, name, response.text)
    page = client.get(f"/runs/{name}/report")
    assert page.status_code == 404 or "No results for this run" in page.text
    assert "root:" not in page.text


def test_empty_results_folder_says_how_to_start(tmp_path, auth):
    client = _client(tmp_path / "nothing-yet")
    client.headers["Authorization"] = f"Bearer {auth()}"
    assert client.get("/api/runs").json() == {"runs": []}
    assert client.get("/api/releases").json() == {"current": None, "releases": []}
    text = _text(client.get("/model").text)
    assert "No run yet." in text and "Trigger" in text and "make run" in text


def test_an_s3_results_root(s3_server, monkeypatch, small_csv, auth):
    from etl.settings import load_settings

    monkeypatch.setenv("AIRFLOW_CONN_WEB_S3", s3_server.connection())
    monkeypatch.setenv("RESULTS_DIR", f"s3://{BUCKET}/web-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("RESULTS_CONN_ID", "web_s3")
    root = load_settings().results_dir
    run = build_run(root / "runs" / run_key(None, PUBLISHED), small_csv)
    _run_record(run, PUBLISHED, "2026-01-01T10:00:00+00:00")
    decide_and_publish(run.root, root, EASY, {"run_id": PUBLISHED})

    client = _client(None)  # the settings' results root, as in the api-server
    client.headers["Authorization"] = f"Bearer {auth()}"
    (listed,) = client.get("/api/runs").json()["runs"]
    assert listed["state"] == "published" and listed["has_report"]
    current = client.get("/api/releases").json()["current"]
    assert current == listed["release"]
    assert client.get(f"/api/releases/{current}/manifest").json()["run"]["run_id"] == PUBLISHED
    assert "(current release)" in _text(client.get(f"/runs/{PUBLISHED}/report").text)
    assert f"current {current}" in _text(client.get("/model").text)
    assert client.get("/api/runs/..%2F..%2Fcurrent.json").status_code == 404

