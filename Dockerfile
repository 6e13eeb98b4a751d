# The project image: Airflow 3.3.2 and the pipeline, pinned by constraints.txt (the versions
# `make run` uses), for the Compose stack (docker-compose.yaml), a one-shot run of the DAG
# (`docker run ... breast-cancer-pipeline run`) and Kubernetes (docs/scaling-out.md).
#
#   docker build -t breast-cancer-pipeline .                       # BASE: the public image below
#   docker build --build-arg BASE=<other Debian-based Python 3.11 image> ...
#
# No `# syntax=` line: it would pull a frontend image; the builder's own Dockerfile frontend is used.
# Nothing secret, no results/, airflow_home/, .venv/ or secrets/ goes in (.dockerignore); the
# secrets come from the environment at run time (.env, docs/scaling-out.md).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/project \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/project/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/project/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False \
    AIRFLOW__CORE__PARALLELISM=4

# The Python dependencies first (a layer reused while only the code changes). Two optional
# build secrets, which enter neither the image nor the layer's cache key (what the layer holds is
# fixed by the files copied here: constraints.txt pins every version):
# - `cacert`: a CA bundle for pip (a proxy's, as on the project's CI machines);
# - `pipconf`: a pip configuration file (another index and its credentials, or a wheelhouse:
#   make docker-test's has `find-links` to the wheels the host's own install fetched, served on
#   127.0.0.1, and `no-index`). Without them, pip uses its own CA bundle and the public index.
WORKDIR /opt/project
COPY requirements.txt requirements-nodeps.txt requirements-cluster.txt constraints.txt ./
RUN --mount=type=secret,id=cacert,target=/run/secrets/cacert \
    --mount=type=secret,id=pipconf,target=/run/secrets/pipconf \
    set -eu; \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi; \
    if [ -s /run/secrets/pipconf ]; then export PIP_CONFIG_FILE=/run/secrets/pipconf; fi; \
    python3 -m venv /opt/venv; \
    grep -v '^-e ' requirements.txt > /tmp/requirements.txt; \
    grep -v '^-r ' requirements-cluster.txt > /tmp/requirements-cluster.txt; \
    pip install --quiet -r /tmp/requirements.txt -r /tmp/requirements-cluster.txt -c constraints.txt; \
    pip install --quiet --no-deps -r requirements-nodeps.txt -c constraints.txt; \
    rm /tmp/requirements*.txt

# A non-root user (uid 50000, group 0, as in Airflow's own image), its home the Airflow home.
# secrets/ is empty here: the release signing key is made there on first use, in the Compose
# stack's `signing-keys` volume (or a mounted secret: RELEASE_SIGNING_KEY, secrets/README.md).
RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home --shell /bin/bash airflow \
    && mkdir -p /opt/airflow/logs /opt/project/results /opt/project/secrets \
    && chown -R 50000:0 /opt/airflow /opt/project/results /opt/project/secrets \
    && chmod -R g+rwX /opt/airflow /opt/project/results \
    && chmod 0770 /opt/project/secrets

# The project: the etl package (importable through PYTHONPATH), the DAGs, the UI plugin, the
# settings and the shipped data.
COPY pipeline.toml pyproject.toml ./
COPY data ./data
COPY etl ./etl
COPY dags ./dags
COPY plugins ./plugins
COPY deploy/worker_hostname.py ./deploy/worker_hostname.py
COPY deploy/docker/entrypoint.sh /entrypoint

USER 50000:0
ENTRYPOINT ["/entrypoint"]
CMD ["--help"]
