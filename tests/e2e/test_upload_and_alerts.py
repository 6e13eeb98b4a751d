"""Real DAG runs (``airflow dags test``) uploading to a real S3 API server on 127.0.0.1 and
alerting through a real SMTP server and a webhook receiver on 127.0.0.1."""

import json
import re

import pytest

from etl.save_results import current_release, release_is_intact
from tests.conftest import AIRFLOW, DAG_ID, run_command
from tests.servers import BUCKET

pytestmark = pytest.mark.airflow_cli


def _alerting_env(env, tmp_path, **alerts) -> dict[str, str]:
    config = tmp_path / "alerts.toml"
    config.write_text("[alerts]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in alerts.items()))
    return {**env, "PIPELINE_CONFIG": str(config)}


def test_a_run_uploads_to_s3_and_announces_its_success(airflow_db, env, tmp_path, s3_server, webhook_server):
    env = _alerting_env(env, tmp_path, webhook_conn_id="alert_webhook", on_success=True)
    env.update({
        "UPLOAD_URI": f"s3://{BUCKET}/breast-cancer",
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection(),
        "AIRFLOW_CONN_ALERT_WEBHOOK": webhook_server.connection(),
    })
    proc = run_command([AIRFLOW, "dags", "test", DAG_ID, "2024-07-01"], env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]

    release = current_release(tmp_path / "results")
    prefix = "breast-cancer/2024-07-01T000000Z/"
    assert s3_server.objects(prefix) == {prefix + p.name: p.read_bytes() for p in release.iterdir()}
    assert s3_server.secret not in log
    assert s3_server.secret.encode() not in (release / "manifest.json").read_bytes()

    assert [path for path, _ in webhook_server.posts] == ["/services/T000/B000/not-a-real-secret"]
    text = webhook_server.posts[0][1]["text"]
    assert text.startswith(f"[Airflow] task upload_results of DAG {DAG_ID} succeeded (run manual__")
    assert "Logical date: 2024-07-01T00:00:00+00:00" in text and "Error:" not in text
    assert "not-a-real-secret" not in log  # the webhook URL stays in its connection


def test_a_failed_task_alerts_by_email_and_webhook_and_leaks_no_secret(
    airflow_db, env, tmp_path, s3_server, smtp_server, webhook_server
):
    env = _alerting_env(env, tmp_path, email_to="ml-team@example.org, oncall@example.org",
                        smtp_conn_id="alert_smtp", webhook_conn_id="alert_webhook")
    env.update({
        "UPLOAD_URI": f"s3://{BUCKET}/breast-cancer",
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection(secret="this-secret-is-wrong"),
        "AIRFLOW_CONN_ALERT_SMTP": smtp_server.connection(),
        "AIRFLOW_CONN_ALERT_WEBHOOK": webhook_server.connection(),
    })
    proc = run_command([AIRFLOW, "dags", "test", DAG_ID, "2024-07-02"], env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    error = (f"upload to s3://{BUCKET}/breast-cancer: access refused (The request signature we calculated "
             "does not match the signature you provided. Check your key and signing method.); check the "
             "credentials in Airflow connection 'aws_default'")
    assert error in log
    # Wrong credentials are not retried.
    assert len(re.findall(r"starting task_id=upload_results ", log)) == 1 and "up_for_retry" not in log

    # The upload failed after publishing: local results are whole and this run's.
    release = current_release(tmp_path / "results")
    assert release.name.startswith("2024-07-02T000000Z-") and release_is_intact(release)

    (message,) = smtp_server.messages
    subject = f"[Airflow] task upload_results of DAG {DAG_ID} failed (run manual__"
    assert message["Subject"].startswith(subject)
    assert message["X-Envelope-To"] == "ml-team@example.org, oncall@example.org"
    assert message["From"] == "airflow@example.org"
    body = next(p for p in message.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
    expected = [f"DAG: {DAG_ID}", "Task: upload_results (try 1)", "State: failed", f"Error: {error}"]
    log_url = rf"\nLog: http://[\w.:]+/dags/{DAG_ID}/runs/manual__\S+/tasks/upload_results\?try_number=1\b"
    for line in expected:
        assert line.replace("'", "&#x27;") in body, line
    assert re.search(log_url, body)

    (_, post), = webhook_server.posts
    assert post["text"].startswith(subject)
    for line in expected:
        assert line in post["text"], line
    assert re.search(log_url, post["text"])

    everything = log + message.as_string() + json.dumps(post)
    for secret in ("this-secret-is-wrong", s3_server.secret):
        assert secret not in everything
