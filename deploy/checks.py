"""The checks of the distributed setup (``deploy/cluster.py test``), and the REST client they use
(shared with the container check and the UI tests): trigger the DAG through the REST API, wait
for the run, check where its tasks ran, the artifacts in the bucket against the release's
manifest, the UI plugin, and that no generated secret is in a log. ``check``, not ``assert``:
the checks must hold under ``python -O``.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script too
from deploy import net
from deploy.net import Api
from deploy.services import BUCKET, DAG_ID, RUN_TIMEOUT, WORKERS, Cluster, log
from etl.storage.layout import TOP_FILES

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
    for name, expected in {**manifest["artifacts"], **manifest["documents"]}.items():  # the model card too
        top = [f"results/{name}"] if name in TOP_FILES else []  # (the skops files are in the release only)
        for key in (f"results/published/{release}/{name}", *top, f"uploads/{release.rsplit('-', 1)[0]}/{name}"):
            check(key in objects, f"missing s3://{BUCKET}/{key}")
            check(hashlib.sha256(body(key)).hexdigest() == expected["sha256"], f"s3://{BUCKET}/{key} differs")
    metrics = json.loads(body("results/metrics.json"))
    log(f"tasks ran on {sorted(hosts)}; release {release} in s3://{BUCKET}/results, uploaded to "
        f"s3://{BUCKET}/uploads; ROC AUC {metrics['roc_auc']:.3f}, recall {metrics['recall']:.3f}")


def check_local(cluster: Cluster, tasks: list[dict[str, Any]]) -> None:
    check(all(ti["state"] == "success" for ti in tasks), [(t["task_id"], t["state"]) for t in tasks])
    results = cluster.root / "results"
    manifest = json.loads((results / "manifest.json").read_text())
    for name, expected in {**manifest["artifacts"], **manifest["documents"]}.items():  # the model card too
        check(hashlib.sha256((results / "current" / name).read_bytes()).hexdigest() == expected["sha256"], name)
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


