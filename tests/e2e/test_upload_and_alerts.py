"""Real DAG runs uploading to a real S3 API server on 127.0.0.1 and alerting through a real SMTP
server and a webhook receiver on 127.0.0.1: ``airflow dags test`` where the process is the point
(the secrets backend configured at start-up, a retry while the server comes back), ``dag.test()``
in-process for the others."""

import json
import re
import subprocess
import time

import boto3
import pytest

from etl.releases.reader import current_release, release_is_intact
from etl.storage.layout import RELEASE_FILES
from tests.conftest import AIRFLOW, DAG_ID, PROJECT_ROOT, dag_test, run_command, with_config
from tests.servers import BUCKET, MOTO_SERVER, free_port, wait_for_port

pytestmark = pytest.mark.airflow_cli


def _alerting_env(env, tmp_path, **alerts) -> dict[str, str]:
    config = tmp_path / "alerts.toml"
    config.write_text("[alerts]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in alerts.items()))
    return with_config(env, config)


def test_a_run_uploads_to_s3_and_announces_its_success(airflow_db, env, tmp_path, s3_server, webhook_server):
    """Connections from a secrets/connections.json file, as scripts/env.sh configures them."""
    env = _alerting_env(env, tmp_path, webhook_conn_id="alert_webhook", on_success=True)
    connections = tmp_path / "secrets" / "connections.json"
    connections.parent.mkdir()
    connections.write_text(json.dumps({"aws_default": json.loads(s3_server.connection()),
                                       "alert_webhook": json.loads(webhook_server.connection())}))
    env.update({
        "UPLOAD_URI": f"s3://{BUCKET}/breast-cancer",
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(connections)}),
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


def test_a_run_keeps_every_artifact_on_s3_when_the_results_root_is_a_bucket(
        airflow_db, env, tmp_path, s3_server, capfd):
    """The cluster setup (README, "Scaling out") on one machine: the same DAG, results_dir on S3."""
    env.update({
        "RESULTS_DIR": f"s3://{BUCKET}/shared-results",
        "RESULTS_CONN_ID": "results_store",
        "AIRFLOW_CONN_RESULTS_STORE": s3_server.connection(),
    })
    state, tasks = dag_test(DAG_ID, "2024-07-03", env)  # in-process (the process is not the point here)
    assert state == "success", tasks
    objects = s3_server.objects("shared-results/")
    release = json.loads(objects["shared-results/current.json"])["release"]
    assert release.startswith("2024-07-03T000000Z-")
    run = "shared-results/runs/2024-07-03T000000Z/"
    for name in ("data.parquet", "train.parquet", "model.skops", "metrics.json", "report.html", "release.json"):
        assert run + name in objects, name
    for name in ("metrics.json", "model.pkl", "scaler.pkl"):
        assert objects[f"shared-results/{name}"] == objects[f"shared-results/published/{release}/{name}"]
    uploaded = tmp_path / "uploads" / "2024-07-03T000000Z"
    assert (uploaded / "model.pkl").read_bytes() == objects["shared-results/model.pkl"]
    assert not (tmp_path / "results").exists()  # nothing local
    logged = capfd.readouterr()
    assert "shared-results" in logged.out + logged.err and s3_server.secret not in logged.out + logged.err


def test_a_failed_task_alerts_by_email_and_webhook_and_leaks_no_secret(
    airflow_db, env, tmp_path, s3_server, smtp_server, webhook_server, capfd
):
    """In-process (``dag.test()``, as ``airflow dags test`` runs it): the alerts are the task's
    failure callbacks, and everything the run printed is read from this process's output."""
    env = _alerting_env(env, tmp_path, email_to="ml-team@example.org, oncall@example.org",
                        smtp_conn_id="alert_smtp", webhook_conn_id="alert_webhook")
    env.update({
        "UPLOAD_URI": f"s3://{BUCKET}/breast-cancer",
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection(secret="this-secret-is-wrong"),
        "AIRFLOW_CONN_ALERT_SMTP": smtp_server.connection(),
        "AIRFLOW_CONN_ALERT_WEBHOOK": webhook_server.connection(),
    })
    state, tasks = dag_test(DAG_ID, "2024-07-02", env)
    logged = capfd.readouterr()
    log = logged.out + logged.err
    assert state == "failed", tasks
    error = (f"upload to s3://{BUCKET}/breast-cancer: access refused (The request signature we calculated "
             "does not match the signature you provided. Check your key and signing method.); check the "
             "credentials in Airflow connection 'aws_default'")
    assert error in log, log[-3000:]
    # Wrong credentials are not retried: one try, failed.
    assert tasks["upload_results"] == ("failed", 1) and "up_for_retry" not in log

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


def test_an_unreachable_s3_server_is_retried_until_it_is_back(airflow_db, env, tmp_path):
    """The S3 endpoint is down when upload_results starts; it is back before the retry."""
    port = free_port()
    config = tmp_path / "retries.toml"
    config.write_text("[airflow]\nretries = 2\nretry_delay_seconds = 5\n")
    env = {**with_config(env, config), "UPLOAD_URI": f"s3://{BUCKET}/later",
           "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
               "conn_type": "aws", "login": "key", "password": "secret",
               "extra": {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"}})}
    log = tmp_path / "dags-test.log"
    with open(log, "w") as out:
        run = subprocess.Popen([AIRFLOW, "dags", "test", DAG_ID, "2024-07-03"], cwd=PROJECT_ROOT, env=env,
                               stdout=out, stderr=subprocess.STDOUT)
    server = None
    try:
        deadline = time.monotonic() + 120
        while "new_state=up_for_retry" not in log.read_text():
            assert run.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        assert "upload to s3://pipeline-results/later: Could not connect to the endpoint URL" in log.read_text()
        server = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(port)
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                              aws_access_key_id="key", aws_secret_access_key="secret")
        client.create_bucket(Bucket=BUCKET)
        assert run.wait(timeout=120) == 0, log.read_text()[-3000:]
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]]
        assert sorted(keys) == [f"later/2024-07-03T000000Z/{n}" for n in sorted(RELEASE_FILES)]
        assert len(re.findall(r"starting task_id=upload_results ", log.read_text())) == 2
    finally:
        run.kill()
        if server:
            server.terminate()
            server.wait(timeout=10)
