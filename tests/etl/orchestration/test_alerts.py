import dataclasses
import json
from datetime import UTC, datetime
from types import SimpleNamespace

from etl.catalog import DataValidationError
from etl.orchestration import alerts
from etl.settings import load_settings
from tests.servers import free_port


def _context(exception=None):
    ti = SimpleNamespace(task_id="load_data", dag_id="dag", try_number=1,
                         log_url="http://127.0.0.1:8080/dags/dag/runs/r1/tasks/load_data?try_number=1")
    dag_run = SimpleNamespace(dag_id="dag", run_id="r1", logical_date=datetime(2024, 3, 1, tzinfo=UTC))
    return {"ti": ti, "dag_run": dag_run, "run_id": "r1", "exception": exception}


def test_the_message_names_dag_task_run_error_and_log():
    subject, body = alerts.message(_context(DataValidationError("x.csv: line 3: diagnosis 'Q'\nmore")), "failed")
    assert subject == "[Airflow] task load_data of DAG dag failed (run r1)"
    assert body.splitlines() == [
        "DAG: dag", "Run: r1", "Logical date: 2024-03-01T00:00:00+00:00", "Task: load_data (try 1)",
        "State: failed", "Error: x.csv: line 3: diagnosis 'Q'",
        "Log: http://127.0.0.1:8080/dags/dag/runs/r1/tasks/load_data?try_number=1",
    ]


def test_off_by_default():
    settings = load_settings(environ={})
    assert (settings.alerts.email_to, settings.alerts.webhook_conn_id) == ((), "")
    assert alerts.notifiers(settings, "s", "b") == []
    assert alerts.send(_context(), "failed", settings) == 0


def test_a_broken_channel_is_logged_not_raised(monkeypatch, capfd, caplog, webhook_server):
    monkeypatch.setenv("AIRFLOW_CONN_DEAD_HOOK", json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{free_port()}/x"}))
    monkeypatch.setenv("AIRFLOW_CONN_LIVE_HOOK", webhook_server.connection())
    settings = load_settings(environ={})
    assert alerts.send(_context(), "failed", dataclasses.replace(settings, alerts=dataclasses.replace(settings.alerts, webhook_conn_id="dead_hook"))) == 0
    # (through Airflow's log handlers when Airflow configured logging in this process, else pytest's)
    assert "alert through HttpNotifier failed: HTTPConnectionPool" in capfd.readouterr().out + caplog.text
    assert alerts.send(_context(), "failed", dataclasses.replace(settings, alerts=dataclasses.replace(settings.alerts, webhook_conn_id="live_hook"))) == 1
    assert webhook_server.posts[0][1]["text"].startswith("[Airflow] task load_data of DAG dag failed (run r1)\nDAG: dag")
