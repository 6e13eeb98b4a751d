"""Run the pipeline's DAG, unchanged, on a distributed Airflow on this machine, and check it.

Topology (README, "Scaling out"), every service on 127.0.0.1 in one private folder:

- PostgreSQL: the metadata database (instead of SQLite);
- Redis: the Celery broker;
- a local S3 API server (moto in server mode): the shared artifact root ``RESULTS_DIR=s3://...``
  and the upload destination, so a task on one worker reads what a task on another wrote;
- Airflow: ``api-server`` (UI, REST and the execution API the workers' tasks talk to),
  ``scheduler``, ``dag-processor``, ``triggerer`` and, with CeleryExecutor, two Celery workers
  with distinct names (``worker-a``, ``worker-b``).

With ``--executor local`` it is the common single-machine production setup instead:
PostgreSQL + LocalExecutor (the scheduler runs the tasks), no Redis, no workers, results on
the local disk.

Commands::

    python deploy/cluster.py test [--executor celery|local]   start, trigger, check, stop
    python deploy/cluster.py up   [--executor celery|local]   start and leave it running
    python deploy/cluster.py down                              stop what `up` started

``test`` triggers the DAG through the REST API (a token from ``/auth/token``, then
``POST /api/v2/dags/{dag_id}/dagRuns``), waits for the run, checks that every task succeeded,
that tasks ran on both Celery workers (the task instances' ``hostname``), that the artifacts
are in the bucket and match the release's manifest, and that no generated secret appears in a
log; then it stops every process it started, by PID (each service's process group). Exit code
0 when every check passed.

Needs the Debian packages ``postgresql`` and ``redis-server`` and the Python packages of
``requirements-cluster.txt`` (``make cluster-test`` installs them). Run from the project's venv
(``source scripts/env.sh``). Secrets (database, broker, S3 and admin passwords, JWT and Fernet
keys) are generated per cluster into its folder, mode 0600. Run as root, PostgreSQL runs as the
``postgres`` user, which must be able to reach that folder (the default, under /tmp, is).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script too
from deploy import net

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


class Api:
    """The Airflow REST API with a bearer token.

    A request may wait ``timeout`` seconds for its answer: far longer than an api-server on SQLite
    may wait for the database's write lock (etl/sqlite.py), so a busy machine, where a POST was
    seen taking over 30 s, gets a slow answer and not a client-side timeout.
    """

    timeout: float = 180

    def __init__(self, base: str):
        self.base, self.token = base, None

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def get(self, path: str) -> tuple[int, Any]:
        return self.call("GET", path)

    def login(self, password: str) -> None:
        status, body = self.call("POST", "/auth/token", {"username": "admin", "password": password})
        if status != 201:
            raise RuntimeError(f"/auth/token: {status} {body}")
        self.token = body["access_token"]


# -- the end-to-end check -----------------------------------------------------------------------


class CheckFailed(AssertionError):
    """A check of the cluster test failed."""


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port`` on this machine (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, local_port = local.split(":")
        if state == "0A" and int(local_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def check(condition: Any, message: Any) -> None:
    """Fail the cluster test with ``message`` unless ``condition`` holds (an ``assert`` would
    vanish under ``python -O``)."""
    if not condition:
        raise CheckFailed(str(message))



def trigger_and_wait(cluster: Cluster) -> tuple[str, list[dict[str, Any]]]:
    """Unpause and trigger the DAG through REST; wait for the run; return its id and tasks."""
    api = Api(f"http://127.0.0.1:{cluster.ports['api']}")
    api.login(cluster.secrets["admin"])
    net.wait_for(lambda: api.get(f"/api/v2/dags/{DAG_ID}")[0] == 200, 180, "the DAG to be parsed", alive=cluster.check_alive)
    status, body = api.call("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    check(status == 200, (status, body))
    status, run = api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {}})
    check(status == 200, (status, run))
    run_id = run["dag_run_id"]
    log(f"triggered {run_id}")
    started = time.monotonic()

    def finished():
        state = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")[1]["state"]
        return state if state in ("success", "failed") else None

    state = net.wait_for(finished, RUN_TIMEOUT, f"run {run_id}", alive=cluster.check_alive)
    tasks = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")[1]["task_instances"]
    log(f"run {run_id}: {state} in {time.monotonic() - started:.0f} s")
    for ti in sorted(tasks, key=lambda t: (t["start_date"] or "", t["map_index"])):
        label = ti["task_id"] + (f"[{ti.get('rendered_map_index') or ti['map_index']}]" if ti["map_index"] >= 0 else "")
        print(f"  {label:42} {ti['state']:8} {ti.get('hostname') or '-':12} {ti.get('duration') or 0:6.1f} s")
    if state != "success":
        raise AssertionError(f"run {run_id} ended {state}; task logs are under {cluster.root / 'airflow' / 'logs'}")
    return run_id, tasks


def check_celery(cluster: Cluster, tasks: list[dict[str, Any]]) -> None:
    hosts = {ti["hostname"] for ti in tasks}
    check(all(ti["state"] == "success" for ti in tasks), [(t["task_id"], t["state"]) for t in tasks])
    check(hosts == set(WORKERS), f"tasks ran on {sorted(hosts)}, expected both of {list(WORKERS)}")
    s3 = cluster.s3_client()
    objects = {o["Key"]: o for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}

    def body(key: str) -> bytes:
        return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    release = json.loads(body("results/current.json"))["release"]
    manifest = json.loads(body(f"results/published/{release}/manifest.json"))
    for name, expected in manifest["artifacts"].items():
        for key in (f"results/published/{release}/{name}", f"results/{name}",
                    f"uploads/{release.rsplit('-', 1)[0]}/{name}"):
            check(key in objects, f"missing s3://{BUCKET}/{key}")
            check(hashlib.sha256(body(key)).hexdigest() == expected["sha256"], f"s3://{BUCKET}/{key} differs")
    metrics = json.loads(body("results/metrics.json"))
    log(f"tasks ran on {sorted(hosts)}; release {release} in s3://{BUCKET}/results, uploaded to "
        f"s3://{BUCKET}/uploads; ROC AUC {metrics['roc_auc']:.3f}, recall {metrics['recall']:.3f}")


def check_local(cluster: Cluster, tasks: list[dict[str, Any]]) -> None:
    check(all(ti["state"] == "success" for ti in tasks), [(t["task_id"], t["state"]) for t in tasks])
    results = cluster.root / "results"
    manifest = json.loads((results / "manifest.json").read_text())
    for name, expected in manifest["artifacts"].items():
        check(hashlib.sha256((results / name).read_bytes()).hexdigest() == expected["sha256"], name)
    metrics = json.loads((results / "metrics.json").read_text())
    log(f"release {manifest['release']} in {results}; ROC AUC {metrics['roc_auc']:.3f}, "
        f"recall {metrics['recall']:.3f}")


def check_ui_plugin(cluster: Cluster, run_id: str) -> None:
    """The UI plugin (plugins/breast_cancer_ui.py) on the api-server reads the run and the
    release from the results root (S3 with Celery), and refuses an anonymous caller."""
    from urllib.parse import quote

    api = Api(f"http://127.0.0.1:{cluster.ports['api']}")
    check(api.get("/breast-cancer/api/releases")[0] == 401, "the plugin's API answered an anonymous call")
    api.login(cluster.secrets["admin"])
    status, run = api.get(f"/breast-cancer/api/runs/{quote(run_id, safe='')}")
    check(status == 200 and run.get("state") == "published", (status, run))
    status, releases = api.get("/breast-cancer/api/releases")
    check(status == 200 and releases["current"] == run["release"], (status, releases))
    log(f"UI plugin: run {run_id} shown as {run['state']}, release {run['release']} current")


def check_no_secret_in_logs(cluster: Cluster) -> None:
    """No generated secret in a task log or a service's output."""
    logs = [*(cluster.root / "airflow" / "logs").rglob("*.log"), *cluster.logs.glob("*.log")]
    check(any("task_id=" in p.name or "attempt=" in p.name for p in logs), "no task log found")
    for path in logs:
        text = path.read_text(errors="replace")
        leaked = [k for k, v in cluster.secrets.items() if v in text]
        check(not leaked, f"{path} contains the {', '.join(leaked)} secret")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("test", "up", "down"))
    parser.add_argument("--executor", choices=("celery", "local"), default="celery")
    parser.add_argument("--dir", type=Path, default=None,
                        help=f"the cluster's private folder (default {DEFAULT_DIR}-<executor>)")
    args = parser.parse_args(argv)
    root = args.dir or Path(f"{DEFAULT_DIR}-{args.executor}")
    if args.command == "down":
        stop_recorded(root)
        return 0
    cluster = Cluster(root, args.executor)
    started, passed = time.monotonic(), False
    try:
        cluster.up()
        if args.command == "up":
            log(f"running; stop it with: python deploy/cluster.py down --dir {root}")
            passed = True
            return 0
        run_id, tasks = trigger_and_wait(cluster)
        (check_celery if args.executor == "celery" else check_local)(cluster, tasks)
        check_ui_plugin(cluster, run_id)
        check_no_secret_in_logs(cluster)
        log(f"{args.executor}: all checks passed in {time.monotonic() - started:.0f} s")
        passed = True
        return 0
    except (AssertionError, RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        log(f"FAILED: {exc}")
        for name in cluster.procs:
            print(f"--- {name} (last lines of {cluster.logs / (name + '.log')})\n{cluster.tail(name, 15)}")
        return 1
    finally:
        if args.command == "test" or not passed:  # `up` leaves a healthy cluster running
            stop_recorded(root)


if __name__ == "__main__":
    raise SystemExit(main())
