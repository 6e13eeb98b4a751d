"""The distributed deployment (README, "Scaling out"): the same DAG on PostgreSQL + Celery
(two named workers, Redis, artifacts on a local S3 server) and on PostgreSQL + LocalExecutor,
each started, triggered through the REST API, checked and stopped by ``deploy/cluster.py``.

Needs Debian's postgresql and redis-server and requirements-cluster.txt, which ``make test``
installs; the test fails (it does not skip) when they are missing.
"""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, run_command

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def folder():
    """The cluster's folder. Not under pytest's tmp_path: as root, PostgreSQL runs as the
    postgres user, which must reach its data folder (pytest's temporary folders are private)."""
    path = Path(tempfile.mkdtemp(prefix="bc-cluster-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("executor", ["celery", "local"])
def test_the_dag_runs_unchanged_on_a_distributed_airflow(executor, folder):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "RESULTS_", "UPLOAD_"))}  # (keeps tests/fast.toml)
    env["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"] = os.environ[  # parse once (tests/conftest.py)
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"]
    proc = run_command([sys.executable, str(PROJECT_ROOT / "deploy" / "cluster.py"), "test",
                        "--executor", executor, "--dir", str(folder)], env=env, timeout=850)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert f"{executor}: all checks passed" in out
    if executor == "celery":
        assert "tasks ran on ['worker-a', 'worker-b']" in out
    # Every process it started is gone.
    pids = json.loads((folder / "cluster.json").read_text())
    assert pids["pids"] == {}
    started = [int(line.split("(pid ")[1].rstrip(")")) for line in out.splitlines() if "] started " in line]
    assert len(started) == (9 if executor == "celery" else 5)
    assert not [pid for pid in started if _alive(pid)]
