"""The container path (make docker-test, README "Quick start" and docs/containers.md): the
Compose file validates as users get it; the project image and the Compose stack, built and run
on a real Docker engine (stand-in base, PostgreSQL and Redis images built here, host
networking), run the DAG through REST on a Celery worker; the one-shot container run writes
the same metrics.json as the session's make run. ``deploy/docker/stack.py test`` does the work
and cleans up.

Needs Debian's docker.io, docker-compose and debootstrap, which ``make test`` installs; the
test fails (it does not skip) when they are missing.
"""

import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT, run_command

sys.path.insert(0, str(PROJECT_ROOT / "deploy" / "docker"))
import stack

pytestmark = [pytest.mark.slow]


def test_the_compose_file_validates_as_users_get_it(tmp_path):
    env_file = tmp_path / ".env"
    stack.write_env(env_file, stack.generate_secrets())
    proc = subprocess.run([*stack.compose(), "--env-file", str(env_file), "-f", "docker-compose.yaml", "config"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    config = proc.stdout
    for service in ("postgres", "redis", "airflow-init", "airflow-apiserver", "airflow-scheduler",
                    "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        assert f"  {service}:" in config, service
    assert ("127.0.0.1" in config and "published: 8080" in config) or "127.0.0.1:8080:8080" in config
    # Without the secrets: Compose stops with the variable's message, which says what to run.
    (tmp_path / "empty.env").write_text("")
    missing = subprocess.run([*stack.compose(), "--env-file", str(tmp_path / "empty.env"), "-f",
                              "docker-compose.yaml", "config", "-q"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, check=False, timeout=120, env={"PATH": "/usr/bin:/bin:/usr/local/bin"})
    assert missing.returncode != 0 and "run make docker-env" in missing.stderr, missing.stderr


@pytest.mark.timeout(3600)
def test_the_image_the_stack_and_the_one_shot_run(tmp_path, request):
    """The whole container check; its one-shot run's metrics.json is then compared with the
    session's ``make run`` (``full_run``, made by whichever test asked first), which ``stack.py
    test`` run alone (make docker-test) runs itself."""
    one_shot = tmp_path / "one-shot"
    proc = run_command([sys.executable, str(PROJECT_ROOT / "deploy" / "docker" / "stack.py"), "test",
                        "--one-shot-results", str(one_shot)], env=dict(os.environ), timeout=3500)
    print(proc.stdout[-6000:])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-8000:]
    assert "all checks passed" in proc.stdout
    made_run = request.getfixturevalue("full_run")[0]
    assert (one_shot / "metrics.json").read_bytes() == (made_run / "results" / "metrics.json").read_bytes()
