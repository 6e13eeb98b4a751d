# Two commands do everything on a fresh machine (Python 3.11-3.13 and make):
#   make run    set up, then run the whole DAG once with `airflow dags test`
#   make test   set up, then run the test suite (what CI runs; it installs Debian's
#               postgresql, redis-server (the cluster check), chromium and chromium-driver (the
#               browser test), docker.io, docker-compose and debootstrap (the container check),
#               as root or through sudo)
#   make check  the fast tier: ruff and the tests that start no Airflow process or server
# Other targets: make airflow (the full Airflow stack and UI on 127.0.0.1:8080), make shell,
# make cluster-test (the DAG on PostgreSQL + Celery + Redis + S3, and on PostgreSQL +
# LocalExecutor), make docker-up / docker-run / docker-test (containers), make bench (bench-ui),
# make ui-screenshots, make constraints, make dataset, make mlflow (a local MLflow server), make clean.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
MLFLOW_VENV := .venv-mlflow
ENV := source scripts/env.sh &&
DAG_ID := breast_cancer_etl_pipeline

.PHONY: run test check airflow shell db cluster-test cluster-up cluster-down bench bench-ui ui-screenshots constraints dataset clean mlflow \
	docker-env docker-build docker-up docker-down docker-run docker-test

$(VENV)/bin/python:
	@$(PYTHON) scripts/check_python.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip

# Installs are pinned by constraints.txt; stamps make them run once per change of the lists.
$(VENV)/.installed-run: $(VENV)/bin/python requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml
	$(VENV)/bin/pip install --quiet -r requirements.txt -c constraints.txt
	$(VENV)/bin/pip install --quiet --no-deps -r requirements-nodeps.txt -c constraints.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-run requirements-dev.txt
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

db: $(VENV)/.installed-run
	@$(ENV) airflow db migrate > /dev/null

# One line per task, then the summary; Airflow's full log goes to $AIRFLOW_HOME/logs/make-run/
# (airflow_home/logs/make-run/; VERBOSE=1 shows it on the terminal too). DATE=2024-03-01: the
# run's logical date (default: now); CONF='{...}': its parameters.
run: db
	@$(ENV) python -m etl.runtime.progress --log-dir "$$AIRFLOW_HOME/logs/make-run" $(if $(VERBOSE),--verbose) -- \
		airflow dags test $(DAG_ID) $(DATE) $(if $(CONF),--conf '$(CONF)')
	@$(ENV) python -m etl.runtime.summary

# pytest workers: the tests wait on Airflow subprocesses and servers much of the time, so three
# workers on 2 cores finish sooner than two (10.5 min against 12 here).
# --maxschedchunk 1: a worker holds at most two tests, so no test waits long behind one of the
# longest, which tests/conftest.py puts first (LONGEST_FIRST).
JOBS ?= 3
test: $(VENV)/.installed-cluster $(MLFLOW_VENV)/.installed  # the cluster check (tests/e2e/test_cluster.py), a real MLflow server
	$(ENV) python -m pytest -n $(JOBS) --maxschedchunk 1 --durations 15 $(PYTEST_ARGS)

# The fast tier for the edit-test loop: the linter, then every test that starts no Airflow
# process and no server (tests/etl, tests/dags, the README's commands), on the dev install.
check: $(VENV)/.installed-dev
	$(ENV) ruff check . && python -m pytest -n $(JOBS) --maxschedchunk 1 -m "not e2e and not server" $(PYTEST_ARGS)

# A local MLflow tracking server in a venv of its own (requirements-mlflow-server.txt says why):
# make mlflow serves one on 127.0.0.1:5000 (SQLite in mlflow/); then MLFLOW_TRACKING_URI=http://127.0.0.1:5000.
$(MLFLOW_VENV)/.installed: requirements-mlflow-server.txt constraints-mlflow-server.txt
	$(PYTHON) scripts/check_python.py
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install --quiet -r requirements-mlflow-server.txt -c constraints-mlflow-server.txt
	touch $@

mlflow: $(MLFLOW_VENV)/.installed
	mkdir -p mlflow
	$(MLFLOW_VENV)/bin/mlflow server --backend-store-uri sqlite:///mlflow/mlflow.db --artifacts-destination mlflow/artifacts \
		--host 127.0.0.1 --port $(or $(MLFLOW_PORT),5000) --workers 1

# The distributed setup (README, "Scaling out"): Debian's postgresql and redis-server, the
# Python extras of requirements-cluster.txt, then deploy/cluster.py starts every service on
# 127.0.0.1, runs the DAG through the REST API, checks it and stops what it started.
$(VENV)/.installed-cluster: $(VENV)/.installed-dev requirements-cluster.txt deploy/install-system-packages.sh
	deploy/install-system-packages.sh
	$(VENV)/bin/pip install --quiet -r requirements-cluster.txt -c constraints.txt
	touch $@

cluster-test: $(VENV)/.installed-cluster
	$(ENV) python deploy/cluster.py test --executor celery
	$(ENV) python deploy/cluster.py test --executor local

EXECUTOR ?= celery
cluster-up: $(VENV)/.installed-cluster
	$(ENV) python deploy/cluster.py up --executor $(EXECUTOR)

cluster-down:
	$(ENV) python deploy/cluster.py down --executor $(EXECUTOR)

# Containers (docs/containers.md): the project image and the Compose stack (docker-compose.yaml).
# They need Docker (and Docker Compose) only, not the venv.
IMAGE ?= breast-cancer-pipeline
COMPOSE := $(shell docker compose version > /dev/null 2>&1 && echo "docker compose" || echo docker-compose)
docker-env:
	@$(PYTHON) deploy/docker/stack.py env

docker-build:
	DOCKER_BUILDKIT=1 docker build -t $(IMAGE) .

docker-up: docker-env
	@$(PYTHON) deploy/docker/stack.py preflight
	$(COMPOSE) up -d
	@echo "Airflow UI: http://127.0.0.1:$${AIRFLOW_PORT:-8080} (login admin, password AIRFLOW_ADMIN_PASSWORD in .env)"

docker-down:
	$(COMPOSE) down

# The whole DAG once in a throw-away container (like make run), results in ./results.
docker-run:
	@mkdir -p results
	docker run --rm --user "$$(id -u):0" -v "$(CURDIR)/results:/opt/project/results" \
		-v "$(CURDIR)/secrets:/opt/project/secrets" $(if $(CONF),-e CONF='$(CONF)') \
		$(if $(VERBOSE),-e VERBOSE=1) $(IMAGE) run

# The container check (make test runs it too: tests/e2e/test_docker.py): stand-in images built
# here, the stack with host networking, a DAG run through REST, the one-shot run against make run.
docker-test: $(VENV)/.installed-cluster
	$(ENV) python deploy/docker/stack.py test

# The benchmark (README, "Benchmark"): writes bench/results.json, bench/results.md and the
# README's table. Run it on an otherwise idle machine.
bench: db
	$(ENV) python bench/run.py
	$(ENV) python bench/ui.py

# The UI plugin's benchmark alone: the Model page with 200 runs (bench/ui.py).
bench-ui: $(VENV)/.installed-dev
	$(ENV) python bench/ui.py

# Screenshots of the Report tab and the Model page for the README, made by the browser test.
ui-screenshots: $(VENV)/.installed-cluster
	$(ENV) UI_SCREENSHOTS=docs/img python -m pytest -q -n 2 tests/e2e/test_ui_trigger.py tests/e2e/test_approval.py

# airflow standalone, with the tasks' execution API in a process of its own (why: the script).
airflow: db
	exec scripts/airflow-stack.sh

shell: $(VENV)/.installed-dev
	@echo "Shell with the project's venv and AIRFLOW_HOME; exit to leave."
	@bash --rcfile <(echo 'source ~/.bashrc 2>/dev/null; source scripts/env.sh; PS1="(airflow) $$PS1"') -i

# Regenerate the pins from a fresh venv with the newest versions that resolve.
constraints:
	rm -rf /tmp/constraints-venv && $(PYTHON) -m venv /tmp/constraints-venv
	/tmp/constraints-venv/bin/pip install --quiet --upgrade pip
	/tmp/constraints-venv/bin/pip install --quiet -r requirements-dev.txt -r requirements-cluster.txt
	/tmp/constraints-venv/bin/pip install --quiet --no-deps -r requirements-nodeps.txt
	{ echo "# Every installed version, from a working install (make constraints); tested by CI."; \
	  /tmp/constraints-venv/bin/pip freeze --exclude-editable | grep -v '^-e '; } > constraints.txt
	@echo "constraints.txt updated: run make test before committing it"

dataset: $(VENV)/.installed-run
	$(ENV) python scripts/make_dataset.py

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) airflow_home .pytest_cache
