"""Release sign-off on the real scheduler: ``make airflow`` on free ports of 127.0.0.1 with
``[release] approval = "required"``, one approver (``reviewer``, a plain UI user) and a short
``approval_timeout``. Each answer the way a person gives it:

- in the browser: log in as the approver, the run's Report tab says it awaits sign-off, Browse >
  Required Actions, approve with a comment; the Model page then shows the release, its card and
  its sign-off;
- through the REST API: the admin, not an approver, is refused (403); the approver rejects one
  run (nothing published changes, byte for byte; its Report tab says who and why) and approves
  another (published, the approver in the manifest and the card);
- no answer: the request times out, nothing is published, the webhook receiver on 127.0.0.1 gets
  the alert."""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from urllib.parse import quote

import pytest

from deploy.net import Api
from etl.releases.reader import current_release, run_release
from etl.storage.layout import run_key
from tests.browser import browser as open_browser
from tests.conftest import DAG_ID, PROJECT_ROOT
from tests.e2e.test_ui_trigger import _date, _keep_screenshots, _server_said, _wait, airflow_stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

#: The approval timeout of these runs: an answer is a poll away (a few seconds, more on a busy
#: machine); the unanswered request waits this long, plus the scheduler's sweep.
TIMEOUT_SECONDS = 90
APPROVER = "reviewer"


def _hitl(run_id: str) -> str:
    return f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/approve_release/-1/hitlDetails"


def _states(api: Api, run_id: str) -> dict[str, str]:
    status, tis = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances")
    assert status == 200, tis
    return {ti["task_id"]: ti["state"] for ti in tis["task_instances"] if ti["map_index"] in (-1, 0)}


def _published(results) -> dict[str, bytes]:
    """The published files at the top of the results folder, byte for byte."""
    return {p.name: p.read_bytes() for p in sorted(results.iterdir()) if p.is_file()}


def test_a_person_signs_each_release_off(tmp_path, webhook_server):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "simple_auth_manager_passwords.json").write_text(
        json.dumps({"admin": "admin", APPROVER: "not-admin"}))
    config = tmp_path / "approval.toml"
    config.write_text(f'[release]\napproval = "required"\napprovers = ["{APPROVER}"]\n'
                      f'approval_timeout = "{TIMEOUT_SECONDS}s"\n\n[alerts]\nwebhook_conn_id = "approval_alerts"\n')
    results = tmp_path / "results"
    with ExitStack() as stack:
        proc, admin, _, log = stack.enter_context(airflow_stack(
            tmp_path,
            PIPELINE_CONFIG=f"{PROJECT_ROOT / 'tests' / 'fast.toml'}:{config}",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"admin:admin,{APPROVER}:user",
            AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL="5",  # the timeout sweep (default 15 s)
            AIRFLOW_CONN_APPROVAL_ALERTS=webhook_server.connection(),
        ))
        _wait(lambda: admin.call("GET", "/api/v2/monitor/health")[0] == 200, 300, "the API", proc, log)
        reviewer = Api(admin.base)
        for api, user, password in ((admin, "admin", "admin"), (reviewer, APPROVER, "not-admin")):
            status, body = api.call("POST", "/auth/token", {"username": user, "password": password})
            assert status == 201, body
            api.token = body["access_token"]
        _wait(lambda: admin.call("GET", f"/api/v2/dags/{DAG_ID}")[0] == 200, 300, "the DAG to be parsed", proc, log)

        def trigger() -> str:
            status, run = admin.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {}})
            assert status == 200, _server_said(run, log)
            return run["dag_run_id"]

        def awaiting(run_id: str) -> dict:
            """The open request of ``run_id``, once the scheduler has taken in that its task
            paused. (An answer before that, within about half a second of the request opening,
            can fail the task: an Airflow 3.3 race, docs/sign-off.md; a person is never that
            quick, a test answering through REST is.)"""
            def asked():
                status, detail = reviewer.call("GET", _hitl(run_id))
                return detail if status == 200 and detail["task_instance"]["state"] == "awaiting_input" else None
            detail = _wait(asked, 600, f"{run_id} to ask for sign-off", proc, log)  # ~35 s idle
            paused = re.escape(f"TaskInstance Finished: dag_id={DAG_ID}, task_id=approve_release, run_id={run_id}, ") \
                + r"[^\n]*state=awaiting_input"
            _wait(lambda: re.search(paused, log.read_text()), 120, f"the scheduler to see {run_id} pause", proc, log)
            return detail

        def finished(run_id: str, states=("success", "failed")) -> dict:
            def done():
                run = admin.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")[1]
                return run if run.get("state") in states else None
            return _wait(done, 600, f"{run_id} to finish", proc, log)

        def folder(run_id: str):
            run = admin.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")[1]
            return results / "runs" / run_key(_date(run["logical_date"]), run_id)

        # 1. In the browser, as the approver; a second run is left unanswered.
        in_browser, unanswered = trigger(), trigger()
        browser = stack.enter_context(open_browser(admin.base, tmp_path / "screenshots"))
        browser.login(APPROVER, "not-admin")
        request = awaiting(in_browser)
        assert request["assigned_users"] == [{"id": APPROVER, "name": APPROVER}]
        assert "Expected on unseen patients" in request["body"] and "[The model card](" in request["body"]
        assert set(request["params"]) == {"comment"}
        assert not (results / "current").exists()  # nothing is published while it waits
        browser.open_run(DAG_ID, in_browser)
        report = browser.frame_text("Report", "Awaiting sign-off")
        assert f"Awaiting sign-off by {APPROVER}" in report and "Required Actions" in report, report
        browser.answer_required_action(request["subject"], "Approve", "card read, numbers checked")
        browser.screenshot("required-action-approved")
        browser.idle()  # the runs are followed through REST
        assert finished(in_browser)["state"] == "success"
        release = run_release(folder(in_browser), results)
        assert release is not None and current_release(results) == release
        manifest = json.loads((results / "manifest.json").read_text())
        assert manifest["signoff"]["decision"] == "approved" and manifest["signoff"]["by"]["id"] == APPROVER
        assert manifest["signoff"]["comment"] == "card read, numbers checked"
        card = (results / "model_card.md").read_text()
        assert f"Approved by **{APPROVER}**" in card and f"Release `{release.name}`" in card
        model = browser.frame_text("Model", "Published release")
        assert f"current {release.name}" in model and f"Sign-off: Approved by {APPROVER}" in model, model
        assert "card read, numbers checked" in model and "Model card" in model
        browser.screenshot("model-page-signed-off")
        _keep_screenshots(tmp_path / "screenshots")
        browser.idle()

        # 2. Through REST: the admin is not an approver; the approver rejects one, approves another.
        to_reject, to_approve = trigger(), trigger()
        awaiting(to_reject)
        awaiting(to_approve)
        before = _published(results)
        status, body = admin.call("PATCH", _hitl(to_reject), {"chosen_options": ["Approve"],
                                                                "params_input": {"comment": "I am the admin"}})
        assert status == 403 and "not a respondent" in json.dumps(body), body
        status, body = reviewer.call("PATCH", _hitl(to_reject), {"chosen_options": ["Reject"],
                                                                   "params_input": {"comment": "too few new cases"}})
        assert status == 200, body
        assert finished(to_reject)["state"] == "success"
        states = _states(admin, to_reject)
        assert (states["approve_release"], states["save_results"], states["upload_results"]) == (
            "success", "skipped", "skipped"), states
        assert _published(results) == before and current_release(results) == release
        rejected = json.loads((folder(to_reject) / "signoff.json").read_text())
        assert (rejected["decision"], rejected["by"]["id"], rejected["comment"]) == (
            "rejected", APPROVER, "too few new cases")
        browser.open_run(DAG_ID, to_reject)
        report = browser.frame_text("Report", "Rejected by")
        assert f"Rejected by {APPROVER}" in report and "too few new cases" in report, report
        browser.idle()

        status, body = reviewer.call("PATCH", _hitl(to_approve), {"chosen_options": ["Approve"],
                                                                    "params_input": {"comment": "fine"}})
        assert status == 200, body
        assert finished(to_approve)["state"] == "success"
        second = run_release(folder(to_approve), results)
        assert second is not None and current_release(results) == second
        assert json.loads((second / "manifest.json").read_text())["signoff"]["comment"] == "fine"

        # 3. No answer: the request times out; nothing published; an alert.
        before = _published(results)
        assert finished(unanswered)["state"] == "failed"
        states = _states(admin, unanswered)
        assert (states["approve_release"], states["save_results"]) == ("failed", "upstream_failed"), states
        assert json.loads((folder(unanswered) / "signoff.json").read_text())["decision"] == "timed_out"
        failure = json.loads((folder(unanswered) / "failures" / "approve_release.json").read_text())
        assert failure["error"].startswith(f"no answer within 0:01:30 from {APPROVER}: nothing published"), failure
        assert _published(results) == before and not (folder(unanswered) / "release.json").exists()
        alerts = [body["text"] for _, body in webhook_server.posts]
        assert any("approve_release" in text and "no answer within" in text for text in alerts), alerts
        # and each request was announced to the approvers when it opened, with its summary
        requested = [t for t in alerts if t.startswith("[Airflow] sign-off requested: the release of run")]
        assert len(requested) == 4 and all(f"Approvers: {APPROVER}" in t and "Quality gate:" in t
                                           for t in requested), alerts
