#!/usr/bin/env bash
# `make airflow`: the whole Airflow stack on this machine, on SQLite: `airflow standalone`
# (api-server with the UI and REST API, scheduler, dag-processor, triggerer; LocalExecutor),
# plus the execution API, which the tasks report to, in an api-server process of its own.
#
# Why a process of its own: Airflow 3.3's api-server writes its audit log (the `log` row of
# every UI or REST action) with a synchronous commit on its event loop. On SQLite, one writer at
# a time, that commit can wait for the lock held by a task's execution-API call in the same
# process, whose own commit needs the event loop: a deadlock that only SQLite's lock wait
# (etl/runtime/sqlite.py) ends. Seen on a busy machine: the UI and REST API froze for 20-60 s and a
# trigger failed with a 500 "Database error". With the execution API in another process, the
# audit-log commit waits at most for that process's short transaction. (PostgreSQL locks rows,
# not the database: the cluster and the containers run one api-server.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

EXECUTION_PORT="${PIPELINE_EXECUTION_API_PORT:-8081}"
if [ "$AIRFLOW__API__PORT" = "$EXECUTION_PORT" ]; then
    echo "error: the UI (AIRFLOW__API__PORT) and the tasks' API (PIPELINE_EXECUTION_API_PORT) are both set to" \
         "port $EXECUTION_PORT: give them two ports" >&2
    exit 1
fi
for port in "$AIRFLOW__API__PORT" "$EXECUTION_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "error: port $port on 127.0.0.1 is taken: stop what listens there (an earlier make airflow?) or set" \
             "AIRFLOW__API__PORT (the UI, now $AIRFLOW__API__PORT) or PIPELINE_EXECUTION_API_PORT (the tasks' API, now $EXECUTION_PORT)" >&2
        exit 1
    fi
done
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$EXECUTION_PORT/execution/"
# The LocalExecutor, its workers forked with pandas and scikit-learn already imported, so that a
# task does not import them again (etl/runtime/executor.py; the project's own code is imported afresh).
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-etl.runtime.executor.PreloadingLocalExecutor}"
# The scheduler's sleep when a loop found nothing to do: 0.5 s, not 1 s, so that a finished task's
# successors start sooner (a run of the DAG: 11.8 s from trigger to done became 7.9 s; the idle
# stack's CPU 3.8 % of a core became 6.2 %; docs/benchmark.md). The cluster keeps the default.
export AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="${AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME:-0.5}"

PYTHONUNBUFFERED=1 airflow api-server --apps execution --host 127.0.0.1 --port "$EXECUTION_PORT" \
    > >(sed -u 's/^/execution-api | /') 2>&1 &
execution_api=$!
trap 'kill "$execution_api" 2>/dev/null || true' EXIT

echo "Airflow UI: $AIRFLOW__API__BASE_URL (login admin/admin, see secrets/README.md);" \
     "the tasks' execution API: $AIRFLOW__CORE__EXECUTION_API_SERVER_URL"
airflow standalone
