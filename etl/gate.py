"""The quality gate: what a new model must clear before ``save_results`` publishes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from etl import storage
from etl.config import MANIFEST, RunPaths
from etl.errors import MissingInputError
from etl.releases import current_release, load_from_release, release_run_key
from etl.storage import Target


@dataclass(frozen=True)
class Gate:
    """What a new model must clear to be published."""

    min_roc_auc: float = 0.95
    min_sensitivity: float = 0.90
    max_roc_auc_drop: float = 0.0


def published_scores_on(run: RunPaths, release: Target) -> dict[str, float]:
    """ROC AUC and sensitivity of a published release's model on this run's test rows (raw
    rows from ``data.parquet``, transformed by the release's own preprocessing, at its threshold)."""
    import numpy as np
    from sklearn import metrics as skm

    from etl.models import malignant_probability
    from etl.schema import FEATURE_COLUMNS, ID_COLUMN, LABEL_CODES, TARGET_COLUMN

    manifest = storage.read_json(release / MANIFEST, "save_results")
    model = load_from_release(release, "model.pkl", manifest)
    scaler = load_from_release(release, "scaler.pkl", manifest)
    test_ids = storage.read_frame(run.test, "preprocess_data")[ID_COLUMN]
    rows = storage.read_frame(run.data, "load_data").set_index(ID_COLUMN).loc[test_ids]
    y = rows[TARGET_COLUMN].map(LABEL_CODES).to_numpy(dtype=int)
    p = malignant_probability(model, scaler.transform(rows[list(FEATURE_COLUMNS)]))
    threshold = manifest.get("model", {}).get("threshold", 0.5)
    return {"roc_auc": float(skm.roc_auc_score(y, p)),
            "sensitivity": float(np.mean(p[y == 1] >= threshold))}


def quality_gate(run: RunPaths, results_dir: Target, gate: Gate) -> dict[str, Any]:
    """Check the run's test metrics against the floors and against the published model on the
    same test rows. Returns the record written to ``gate.json``: ``passed`` and each check."""
    metrics = storage.read_json(run.metrics, "evaluate_model")
    checks = [
        {"check": "roc_auc >= min_roc_auc", "value": metrics["roc_auc"], "limit": gate.min_roc_auc,
         "passed": metrics["roc_auc"] >= gate.min_roc_auc},
        {"check": "sensitivity >= min_sensitivity", "value": metrics["recall"],
         "limit": gate.min_sensitivity, "passed": metrics["recall"] >= gate.min_sensitivity},
    ]
    record: dict[str, Any] = {"published_release": None}
    try:
        published = current_release(results_dir)
    except MissingInputError:
        published = None
    if published is not None and release_run_key(published.name) != run.root.name:
        theirs = published_scores_on(run, published)
        limit = theirs["roc_auc"] - gate.max_roc_auc_drop
        checks.append({"check": "roc_auc >= published roc_auc - max_roc_auc_drop",
                       "value": metrics["roc_auc"], "limit": limit, "passed": metrics["roc_auc"] >= limit})
        record.update(published_release=published.name, published_on_this_test_split=theirs)
    record.update(passed=all(c["passed"] for c in checks), checks=checks)
    return record


def gate_from(settings: Any) -> Gate:
    """The quality gate of the settings' ``[gate]``."""
    return Gate(settings.gate_min_roc_auc, settings.gate_min_sensitivity, settings.gate_max_roc_auc_drop)

