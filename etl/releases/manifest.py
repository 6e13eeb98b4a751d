"""The manifest of a release: what a published model was made from.

``manifest.json`` records the SHA-256 and size of each artifact, the input data's hash and row
count, the ids of the rows the model was trained on (the quality gate never judges a model on
them), every parameter, library versions, the code revision, and the run's ids and times. All
but the ``run`` section is the same for the same data, parameters and code.
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from etl import storage
from etl.catalog import StepInputs
from etl.data.drift import feature_reference
from etl.data.scope import fit_scope
from etl.settings import PROJECT_ROOT

#: Libraries whose versions go into the manifest.
VERSIONED = ("apache-airflow", "pandas", "numpy", "scikit-learn", "joblib", "skops")


def library_versions() -> dict[str, str | None]:
    """Versions of Python and of the libraries that shape the model."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def code_revision(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The git commit of the code and whether tracked files were changed; ``None`` without git."""
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {"revision": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None}


def build_manifest(
    run: StepInputs, artifacts: Mapping[str, Mapping[str, Any]], release: str,
    run_info: Mapping[str, Any],
) -> dict[str, Any]:
    """The manifest of a release, from the records the run's steps wrote.

    Times and run ids are under ``run`` only; everything else is the same for the same data,
    parameters and code.
    """
    profile = storage.read_json(run.profile)
    split = storage.read_json(run.preprocessing)
    training = storage.read_json(run.training)
    train_ids = pd.Index(storage.read_frame(run.train, columns=["id"])["id"].astype(str))
    data = storage.read_frame(run.data)
    train_rows = data[train_ids.unique().get_indexer(data["id"].astype(str)) >= 0]  # (a hash join: isin on strings is slow)
    return {
        "manifest_version": 1,
        "release": release,
        "artifacts": dict(artifacts),
        "data": {
            "source": profile["source"],
            "sha256": profile["source_sha256"],
            "bytes": profile["source_bytes"],
            "rows": profile["rows"],
            "rows_read": profile["rows_read"],
            "class_balance": profile["class_balance"],
            # the rows the model was fitted on: the quality gate never judges it on them
            "train_ids": train_ids.tolist(),
        },
        "params": {
            "load_data": {"data_path": profile["source"], **profile["contract"]},
            "preprocess_data": {"test_size": split["test_size"], "random_state": split["random_state"],
                                **({"split": split["split"]} if "split" in split else {})},
            "train_model": {"estimator": training["estimator"], **training["params"]},
            "select_model": {"candidate": training["candidate"],
                             "metric": training["selection"]["metric"],
                             "folds": training["selection"]["folds"],
                             "repeats": training["selection"]["repeats"],
                             "rule": training["selection"].get("rule"),
                             "threshold_rule": training["threshold"].get("rule"),
                             "guarantee": training["threshold"].get("guarantee"),
                             "target_sensitivity": training["threshold"]["target_sensitivity"],
                             "threshold_confidence": training["threshold"].get("confidence")},
        },
        "model": {"candidate": training["candidate"], "estimator": training["estimator"],
                  "threshold": training["threshold"]["threshold"],
                  "malignant_threshold": training["triage"]["threshold"]},
        # the raw training features' distribution, for the scoring DAG's drift check (etl.data.drift)
        "feature_reference": feature_reference(train_rows),
        # which cases the model may answer for (etl.data.scope): ranges and the novelty model
        "scope": fit_scope(train_rows),
        "versions": library_versions(),
        "code": code_revision(),
        "run": {**run_info, "run_key": run.run_key,
                "published_at": datetime.now(UTC).isoformat(timespec="seconds")},
    }

