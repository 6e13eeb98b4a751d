#!/usr/bin/env bash
# Entrypoint of the project image.
#
#   run                 migrate a throw-away SQLite database, run the whole DAG once with
#                       `airflow dags test` (CONF='{"C": 0.5}' for run parameters) and print
#                       the summary `make run` prints; results in /opt/project/results
#   bash | python | sh  that program
#   anything else       an airflow command: api-server, scheduler, celery worker, db migrate ...
#
# AIRFLOW_ADMIN_PASSWORD, when set, becomes the UI login admin's password (simple auth manager),
# written to a file only this user can read; it is never baked into the image.
set -euo pipefail

if [ -n "${AIRFLOW_ADMIN_PASSWORD:-}" ]; then
    passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json"
    (umask 077 && python -c 'import json, os; print(json.dumps({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}))' > "$passwords")
    export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$passwords"
fi

case "${1:-}" in
    run)
        # SQLite: wait for its write lock as `make run` does (etl/runtime/sqlite.py).
        export AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS=etl.runtime.sqlite.CONNECT_ARGS
        airflow db migrate > /dev/null
        # One line per task; Airflow's full log in results/logs/ (VERBOSE=1: here too).
        python -m etl.runtime.progress --log-dir results/logs ${VERBOSE:+--verbose} -- \
            airflow dags test breast_cancer_etl_pipeline ${CONF:+--conf "$CONF"}
        exec python -m etl.runtime.summary
        ;;
    bash | sh | python | python3)
        exec "$@"
        ;;
    *)
        exec airflow "$@"
        ;;
esac
