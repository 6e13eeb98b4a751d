"""Each training run and each published release in MLflow: on when ``MLFLOW_TRACKING_URI`` is
set (MLflow's own variable), off otherwise, and then ``mlflow`` is never imported.

``save_results`` calls ``track`` once it has decided (``etl.save_results``):

- **one MLflow run per training run**, in the experiment named after the training DAG
  (``breast_cancer_etl_pipeline``), named after the run key and tagged with the Airflow DAG
  run: the run's parameters and settings (``[split]``, ``[selection]``, ``[model]``,
  ``[nested_cv]``, ``[evaluation]``, ``[gate]``); the test split's metrics with their 95 %
  intervals; the pooled nested estimate with its intervals and the three-way call's shares; the
  chosen candidate and both thresholds; the gate's decision and whether the run published; the
  report, the model card, ``metrics.json`` and ``gate.json`` as artifacts;
- **each published release a version of one registered model** (``MODEL_NAME``), logged with
  MLflow's scikit-learn flavour (the release's preprocessing and model as one ``Pipeline``,
  built from its verified skops files and saved by MLflow as skops with the types it needs:
  ``mlflow.sklearn.load_model("models:/breast_cancer_diagnosis@champion")`` loads it), tagged
  with the release id, its content hash, its signer and its sign-off; the alias ``champion``
  moves to it. A refused or rejected run registers nothing and moves no alias.

MLflow down or refusing is a warning in the log and a line in the run's ``release.json``
(``mlflow``), never a failed task or a lost release: the release is published before MLflow
is called, and the client is told to give up after ``TIMEOUT_SECONDS`` and ``RETRIES``
retries (``MLFLOW_HTTP_REQUEST_TIMEOUT``, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, unless set).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

from etl import storage
from etl.catalog import TRAINING_DAG_ID, first_line

logger = logging.getLogger(__name__)

#: The registered model every release is a version of.
MODEL_NAME = "breast_cancer_diagnosis"
#: The alias of the version of the published release.
ALIAS = "champion"
#: The settings sections logged as the run's parameters.
SECTIONS = ("split", "selection", "model", "nested_cv", "evaluation", "gate")
#: How long a call to the tracking server may take, and how often it is retried.
TIMEOUT_SECONDS, RETRIES = 20, 1
#: The test split's metrics logged (each with its 95 % interval's bounds).
TEST_METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc", "pr_auc", "brier")


def tracking_uri() -> str | None:
    """MLflow's tracking URI when tracking is on (``MLFLOW_TRACKING_URI``), else None."""
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def _params(settings: Any) -> dict[str, str]:
    params = {}
    for section in SECTIONS:
        values = getattr(settings, section, None)
        if values is None:
            continue
        values = dataclasses.asdict(values) if dataclasses.is_dataclass(values) else dict(values)
        params.update({f"{section}.{k}": str(v)[:500] for k, v in values.items()})
    params["candidates.enabled"] = ",".join(settings.candidates)
    return params


def _metrics(metrics: Mapping[str, Any], gate: Mapping[str, Any], published: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in TEST_METRICS:
        if isinstance(metrics.get(name), (int, float)):
            out[f"test_{name}"] = float(metrics[name])
            low, high = (metrics.get("ci95") or {}).get(name) or (None, None)
            if low is not None:
                out[f"test_{name}_ci95_low"], out[f"test_{name}_ci95_high"] = float(low), float(high)
    pooled = (metrics.get("expected_performance") or {}).get("pooled") or {}
    for name in ("sensitivity", "specificity", "ppv"):
        if name in pooled:
            out[f"expected_{name}"] = float(pooled[name])
            low, high = pooled.get(f"{name}_ci95") or (None, None)
            if low is not None:
                out[f"expected_{name}_ci95_low"], out[f"expected_{name}_ci95_high"] = float(low), float(high)
    triage = ((metrics.get("expected_performance") or {}).get("triage") or {}).get("pooled") or {}
    for name in ("malignant_called_benign", "benign_called_malignant", "referred"):
        if name in triage:
            out[f"expected_{name}"] = float(triage[name])
    calls = metrics.get("triage") or {}
    out["threshold"] = float(metrics["threshold"])
    if "malignant_from" in calls:
        out["malignant_threshold"] = float(calls["malignant_from"])
    out["gate_passed"], out["published"] = float(bool(gate.get("passed"))), float(published)
    return out


def _champion(client: Any, release_dir: storage.Location, run_id: str) -> str:
    """Log the release's model under ``run_id`` and register it; tag the version and move the
    alias to it. Its version number."""
    import mlflow
    import skops.io
    from sklearn.pipeline import Pipeline

    from etl.releases.reader import open_release

    release = open_release(release_dir)
    pipeline = Pipeline([("preprocess", release.scaler), ("model", release.model)])
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    info = mlflow.sklearn.log_model(pipeline, name="model", serialization_format="skops", skops_trusted_types=trusted,
                                    registered_model_name=MODEL_NAME, await_registration_for=TIMEOUT_SECONDS)
    version = str(info.registered_model_version)
    manifest = release.manifest
    tags = {"release": release.name, "content_hash": release.name.rsplit("-", 1)[-1], "signer": release.signer,
            "signoff": str((manifest.get("signoff") or {}).get("decision")), "candidate": manifest["model"]["candidate"],
            "airflow_run_id": str((manifest.get("run") or {}).get("run_id"))}
    for key, value in tags.items():
        client.set_model_version_tag(MODEL_NAME, version, key, value)
    client.set_registered_model_alias(MODEL_NAME, ALIAS, version)
    return version


def track(run: Any, outcome: Mapping[str, Any]) -> dict[str, Any] | None:
    """Record training run ``run`` (``etl.runner.Run``) in MLflow, and the release it published
    (``outcome``: ``save_results``' result). Never raises.

    Returns:
        None when tracking is off; else what happened, for the run's ``release.json``:
        ``run_id``, and ``model_version`` and ``alias`` for a published release, or ``error``.
    """
    uri = tracking_uri()
    if uri is None:
        return None
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(TIMEOUT_SECONDS))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(RETRIES))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    record: dict[str, Any] = {"tracking_uri": uri}
    try:
        import mlflow

        folder = run.folder
        metrics, gate = storage.read_json(folder.metrics), storage.read_json(folder.gate)
        published = bool(outcome.get("published", True)) and "release" in outcome
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(TRAINING_DAG_ID)
        client = mlflow.MlflowClient(uri)
        tags = {"airflow.dag_id": str(run.info.get("dag_id", TRAINING_DAG_ID)), "airflow.run_id": str(run.info.get("run_id")),
                "run_key": folder.root.name, "candidate": str((metrics.get("model") or {}).get("candidate")),
                "gate": "passed" if gate.get("passed") else "refused",
                "published_release": storage.location(outcome["release"]).name if published else "",
                "not_published_because": "" if published else str(outcome.get("reason", ""))[:5000]}
        with mlflow.start_run(run_name=folder.root.name, tags=tags) as active:
            record["run_id"] = active.info.run_id
            mlflow.log_params(_params(run.settings))
            mlflow.log_metrics(_metrics(metrics, gate, published))
            for path in (folder.report, folder.model_card, folder.metrics, folder.gate):
                if storage.exists(path):
                    mlflow.log_artifact(str(path))
            if published:
                record["model_version"] = _champion(client, outcome["release"], active.info.run_id)
                record.update(registered_model=MODEL_NAME, alias=ALIAS)
        logger.info("MLflow: run %s at %s%s", record["run_id"], uri,
                    f"; {MODEL_NAME} version {record['model_version']} is now @{ALIAS}" if published else "")
    except Exception as exc:  # MLflow down or refusing: the run and its release stand
        record["error"] = first_line(exc) or type(exc).__name__
        logger.warning("MLflow at %s: not recorded: %s (the run and its release are unaffected)", uri, record["error"])
    return record
