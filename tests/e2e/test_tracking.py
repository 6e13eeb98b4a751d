"""Runs and releases in MLflow, against a real ``mlflow server`` on 127.0.0.1 with its own SQLite
backend (the server's venv, ``.venv-mlflow``, is made by ``make test``), with
``MLFLOW_TRACKING_URI`` set. A run of the training DAG (``dag.test()``, what ``make run`` runs) is
one MLflow run and a model version with the alias ``champion`` on the release ``results/current``
names, loadable with MLflow's scikit-learn flavour; a refused run (the ``save_results`` step, as
the DAG runs it) is an MLflow run that moves nothing; with the server stopped, a run still
publishes."""

import json
import shutil
import subprocess
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest

from etl.data.schema import FEATURE_COLUMNS
from etl.releases.reader import current_release, open_release
from etl.releases.tracking import ALIAS, MODEL_NAME
from tests.conftest import DAG_ID, PROJECT_ROOT, dag_test, decide_and_publish, gate_settings
from tests.servers import free_port

pytestmark = [pytest.mark.server, pytest.mark.timeout(600)]

MLFLOW = PROJECT_ROOT / ".venv-mlflow" / "bin" / "mlflow"


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on a free port of 127.0.0.1, SQLite and artifacts in ``tmp_path``."""
    if not MLFLOW.exists():
        pytest.fail(f"{MLFLOW} is missing: make test makes it (requirements-mlflow-server.txt)")
    port = free_port()
    log = (tmp_path / "mlflow-server.log").open("w")
    proc = subprocess.Popen(
        [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{tmp_path}/mlflow.db", "--artifacts-destination",
         str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # about 15 s idle: room for a busy machine
    while True:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=5).status == 200:
                break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "mlflow-server.log").read_text()[-3000:]
        time.sleep(1)
    try:
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def test_runs_and_releases_in_mlflow(airflow_db, mlflow_server, evaluated_runs, env, tmp_path, monkeypatch, small_csv):
    import mlflow

    url, server = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    results = tmp_path / "results"

    # A run of the training DAG publishes: one MLflow run, a version of the registered model,
    # @champion on it.
    state, _ = dag_test(DAG_ID, "2024-06-01", {**env, "MLFLOW_TRACKING_URI": url})
    assert state == "success"
    published = current_release(results)
    runs = {"first": results / "runs" / "2024-06-01T000000Z"}
    for key in ("refused", "offline"):
        runs[key] = results / "runs" / key
        shutil.copytree(evaluated_runs["new"], runs[key])
    record = json.loads((runs["first"] / "release.json").read_text())["mlflow"]
    assert record["alias"] == ALIAS and "error" not in record, record
    client = mlflow.MlflowClient(url)
    champion = client.get_model_version_by_alias(MODEL_NAME, ALIAS)
    assert champion.version == record["model_version"] == "1"
    assert champion.tags["release"] == published.name and champion.tags["content_hash"] == published.name[-12:]
    assert champion.tags["signoff"] == "auto" and champion.tags["signer"] == open_release(published).signer
    run = client.get_run(record["run_id"])
    assert run.data.tags["gate"] == "passed" and run.data.tags["published_release"] == published.name
    assert run.data.params["selection.target_sensitivity"] == "0.97" and "test_recall_ci95_low" in run.data.metrics
    assert run.data.metrics["threshold"] == pytest.approx(open_release(published).threshold)
    assert {a.path for a in client.list_artifacts(record["run_id"])} == {
        "report.html", "model_card.md", "metrics.json", "gate.json"}
    # MLflow's scikit-learn flavour loads it, and it predicts what the release predicts.
    model = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}@{ALIAS}")
    rows = pd.read_csv(small_csv)
    np.testing.assert_allclose(model.predict_proba(rows[list(FEATURE_COLUMNS)])[:, 1],
                               open_release(published).probabilities(rows), atol=1e-12)

    # A refused run: recorded, and nothing moves.
    assert not decide_and_publish(runs["refused"], results, gate_settings(min_roc_auc=1.01))["published"]
    refused = json.loads((runs["refused"] / "release.json").read_text())["mlflow"]
    assert "model_version" not in refused and client.get_run(refused["run_id"]).data.tags["gate"] == "refused"
    assert client.get_model_version_by_alias(MODEL_NAME, ALIAS).version == "1"
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == 1
    assert len(client.search_runs([client.get_experiment_by_name(DAG_ID).experiment_id])) == 2  # one per run
    assert current_release(results) == published

    # MLflow stopped: the run publishes all the same, and says MLflow did not record it.
    server.terminate()
    server.wait(timeout=60)
    started = time.monotonic()
    outcome = decide_and_publish(runs["offline"], results, gate_settings(min_roc_auc=0.5))
    assert outcome["release"] and current_release(results).name == outcome["release"].rsplit("/", 1)[-1]
    offline = json.loads((runs["offline"] / "release.json").read_text())
    assert offline["published"] is True and offline["mlflow"]["error"], offline
    assert time.monotonic() - started < 120  # one retry, not MLflow's default seven
