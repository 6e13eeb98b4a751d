"""``make airflow``'s launcher (scripts/airflow-stack.sh), with no Airflow process started: a
taken port, or one port given to both APIs, is one clear line, before anything starts."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.conftest import PROJECT_ROOT
from tests.servers import free_port

SCRIPT = PROJECT_ROOT / "scripts" / "airflow-stack.sh"


def _launch(tmp_path, ui_port: int, execution_port: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIPELINE_AIRFLOW_HOME": str(tmp_path / "airflow_home"),
           "PIPELINE_SECRETS_DIR": str(tmp_path / "secrets"), "AIRFLOW__API__PORT": str(ui_port),
           "PIPELINE_EXECUTION_API_PORT": str(execution_port)}
    env.pop("AIRFLOW__API__BASE_URL", None)
    return subprocess.run([str(SCRIPT)], check=False, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("which", ["ui", "execution"])
def test_a_taken_port_is_one_line_and_nothing_starts(tmp_path, which):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = (taken, free_port()) if which == "ui" else (free_port(), taken)
        proc = _launch(tmp_path, *ports)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"error: port {taken} on 127.0.0.1 is taken: ")
    assert "AIRFLOW__API__PORT" in line and "PIPELINE_EXECUTION_API_PORT" in line
    assert proc.stdout == "" and not (tmp_path / "airflow_home" / "airflow.db").exists()


def test_one_port_for_both_apis_is_one_line_and_nothing_starts(tmp_path):
    port = free_port()
    proc = _launch(tmp_path, port, port)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: the UI (AIRFLOW__API__PORT) and the tasks' API (PIPELINE_EXECUTION_API_PORT) ")
    assert proc.stdout == "" and not (tmp_path / "airflow_home" / "airflow.db").exists()
