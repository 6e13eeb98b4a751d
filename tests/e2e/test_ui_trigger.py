"""The UI path: ``make airflow`` starts the full stack; a person logs in through the UI's login
form in a real browser (headless Chromium), triggers a run from the DAG's Trigger form, and a
second run comes through the REST API the UI uses (``POST /api/v2/dags/{dag_id}/dagRuns``). Both
succeed, publish, and keep their files apart. The run's Report tab and the Model page (the
project's UI plugin) show what the run found. Then a file dropped into the scoring inbox is
scored with no trigger: the inbox watcher and the asset schedule on the real scheduler; the
confirmed diagnoses of those cases, dropped into the outcomes inbox, update the release's
monitoring record and the Model page, and start a training run on the grown data."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from deploy.checks import listening_addresses
from deploy.net import Api  # the REST client deploy/cluster.py uses
from etl.data.drift import summary as drift_summary
from etl.releases.reader import current_release, release_is_intact, run_release
from etl.storage.layout import run_key
from tests.browser import browser as open_browser
from tests.conftest import CANDIDATES, DAG_ID, PROJECT_ROOT
from tests.e2e.test_dags_test import RUN_FILES
from tests.e2e.test_tasks_test import ORDER
from tests.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _wait(condition, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"make airflow exited ({proc.returncode}) while waiting for {what}:\n"
                        + log.read_text()[-4000:])
        try:
            value = condition()
            if value:
                return value
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(2)
    pytest.fail(f"timed out waiting for {what}:\n" + log.read_text()[-4000:])


def _server_said(body: dict, log: Path) -> str:
    """The api-server's log around the error id of a 500 answer (its body hides the cause)."""
    message = str(body.get("detail", {}).get("message", "")) if isinstance(body, dict) else ""
    error_id = message.rsplit(" ", 1)[-1] if "look for ID" in message else None
    lines = log.read_text(errors="replace").splitlines()
    hits = [i for i, line in enumerate(lines) if error_id and error_id in line]
    shown = lines[max(hits[0] - 40, 0):hits[0] + 40] if hits else lines[-80:]
    return f"{body}\napi-server log:\n" + "\n".join(shown)


#: The tests' fast settings, but the shipped procedure for ``make ui-screenshots``: the README's
#: pictures show what a user's run shows.
SETTINGS = "" if os.environ.get("UI_SCREENSHOTS") else f"{PROJECT_ROOT / 'tests' / 'fast.toml'}:"
OUTER_FOLDS = 10 if os.environ.get("UI_SCREENSHOTS") else 2  # pipeline.toml's 5 x 2, fast.toml's 2 x 1


@pytest.fixture
def stack(tmp_path, webhook_server):
    """``make airflow`` on free ports of 127.0.0.1 (the UI's, the execution API's), with its own
    Airflow home and secrets; alerts go to the local webhook receiver."""
    config = tmp_path / "outcomes.toml"  # a new training data version from 30 confirmed cases
    config.write_text('[outcomes]\nretrain_min_cases = 30\n[alerts]\nwebhook_conn_id = "alert_webhook"\n')
    with airflow_stack(tmp_path, OUTCOMES_INBOX=str(tmp_path / "outcomes"), PIPELINE_CONFIG=f"{SETTINGS}{config}",
                       AIRFLOW_CONN_ALERT_WEBHOOK=webhook_server.connection()) as started:
        yield started


@contextmanager
def airflow_stack(tmp_path: Path, **extra_env: str):
    """``make airflow`` as the ``stack`` fixture starts it, with ``extra_env`` on top; yields
    the process, a REST client, ``tmp_path`` and the log; stops every process of it."""
    port = free_port()
    env = {
        **os.environ,
        "PIPELINE_AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "PIPELINE_SECRETS_DIR": str(tmp_path / "secrets"),
        "AIRFLOW__API__PORT": str(port),
        "PIPELINE_EXECUTION_API_PORT": str(free_port()),
        "RESULTS_DIR": str(tmp_path / "results"),
        "UPLOAD_URI": str(tmp_path / "uploads"),
        "SCORING_INBOX": str(tmp_path / "incoming"),
        **extra_env,
    }
    env.pop("AIRFLOW__API__HOST", None)  # the Makefile's default: 127.0.0.1
    log = tmp_path / "airflow.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["make", "--no-print-directory", "airflow"], cwd=PROJECT_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, Api(f"http://127.0.0.1:{port}"), tmp_path, log
    finally:
        for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        time.sleep(1)
        try:  # nothing of the group survives
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def ui_browser():
    """Opens headless Chromium sessions (tests/browser.py) and closes them after the test."""
    with ExitStack() as sessions:
        yield lambda base, shots: sessions.enter_context(open_browser(base, shots))


def test_trigger_in_the_browser_and_see_the_report(stack, ui_browser, webhook_server):
    proc, api, tmp_path, log = stack
    _wait(lambda: api.call("GET", "/api/v2/monitor/health")[0] == 200, 300, "the API", proc, log)  # room for a busy machine

    status, body = api.call("POST", "/auth/token", {"username": "admin", "password": "admin"})
    assert status == 201, body
    api.token = body["access_token"]
    assert api.call("POST", "/auth/token", {"username": "admin", "password": "wrong"})[0] == 401

    dag = _wait(lambda: (lambda r: r[0] == 200 and r[1])(api.call("GET", f"/api/v2/dags/{DAG_ID}")),
                300, "the DAG to be parsed", proc, log)
    assert dag["is_paused"] is False

    # Two runs at once (max_active_runs=4, parallelism=4): they must not mix their files. The
    # first from the UI's Trigger form in a browser, the second through REST.
    browser = ui_browser(api.base, tmp_path / "screenshots")
    browser.login("admin", "admin")
    browser.trigger(DAG_ID)
    browser.idle()  # the runs are followed through REST
    (ui_run,) = _wait(lambda: api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")[1]["dag_runs"], 180,
                      "the run triggered in the browser", proc, log)
    assert ui_run["run_type"] == "manual" and ui_run["triggered_by"] == "ui", ui_run
    status, run = api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {}})
    assert status == 200, _server_said(run, log)
    run_ids = [ui_run["dag_run_id"], run["dag_run_id"]]

    # A mistyped parameter: the run fails in its first task, with one line, and writes nothing
    # but the record of that failure.
    status, bad = api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {"c": 0.5}})
    assert status == 200, _server_said(bad, log)

    def finished():
        runs = [api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{r}")[1] for r in [*run_ids, bad["dag_run_id"]]]
        return runs if all(r.get("state") in ("success", "failed") for r in runs) else None

    *runs, refused = _wait(finished, 900, "the runs to finish", proc, log)  # room for a busy machine
    assert [r["state"] for r in runs] == ["success", "success"], log.read_text()[-4000:]
    # The tasks reported to the execution API in its own process (scripts/airflow-stack.sh), not
    # to the api-server of the UI, whose audit-log commits could deadlock with them on SQLite.
    served = log.read_text()
    assert re.search(r"^execution-api \|.*path=/execution/task-instances/", served, re.M), served[-4000:]
    assert not re.search(r"^api-server \|.*path=/execution/", served, re.M)
    assert refused["state"] == "failed"
    status, tis = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{bad['dag_run_id']}/taskInstances")
    states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
    assert states.pop("ensure_results_dir") == "failed" and "success" not in states.values(), states
    status, task_log = api.call(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{bad['dag_run_id']}/taskInstances/ensure_results_dir/logs/1")
    assert status == 200 and "unknown run parameter(s) 'c' (did you mean 'C'?)" in json.dumps(task_log), task_log
    first, second = sorted(runs, key=lambda r: r["start_date"])
    assert second["start_date"] < first["end_date"], "the runs did not overlap"

    # The quality gate decides once: a run whose gate compared with a release that the other run
    # replaced before it could publish publishes nothing (save_results and upload_results end
    # skipped, the reason recorded); at least the first to publish does.
    results = tmp_path / "results"
    folders = [results / "runs" / run_key(_date(r["logical_date"]), r["dag_run_id"]) for r in (ui_run, run)]
    published_runs = [run_release(f, results) is not None for f in folders]
    assert any(published_runs)
    for run_id, folder, published in zip(run_ids, folders, published_runs, strict=True):
        status, tis = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
        last = "success" if published else "skipped"
        assert {ti["task_id"]: ti["state"] for ti in tis["task_instances"]} == {
            **{t: "success" for t in [*ORDER, "nested_cv"]}, "save_results": last, "upload_results": last}
        if not published:
            reason = json.loads((folder / "release.json").read_text())["reason"]
            assert "was published since; to publish it, run quality_gate again" in reason, reason
        # One mapped train_model per candidate, named in the UI by map_index_template.
        assert sorted(ti["rendered_map_index"] for ti in tis["task_instances"] if ti["task_id"] == "train_model") \
            == sorted(CANDIDATES)
        assert sorted(ti["rendered_map_index"] for ti in tis["task_instances"] if ti["task_id"] == "nested_cv") \
            == sorted(f"fold {i}" for i in range(OUTER_FOLDS))

    refused_folder = results / "runs" / run_key(None, bad["dag_run_id"])
    assert sorted(p.name for p in (results / "runs").iterdir()) == sorted(f.name for f in [*folders, refused_folder])
    # The refused run wrote only the record of its failure, for its Report tab.
    assert [p.relative_to(refused_folder).as_posix() for p in sorted(refused_folder.rglob("*"))] \
        == ["failures", "failures/ensure_results_dir.json"]
    for folder, run_id, published in zip(folders, run_ids, published_runs, strict=True):
        assert sorted(p.name for p in folder.iterdir()) == RUN_FILES
        if not published:
            assert not (tmp_path / "uploads" / folder.name).exists()
            continue
        release = run_release(folder, results)
        assert release_is_intact(release)
        manifest = json.loads((release / "manifest.json").read_text())
        assert manifest["run"]["run_id"] == run_id
        assert manifest["data"]["sha256"] == json.loads((folder / "profile.json").read_text())["source_sha256"]
        uploaded = tmp_path / "uploads" / folder.name
        assert {p.name: p.read_bytes() for p in uploaded.iterdir()} == {
            p.name: p.read_bytes() for p in release.iterdir()}
    # Same data and parameters: the two runs agree byte for byte.
    for name in ("metrics.json", "predictions.csv", "model.skops"):
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes()
    # What is published is one of the two releases, whole.
    published = current_release(results)
    assert published in [run_release(f, results) for f in folders if run_release(f, results)]
    assert {n: (results / n).read_bytes() for n in ("metrics.json", "model.pkl", "scaler.pkl", "manifest.json")} \
        == {n: (published / n).read_bytes() for n in ("metrics.json", "model.pkl", "scaler.pkl", "manifest.json")}
    metrics = json.loads((results / "metrics.json").read_text())
    assert 0.9 <= metrics["accuracy"] <= 1.0

    # What the run found, one click from the run: its Report tab (the UI plugin), in the browser.
    browser.open_run(DAG_ID, ui_run["dag_run_id"])
    mine = json.loads((folders[0] / "metrics.json").read_text())
    low, high = mine["ci95"]["recall"]
    report = browser.frame_text("Report", "Sensitivity")
    assert f"Sensitivity {mine['recall']:.3f} (95 % CI {low:.3f}\u2013{high:.3f})" in report, report
    if published_runs[0]:
        mine_release = run_release(folders[0], results).name
        assert f"published as {mine_release}" in report
        assert ("(current release)" in report) == (mine_release == published.name)
    else:
        assert "was published since" in report, report
    assert f"Run {run_key(_date(ui_run['logical_date']), ui_run['dag_run_id'])}: " in report  # report.html
    if not published_runs[0]:  # the README shows a typical run's tab: one that published
        browser.open_run(DAG_ID, run["dag_run_id"])
        assert "published as" in browser.frame_text("Report", "Sensitivity")
    browser.screenshot("report-tab")
    browser.open_run(DAG_ID, bad["dag_run_id"])
    failed = browser.frame_text("Report", "Failed at")
    assert "Failed at ensure_results_dir: unknown run parameter(s) 'c' (did you mean 'C'?)" in failed, failed
    # The Model page in the navigation: the release history, the current release marked.
    model = browser.frame_text("Model", "Published release")
    assert f"current {published.name}" in model and "verifies now" in model, model
    assert all(r in model for r in run_ids) and "Recent runs" in model and "Releases" in model
    browser.screenshot("model-page")
    _keep_screenshots(tmp_path / "screenshots")
    browser.idle()

    # Scoring on the real scheduler: a file dropped into the inbox is scored with no trigger
    # (the inbox watcher in the triggerer claims it; the asset schedules breast_cancer_scoring).
    incoming = tmp_path / "incoming"
    incoming.mkdir(exist_ok=True)
    staged = tmp_path / "new-cases.csv"
    shipped = pd.read_csv(PROJECT_ROOT / "data" / "wdbc.csv")
    new_cases = shipped.head(40).assign(id=lambda d: d["id"] + 100_000)  # new patients: ids the data lacks
    new_cases.drop(columns=["diagnosis"]).to_csv(staged, index=False)
    dropped = time.monotonic()
    os.replace(staged, incoming / "new-cases.csv")  # whole, in one rename
    processed = incoming / "processed" / "new-cases.csv"
    _wait(processed.exists, 300, "the dropped file to be scored", proc, log)  # ~30 s idle
    waited = time.monotonic() - dropped
    (batch,) = (results / "scoring").iterdir()
    scored = pd.read_csv(batch / "predictions.csv")
    assert len(scored) == 40 and set(scored["release"]) == {published.name}
    status, scoring_runs = api.call("GET", "/api/v2/dags/breast_cancer_scoring/dagRuns")
    assert [r["run_type"] for r in scoring_runs["dag_runs"]] == ["asset_triggered"], scoring_runs
    print(f"dropped file scored in {waited:.0f} s")
    # The batch's own view, from the Model page: its counts per call, its drift, its cases with
    # their reasons, sorted by call, then by probability when that header is clicked.
    report = json.loads((batch / "report.json").read_text())
    browser.driver.get(api.base + "/")
    model = browser.frame_text("Model", "Scored batches")
    assert batch.name in model, model
    view = browser.click_in_frame("link text", batch.name, "Cases")
    for call, count in report["calls"].items():
        assert f"{call} {count} " in view, (call, view[:800])
    assert drift_summary(report["drift"]) in view
    def first_case(text: str) -> str:
        lines = text.splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("id") and "probability of malignancy" in line)
        return lines[header + 1]

    ranked = scored.assign(order=scored["call"].map({"malignant": 0, "refer": 1, "benign": 2, "out of scope": 3}))
    top = ranked.sort_values(["order", "malignant_probability"], ascending=[True, False], kind="stable").iloc[0]
    assert first_case(view).startswith(f"{top['id']} {top['call']} ") and top["reason_1"] in first_case(view), view[:800]
    browser.click_in_frame("id", "sort-probability", "probability of malignancy ▼")
    view = browser.click_in_frame("id", "sort-probability", "probability of malignancy ▲")
    lowest = scored.sort_values("malignant_probability", kind="stable").iloc[0]
    assert first_case(view).startswith(f"{lowest['id']} ") and lowest["reason_1"] in first_case(view), view[:800]
    browser.screenshot("batch-view")
    browser.idle()

    # A tampered release (one byte of its model.pkl): the next batch is refused in one line,
    # alerted, and waits in queued/ (nothing lost, nothing scored); the release restored, the
    # next run of the scoring DAG scores it.
    pickle_file = published / "model.pkl"
    original = pickle_file.read_bytes()
    pickle_file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    new_cases.head(10).assign(id=lambda d: d["id"] + 100_000).drop(columns=["diagnosis"]).to_csv(staged, index=False)
    os.replace(staged, incoming / "more-cases.csv")
    refusal = f"release {published.name}: its files differ from what was signed (model.pkl changed)"

    def alerted():
        return [body["text"] for _, body in webhook_server.posts if "score_batch" in body.get("text", "")]
    (alert,) = _wait(alerted, 300, "the refusal to be alerted", proc, log)
    assert alert.startswith("[Airflow] task score_batch of DAG breast_cancer_scoring failed") and refusal in alert
    assert (incoming / "queued" / "more-cases.csv").exists() and len(list((results / "scoring").iterdir())) == 1
    pickle_file.write_bytes(original)
    status, rescore = api.call("POST", "/api/v2/dags/breast_cancer_scoring/dagRuns", {"logical_date": None})
    assert status == 200, _server_said(rescore, log)
    _wait((incoming / "processed" / "more-cases.csv").exists, 300, "the waiting batch to be scored", proc, log)
    assert not (incoming / "queued" / "more-cases.csv").exists() and len(list((results / "scoring").iterdir())) == 2

    # Their confirmed diagnoses come back: an outcome file dropped into the outcomes inbox, with
    # no trigger, updates the release's monitoring record and the Model page; past
    # retrain_min_cases (30 here) a new version of the training data starts the training DAG,
    # whose gate compares with the published model.
    outcomes_inbox = tmp_path / "outcomes"
    outcomes_inbox.mkdir(exist_ok=True)
    new_cases[["id", "diagnosis"]].to_csv(tmp_path / "pathology.csv", index=False)
    os.replace(tmp_path / "pathology.csv", outcomes_inbox / "pathology.csv")
    record = results / "monitoring" / "releases" / f"{published.name}.json"
    _wait(record.exists, 300, "the outcomes to be recorded", proc, log)
    realized = json.loads(record.read_text())["realized"]
    assert realized["confirmed"] == 40 and realized["malignant"] == int((new_cases["diagnosis"] == "M").sum())
    status, outcome_runs = api.call("GET", "/api/v2/dags/breast_cancer_outcomes/dagRuns")
    assert [r["run_type"] for r in outcome_runs["dag_runs"]] == ["asset_triggered"], outcome_runs
    browser.driver.get(api.base + "/")  # a fresh Model page, not the one shown above
    model = browser.frame_text("Model", "sensitivity realized")
    assert f"{realized['caught']} of {realized['malignant']}" in model and "no alarm" in model, model
    browser.idle()
    grown = _wait(lambda: [r for r in api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")[1]["dag_runs"]
                           if r["run_type"] == "asset_triggered"], 300, "the training run on the grown data", proc, log)
    retrain = finished_run(api, grown[0]["dag_run_id"], proc, log)
    assert retrain["state"] == "success", retrain
    folder = results / "runs" / run_key(_date(retrain["logical_date"]), retrain["dag_run_id"])
    profile = json.loads((folder / "profile.json").read_text())
    assert profile["rows"] == 569 + 40 and profile["source"].endswith("datasets/v0001/data.csv"), profile
    gate = json.loads((folder / "gate.json").read_text())
    assert gate["published_release"] == current_release(results).name or gate["published_release"] == published.name
    assert gate["comparison"]["decided"] is True, gate["comparison"]
    # The asset graph the UI's Assets view shows: who produces and who consumes each asset.
    status, listed = api.call("GET", "/api/v2/assets")
    graph = {a["name"]: a for a in listed["assets"]}  # each named by its URI: the file's OpenLineage dataset
    model, inbox, batches, data = (f"file://{p}" for p in (results / "model.pkl", incoming, results / "scoring",
                                                            results / "datasets" / "current.json"))
    assert {model, inbox, batches, data} <= set(graph), sorted(graph)
    assert [t["dag_id"] for t in graph[model]["producing_tasks"]] == [DAG_ID]
    assert [d["dag_id"] for d in graph[inbox]["scheduled_dags"]] == ["breast_cancer_scoring"]
    assert [t["dag_id"] for t in graph[data]["producing_tasks"]] == ["breast_cancer_outcomes"]
    assert [d["dag_id"] for d in graph[data]["scheduled_dags"]] == [DAG_ID]
    assert listening_addresses(int(api.base.rsplit(":", 1)[1])) == {"127.0.0.1"}


def finished_run(api: Api, run_id: str, proc: subprocess.Popen, log: Path) -> dict:
    """The DAG run once it has finished."""
    from urllib.parse import quote

    def done():
        run = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")[1]
        return run if run.get("state") in ("success", "failed") else None

    return _wait(done, 600, f"run {run_id} to finish", proc, log)


def _date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _keep_screenshots(folder: Path) -> None:
    """Copy the screenshots to ``$UI_SCREENSHOTS`` when set (``make ui-screenshots``: docs/)."""
    target = os.environ.get("UI_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in folder.glob("*.png"):
            shutil.copy(shot, Path(target) / f"ui-{shot.name}")
