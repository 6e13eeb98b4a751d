"""The container set-up's own checks (deploy/docker/stack.py), with no Docker engine needed:
each bad set-up gets one clear line, and the generated .env holds every secret the Compose file
requires, only readable by its owner."""

from __future__ import annotations

import re
import socket
import stat
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "deploy" / "docker"))
import stack


def test_a_missing_env_file_says_how_to_make_one(tmp_path):
    with pytest.raises(stack.SetupError, match=r"^\.env is missing: run make docker-env"):
        stack.check_env(tmp_path / ".env")


def test_an_env_file_without_a_secret_names_it(tmp_path):
    path = tmp_path / ".env"
    stack.write_env(path, {k: v for k, v in stack.generate_secrets().items() if k != "REDIS_PASSWORD"})
    with pytest.raises(stack.SetupError, match="lacks REDIS_PASSWORD"):
        stack.check_env(path)


def test_a_taken_port_is_named():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(stack.SetupError, match=rf"^port {port} on 127.0.0.1 is taken: .*AIRFLOW_PORT"):
            stack.check_port(port)
    stack.check_port(port)  # free again


def test_no_engine_is_one_line(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(stack.SetupError) as error:
        stack.ensure_engine(start=False)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(("no Docker engine answers", "no docker command"))


def test_the_generated_env_file_has_every_secret_the_compose_file_requires(tmp_path):
    path = tmp_path / ".env"
    stack.write_env(path, stack.generate_secrets())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = stack.check_env(path)
    required = set(re.findall(r"\$\{(\w+):\?", (PROJECT_ROOT / "docker-compose.yaml").read_text()))
    assert required == set(stack.SECRETS) == set(values)
    assert len({values[k] for k in stack.SECRETS}) == len(stack.SECRETS)  # all different
    import base64

    assert len(base64.urlsafe_b64decode(values["AIRFLOW_FERNET_KEY"])) == 32  # a valid Fernet key
    example = stack.read_env(PROJECT_ROOT / ".env.example")
    assert set(stack.SECRETS) <= set(example)


def test_the_command_line_prints_one_line_and_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "deploy" / "docker" / "stack.py"), "preflight"],
                          capture_output=True, text=True, check=False,
                          env={"PATH": "/nonexistent", "PIPELINE_ENV_FILE": str(tmp_path / ".env"),
                               "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: "), proc.stderr


def test_secrets_stay_out_of_the_image_and_git():
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "*" or "*" in ignored  # everything out unless named
    named = [line[1:] for line in ignored if line.startswith("!")]
    assert not any(n.startswith(("secrets", "results", ".env", ".venv", "airflow_home")) for n in named)
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()


def test_the_wheelhouse_is_kept_by_what_it_is_made_from(tmp_path, monkeypatch):
    """Made once for the same requirement files and kept; remade (the old one removed) when one
    changes; a failed download leaves nothing that passes for a wheelhouse."""
    project = tmp_path / "project"
    project.mkdir()
    for name in stack.REQUIREMENT_FILES:
        (project / name).write_text(f"# {name}\n")
    made = []

    def download(folder):
        made.append(folder)
        (folder / "wheels").mkdir()
        (folder / "wheels" / "pkg-1.0-py3-none-any.whl").write_text("wheel")
        return folder / "wheels"

    monkeypatch.setattr(stack, "PROJECT_ROOT", project)
    monkeypatch.setattr(stack, "WHEELHOUSE_CACHE", tmp_path / "cache")
    monkeypatch.setattr(stack, "wheelhouse", download)
    first = stack.cached_wheelhouse()
    assert stack.cached_wheelhouse() == first and len(made) == 1
    assert [p.name for p in first.iterdir()] == ["pkg-1.0-py3-none-any.whl"]

    (project / "constraints.txt").write_text("pandas==3.0.0\n")
    second = stack.cached_wheelhouse()
    assert second != first and len(made) == 2 and not first.exists()

    (project / "constraints.txt").write_text("pandas==3.0.1\n")
    monkeypatch.setattr(stack, "wheelhouse", lambda folder: (_ for _ in ()).throw(stack.SetupError("no index")))
    with pytest.raises(stack.SetupError):
        stack.cached_wheelhouse()
    assert list((tmp_path / "cache").iterdir()) == []
