# Environment for running Airflow on this project. Source it from the project root or anywhere:
#   source scripts/env.sh
# Afterwards plain `airflow ...`, `python -m etl.<step>` and `pytest` use the project's venv,
# its Airflow home (airflow_home/, SQLite) and its DAG folder. The Makefile sources it too.
# It also creates three local secrets in secrets/ on first use (git-ignored): the UI login
# (admin/admin), the API's JWT signing key and an empty Airflow connections file.
# PIPELINE_AIRFLOW_HOME and PIPELINE_SECRETS_DIR move those two folders (the tests use them).

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export PROJECT_ROOT

if [ -d "$PROJECT_ROOT/.venv/bin" ]; then
    export VIRTUAL_ENV="$PROJECT_ROOT/.venv"
    case ":$PATH:" in *":$VIRTUAL_ENV/bin:"*) ;; *) export PATH="$VIRTUAL_ENV/bin:$PATH" ;; esac
fi

export AIRFLOW_HOME="${PIPELINE_AIRFLOW_HOME:-$PROJECT_ROOT/airflow_home}"
SECRETS_DIR="${PIPELINE_SECRETS_DIR:-$PROJECT_ROOT/secrets}"
mkdir -p "$SECRETS_DIR"
# PIPELINE_DAGS_FOLDER: another DAG folder (make bench runs the pipeline beside its no-op DAG).
export AIRFLOW__CORE__DAGS_FOLDER="${PIPELINE_DAGS_FOLDER:-$PROJECT_ROOT/dags}"
# The UI plugin (plugins/breast_cancer_ui.py): the Report tab of each run and the Model page.
export AIRFLOW__CORE__PLUGINS_FOLDER="$PROJECT_ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# 32 LocalExecutor workers (the default) take about 5.5 GB; 4 are plenty for this DAG.
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
# SQLite, the embedded metadata database: wait up to 20 s for its write lock, not 5 (etl/runtime/sqlite.py),
# and let a task's call to the execution API wait longer than that (30 s, not 5).
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS=etl.runtime.sqlite.CONNECT_ARGS
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC=etl.runtime.sqlite.CONNECT_ARGS
export AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT="${AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT:-30}"
# The UI and REST API: local machine only.
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
export AIRFLOW__API__WORKERS="${AIRFLOW__API__WORKERS:-1}"
export AIRFLOW__API__BASE_URL="http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="$AIRFLOW__API__BASE_URL/execution/"

# Simple auth manager: users in [core] simple_auth_manager_users (default admin:admin),
# passwords in a JSON file kept in secrets/.
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$SECRETS_DIR/simple_auth_manager_passwords.json"
if [ ! -f "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" ]; then
    (umask 077 && printf '{"admin": "admin"}\n' > "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
fi
# One JWT signing key shared by the api-server, scheduler and task processes.
if [ ! -f "$SECRETS_DIR/jwt_secret" ]; then
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$SECRETS_DIR/jwt_secret")
fi
AIRFLOW__API_AUTH__JWT_SECRET="$(cat "$SECRETS_DIR/jwt_secret")"
export AIRFLOW__API_AUTH__JWT_SECRET
# Airflow connections (S3 credentials and endpoint, SMTP, webhook URL) in a git-ignored JSON
# file, through Airflow's local-file secrets backend. AIRFLOW_CONN_<ID> variables still work;
# the file wins when both define a connection. See secrets/README.md.
if [ ! -f "$SECRETS_DIR/connections.json" ]; then
    (umask 077 && printf '{}\n' > "$SECRETS_DIR/connections.json")
fi
export AIRFLOW__SECRETS__BACKEND=airflow.secrets.local_filesystem.LocalFilesystemBackend
export AIRFLOW__SECRETS__BACKEND_KWARGS="{\"connections_file_path\": \"$SECRETS_DIR/connections.json\"}"
