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
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script too
from deploy.checks import (
    check_celery,
    check_local,
    check_no_secret_in_logs,
    check_ui_plugin,
    trigger_and_wait,
)
from deploy.services import DEFAULT_DIR, Cluster, log, stop_recorded


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
