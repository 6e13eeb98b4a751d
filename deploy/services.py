"""Start and stop the services of the distributed setup on this machine (``deploy/cluster.py``):
PostgreSQL, Redis, a local S3 API server and the Airflow services, each in its own process group,
recorded in the cluster's folder (``cluster.json``) so that ``stop_recorded`` stops them by PID.
What is checked once they run is ``deploy/checks.py``.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script too
from deploy import net
from deploy.net import Api

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "breast_cancer_etl_pipeline"
DEFAULT_DIR = Path(os.environ.get("CLUSTER_DIR", "/tmp/breast-cancer-cluster"))
BUCKET = "breast-cancer-artifacts"
WORKERS = ("worker-a", "worker-b")
RUN_TIMEOUT = 600


def log(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", flush=True)


def postgres_bindir() -> Path:
    """The folder of ``initdb`` and ``postgres`` (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True) or [shutil.which("initdb")]
    if found[0]:
        return Path(found[0]).parent
    raise SystemExit("PostgreSQL server not found: install the Debian package postgresql (make cluster-test does)")


class Cluster:
    """The services of one cluster folder: start, environment, stop."""

    def __init__(self, root: Path, executor: str):
        self.root, self.executor = root, executor
        self.state_file = root / "cluster.json"
        self.logs = root / "logs"
        self.procs: dict[str, subprocess.Popen] = {}
        self.state: dict[str, Any] = {"executor": executor, "pids": {}}

    # -- set-up ------------------------------------------------------------------------------

    def create(self) -> None:
        if self.root.exists():
            stop_recorded(self.root)
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, mode=0o755)
        self.logs.mkdir()
        ports = {name: net.free_port() for name in ("postgres", "redis", "s3", "api", *WORKERS)}
        secret = {name: secrets.token_hex(16) for name in
                  ("postgres", "redis", "s3_key", "s3_secret", "admin", "jwt", "api")}
        from cryptography.fernet import Fernet

        secret["fernet"] = Fernet.generate_key().decode()
        self.state.update(ports=ports)
        self.write_private("secrets.json", json.dumps(secret))
        self.write_private("passwords.json", json.dumps({"admin": secret["admin"]}))
        self.save()

    def write_private(self, name: str, text: str) -> Path:
        path = self.root / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return path

    @property
    def secrets(self) -> dict[str, str]:
        return json.loads((self.root / "secrets.json").read_text())

    @property
    def ports(self) -> dict[str, int]:
        return self.state["ports"]

    def save(self) -> None:
        self.state_file.write_text(json.dumps(self.state, indent=2))

    # -- processes ---------------------------------------------------------------------------

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None, user: str | None = None) -> None:
        """Start a service in its own process group, output to ``logs/<name>.log``."""
        kwargs: dict[str, Any] = {}
        if user:
            kwargs.update(user=user, group=pwd.getpwnam(user).pw_gid, extra_groups=[])
        with open(self.logs / f"{name}.log", "ab") as out:  # the service keeps its own copy
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env or os.environ.copy(),
                                    cwd=self.root if user else PROJECT_ROOT, start_new_session=True, **kwargs)
        self.procs[name] = proc
        self.state["pids"][name] = proc.pid
        self.save()
        log(f"started {name} (pid {proc.pid})")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # -- services ----------------------------------------------------------------------------

    def start_postgres(self) -> None:
        bindir, data, port = postgres_bindir(), self.root / "postgres", self.ports["postgres"]
        user = "postgres" if os.geteuid() == 0 else None  # initdb refuses to run as root
        data.mkdir(mode=0o700)
        pwfile = self.write_private("pgpass.tmp", self.secrets["postgres"] + "\n")
        if user:
            uid = pwd.getpwnam(user).pw_uid
            for path in (data, pwfile):
                os.chown(path, uid, -1)
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "airflow", f"--pwfile={pwfile}",
             "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8"],
            check=True, stdout=subprocess.DEVNULL, user=user, cwd=self.root,
        )
        pwfile.unlink()
        self.start("postgres", [str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data}",
                                "-c", "max_connections=200", "-c", "fsync=on"], user=user)
        net.wait_for(lambda: net.port_open(port), 60, "PostgreSQL", alive=self.check_alive)
        env = {**os.environ, "PGPASSWORD": self.secrets["postgres"]}
        net.wait_for(lambda: subprocess.run(
            [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "-d", "postgres",
             "-qc", "CREATE DATABASE airflow"], check=False, env=env, capture_output=True).returncode == 0,
            60, "the airflow database", alive=self.check_alive)

    def start_redis(self) -> None:
        redis = shutil.which("redis-server")
        if not redis:
            raise SystemExit("redis-server not found: install the Debian package redis-server (make cluster-test does)")
        conf = self.write_private("redis.conf", "\n".join([
            "bind 127.0.0.1", f"port {self.ports['redis']}", f"dir {self.root}", "save \"\"",
            "appendonly no", "protected-mode yes", f"requirepass {self.secrets['redis']}", "",
        ]))
        self.start("redis", [redis, str(conf)])
        net.wait_for(lambda: net.port_open(self.ports["redis"]), 30, "Redis", alive=self.check_alive)

    def start_s3(self) -> None:
        self.start("s3", [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                          "-p", str(self.ports["s3"])])
        net.wait_for(lambda: net.port_open(self.ports["s3"]), 60, "the S3 server", alive=self.check_alive)
        self.s3_client().create_bucket(Bucket=BUCKET)

    def s3_client(self):
        import boto3

        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.ports['s3']}",
                            aws_access_key_id=self.secrets["s3_key"],
                            aws_secret_access_key=self.secrets["s3_secret"], region_name="us-east-1")

    # -- Airflow -----------------------------------------------------------------------------

    def airflow_env(self) -> dict[str, str]:
        """The settings every Airflow service shares (what changes from the local default)."""
        s, p = self.secrets, self.ports
        database = f"postgresql+psycopg2://airflow:{s['postgres']}@127.0.0.1:{p['postgres']}/airflow"
        base_url = f"http://127.0.0.1:{p['api']}"
        s3 = {"conn_type": "aws", "login": s["s3_key"], "password": s["s3_secret"],
              "extra": {"endpoint_url": f"http://127.0.0.1:{p['s3']}", "region_name": "us-east-1"}}
        env = {
            **{k: v for k, v in os.environ.items()  # scripts/env.sh's SQLite settings: not for PostgreSQL
               if not k.startswith("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS")},
            "AIRFLOW_HOME": str(self.root / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if self.executor == "celery" else "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__FERNET_KEY": s["fernet"],
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(p["api"]),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__API__SECRET_KEY": s["api"],
            "AIRFLOW__API_AUTH__JWT_SECRET": s["jwt"],
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.root / "passwords.json"),
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            # The project's scripts/env.sh points at secrets/connections.json; the cluster
            # passes its connection in the environment instead.
            "AIRFLOW__SECRETS__BACKEND": "",
            "AIRFLOW_CONN_ARTIFACT_STORE": json.dumps(s3),
        }
        if self.executor == "celery":
            env.update({
                "AIRFLOW__CELERY__BROKER_URL": f"redis://:{s['redis']}@127.0.0.1:{p['redis']}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://airflow:{s['postgres']}@127.0.0.1:{p['postgres']}/airflow",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",  # two workers x 1 = the 2 cores
                # Artifacts on the shared store: what one worker writes, the other reads.
                "RESULTS_DIR": f"s3://{BUCKET}/results",
                "RESULTS_CONN_ID": "artifact_store",
                "UPLOAD_URI": f"s3://{BUCKET}/uploads",
                "UPLOAD_CONN_ID": "artifact_store",
            })
        else:
            env.update({"RESULTS_DIR": str(self.root / "results"), "UPLOAD_URI": str(self.root / "uploads")})
        return env

    def start_airflow(self) -> None:
        env = self.airflow_env()
        log("airflow db migrate (PostgreSQL)")
        migrate = subprocess.run(["airflow", "db", "migrate"], check=False, env=env, cwd=PROJECT_ROOT,
                                 capture_output=True, text=True)
        if migrate.returncode:
            raise RuntimeError("airflow db migrate failed:\n" + (migrate.stdout + migrate.stderr)[-4000:])
        self.start("api-server", ["airflow", "api-server"], env)
        self.start("scheduler", ["airflow", "scheduler"], env)
        self.start("dag-processor", ["airflow", "dag-processor"], env)
        self.start("triggerer", ["airflow", "triggerer"], env)
        if self.executor == "celery":
            for name in WORKERS:
                worker_env = {
                    **env,
                    "AIRFLOW_WORKER_NAME": name,
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_hostname.hostname",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "deploy"),
                                                                 env.get("PYTHONPATH")])),
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports[name]),
                }
                self.start(name, ["airflow", "celery", "worker", "--celery-hostname", f"{name}@%h",
                                  "--queues", "default"], worker_env)
        api = Api(f"http://127.0.0.1:{self.ports['api']}")
        net.wait_for(lambda: api.get("/api/v2/monitor/health")[0] == 200, 180, "the api-server", alive=self.check_alive)
        log(f"Airflow UI: http://127.0.0.1:{self.ports['api']} (user admin, password in "
            f"{self.root / 'passwords.json'})")

    def up(self) -> None:
        self.create()
        self.start_postgres()
        if self.executor == "celery":
            self.start_redis()
            self.start_s3()
        self.start_airflow()


def stop_recorded(root: Path) -> None:
    """Stop every process group a cluster folder's ``cluster.json`` records (reverse order)."""
    state_file = root / "cluster.json"
    if not state_file.exists():
        return
    pids = json.loads(state_file.read_text()).get("pids", {})
    for name, pid in reversed(list(pids.items())):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            try:  # reap it if it is our child
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.2)
        else:
            os.killpg(pid, signal.SIGKILL)
        log(f"stopped {name} (pid {pid})")
    state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "pids": {}}, indent=2))


