"""The UI path: ``make airflow`` starts the full stack; a run triggered like the UI's Trigger
button (``POST /api/v2/dags/{dag_id}/dagRuns``) succeeds and publishes the artifacts."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import DAG_ID, PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base: str):
        self.base = base
        self.token: str | None = None

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


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


@pytest.fixture
def stack(tmp_path):
    """``make airflow`` on a free port of 127.0.0.1, with its own Airflow home and secrets."""
    port = _free_port()
    env = {
        **os.environ,
        "PIPELINE_AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "PIPELINE_SECRETS_DIR": str(tmp_path / "secrets"),
        "AIRFLOW__API__PORT": str(port),
        "RESULTS_DIR": str(tmp_path / "results"),
        "UPLOAD_URI": str(tmp_path / "uploads"),
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


def test_trigger_from_the_api_like_the_ui(stack):
    proc, api, tmp_path, log = stack
    _wait(lambda: api.call("GET", "/api/v2/monitor/health")[0] == 200, 120, "the API", proc, log)

    status, body = api.call("POST", "/auth/token", {"username": "admin", "password": "admin"})
    assert status == 201, body
    api.token = body["access_token"]
    assert api.call("POST", "/auth/token", {"username": "admin", "password": "wrong"})[0] == 401

    dag = _wait(lambda: (lambda r: r[0] == 200 and r[1])(api.call("GET", f"/api/v2/dags/{DAG_ID}")),
                120, "the DAG to be parsed", proc, log)
    assert dag["is_paused"] is False

    status, run = api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {}})
    assert status == 200, run
    run_id = run["dag_run_id"]

    def finished():
        state = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")[1].get("state")
        return state if state in ("success", "failed") else None

    assert _wait(finished, 240, "the run to finish", proc, log) == "success", log.read_text()[-4000:]

    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert 0.9 <= metrics["accuracy"] <= 1.0
    status, tis = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
    assert {ti["task_id"]: ti["state"] for ti in tis["task_instances"]} == {
        t: "success" for t in ("ensure_results_dir", "load_data", "preprocess_data", "train_model",
                               "evaluate_model", "save_results", "upload_results")
    }
    assert _listening_addresses(int(api.base.rsplit(":", 1)[1])) == {"127.0.0.1"}


def _listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, local_port = local.split(":")
        if state == "0A" and int(local_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found
