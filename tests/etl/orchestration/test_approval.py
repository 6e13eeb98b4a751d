"""Release sign-off without a scheduler: what ``save_results`` publishes with ``[release]
approval = "required"``, what ``approve_release`` records from an answer, and the DAG's shape.
The real flow (the scheduler, the REST API, a browser) is in tests/e2e/test_approval.py."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest

from etl import storage
from etl.catalog import ParameterError
from etl.settings import load_settings
from etl.storage.layout import RunPaths
from tests.conftest import PROJECT_ROOT, decide_and_publish

APPROVED = {"decision": "approved", "by": {"id": "ana", "name": "ana"}, "at": "2026-12-01T10:00:00+00:00",
            "comment": "numbers read; fine"}


@pytest.fixture
def results(tmp_path, evaluated_runs):
    results = tmp_path / "results"
    shutil.copytree(evaluated_runs["old"], results / "runs" / "old")
    decide_and_publish(results / "runs" / "old", results)  # the published release to keep
    shutil.copytree(evaluated_runs["new"], results / "runs" / "new")
    return results


def _published(results):
    return {p.name: p.read_bytes() for p in results.iterdir() if p.is_file()} | {"current": (results / "current").resolve()}


@pytest.mark.parametrize("signoff", [None, {"decision": "pending", "approvers": ["ana"]},
                                     {**APPROVED, "decision": "rejected"}, {"decision": "timed_out", "at": "t"}])
def test_without_an_approval_nothing_is_published(results, signoff):
    before = _published(results)
    if signoff is not None:
        storage.write_json(signoff, RunPaths(results / "runs" / "new").signoff)
    out = decide_and_publish(results / "runs" / "new", results, approval="required")
    assert out["published"] is False and ("nobody has approved" in out["reason"] or "not approved" in out["reason"])
    assert _published(results) == before
    assert json.loads((results / "runs" / "new" / "release.json").read_text())["published"] is False


def test_an_approved_release_records_who_when_and_why(results):
    storage.write_json(APPROVED, RunPaths(results / "runs" / "new").signoff)
    out = decide_and_publish(results / "runs" / "new", results, approval="required")
    assert out["release"].endswith(tuple("0123456789abcdef")) and "/new-" in out["release"]
    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["signoff"] == APPROVED
    card = (results / "model_card.md").read_text()
    assert "Approved by **ana** at 2026-12-01T10:00:00+00:00. Comment: “numbers read; fine”." in card


def test_a_refused_model_is_refused_by_the_gate_first(results):
    """The gate decides before any sign-off: its refusal is the reason, approved or not."""
    from tests.conftest import gate_settings

    storage.write_json(APPROVED, RunPaths(results / "runs" / "new").signoff)
    out = decide_and_publish(results / "runs" / "new", results, gate_settings(min_roc_auc=1.01), approval="required")
    assert out["published"] is False and out["reason"].startswith("quality gate: not published")


def test_the_release_settings_are_checked():
    settings = load_settings()
    assert settings.release.approval == "auto" and not settings.release.required
    assert settings.release.approval_timeout == timedelta(hours=72)
    from etl.settings import _approval, _duration

    assert _duration("90s") == timedelta(seconds=90) and _duration("1.5d") == timedelta(hours=36)
    for bad in ("72", "0h", "soon", "-1m"):
        with pytest.raises(ParameterError, match="a duration must be"):
            _duration(bad)
    with pytest.raises(ParameterError, match=r'\[release\] approval must be "auto" or "required"'):
        _approval("maybe")


def test_an_answer_is_recorded_before_the_run_goes_on(tmp_path, monkeypatch):
    """``approve_release``'s resume: an approval is written to ``signoff.json`` (who, when,
    the comment); a timeout fails the task with one line and records it; neither is retried."""
    from airflow.sdk.exceptions import AirflowFailException

    from etl.orchestration.approval import ReleaseApproval, answer_record

    settings = load_settings()
    task = ReleaseApproval(settings=settings)
    assert task.task_id == "approve_release" and task.retries == 0
    assert task.assigned_users == [{"id": u, "name": u} for u in settings.release.approvers]
    assert task.response_timeout == settings.release.approval_timeout
    assert set(task.params) == {"comment"}  # the DAG's run parameters are not asked of the approver

    folder = RunPaths(tmp_path / "run")
    folder.root.mkdir()
    monkeypatch.setattr(ReleaseApproval, "_run", lambda self, context: (settings, folder))
    at = datetime(2026, 12, 1, 10, tzinfo=UTC)
    event = {"chosen_options": ["Approve"], "params_input": {"comment": "fine"}, "responded_at": at,
             "responded_by_user": {"id": "ana", "name": "ana"}}
    result = task.execute_complete({}, event)
    assert result["chosen_options"] == ["Approve"]
    assert json.loads(folder.signoff.read_text()) == {"task": "approve_release", **answer_record(event, "Approve")}
    assert answer_record(event, "Approve")["at"] == "2026-12-01T10:00:00+00:00"
    assert answer_record({**event, "chosen_options": ["Reject"]}, "Approve")["decision"] == "rejected"

    with pytest.raises(AirflowFailException, match="no answer within 3 days, 0:00:00 from admin: nothing published"):
        task.execute_complete({}, {"error": "timeout passed", "error_type": "timeout"})
    assert json.loads(folder.signoff.read_text())["decision"] == "timed_out"


def test_the_dag_asks_only_when_approval_is_required(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from etl.catalog import TRAINING_DAG_ID

    assert "approve_release" not in DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags[TRAINING_DAG_ID].task_ids
    config = tmp_path / "approval.toml"
    config.write_text('[release]\napproval = "required"\napprovers = ["ana", "ben"]\napproval_timeout = "2h"\n')
    monkeypatch.setenv("PIPELINE_CONFIG", f"{PROJECT_ROOT / 'tests' / 'fast.toml'}:{config}")
    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags[TRAINING_DAG_ID]
    task = dag.get_task("approve_release")
    assert task.upstream_task_ids == {"make_report"} and task.downstream_task_ids == {"save_results"}
    assert dag.get_task("save_results").upstream_task_ids == {"approve_release"}
    assert [u["id"] for u in task.assigned_users] == ["ana", "ben"] and task.response_timeout == timedelta(hours=2)
