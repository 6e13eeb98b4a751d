"""The labelled training data, grown from confirmed cases: versions that are never rewritten.

::

    results/datasets/
      v0001/data.csv        the shipped layout (id, diagnosis, the 30 features): what load_data reads
      v0001/manifest.json   its parent, rows, SHA-256, the cases it added, the batches and the
                            outcome files they came from
      current.json          {"version": "v0001", "data_path": ".../v0001/data.csv"}

The first version is the configured data (``[paths] data_path``) plus the confirmed cases; each
later one is the previous version plus the cases confirmed since. A confirmed case is the scored
features (the batch's ``rows.parquet``, as the input contract read them) with the confirmed
diagnosis; an id the data already has is not added again. A version is written when at least
``[outcomes] retrain_min_cases`` new cases are confirmed; the outcomes DAG then updates the
training-data asset (``results/datasets/current.json``), which starts the training DAG on that version. The
training split is a hash of each id, so old rows stay on their side and the quality gate still
compares on test rows neither model trained on. On an object store (the cluster's ``s3://``
results root) the versions are written there the same way, the manifest last.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from etl import storage
from etl.data.contract import read_input, validate
from etl.data.schema import FEATURE_COLUMNS, ID_COLUMN, TARGET_COLUMN
from etl.storage import Location
from etl.storage.layout import ResultsPaths

logger = logging.getLogger(__name__)

CURRENT = "current.json"


def current(results_dir: Location) -> dict[str, Any] | None:
    """The newest version's record, or None before the first."""
    path = ResultsPaths(storage.location(results_dir)).datasets / CURRENT
    return storage.read_json(path) if storage.exists(path) else None


def _version_name(n: int) -> str:
    return f"v{n:04d}"


def confirmed_cases(matched: pd.DataFrame, results_dir: Location) -> pd.DataFrame:
    """The features and the confirmed diagnosis of each confirmed, scored id (the first batch
    that scored it), with the batch and outcome files it came from."""
    layout = ResultsPaths(storage.location(results_dir))
    rows = []
    for batch, group in matched.sort_values("batch").groupby("batch", sort=True):
        features = storage.read_frame(layout.batch(str(batch)).rows).astype({ID_COLUMN: str})
        joined = features.merge(group[["id", "diagnosis", "files"]].drop_duplicates("id"),
                                left_on=ID_COLUMN, right_on="id", how="inner")
        rows.append(joined.assign(batch=str(batch)))
    if not rows:
        return pd.DataFrame(columns=[ID_COLUMN, TARGET_COLUMN, *FEATURE_COLUMNS, "batch", "files"])
    cases = pd.concat(rows, ignore_index=True).drop_duplicates(ID_COLUMN, keep="first")
    return cases.rename(columns={"diagnosis": TARGET_COLUMN})[[ID_COLUMN, TARGET_COLUMN, *FEATURE_COLUMNS,
                                                               "batch", "files"]]


def grow(matched: pd.DataFrame, results_dir: Location, base_data: Location, min_cases: int) -> dict[str, Any] | None:
    """Write the next version when at least ``min_cases`` confirmed cases are not yet in the
    newest one (``min_cases`` 0: never).

    Returns:
        the new version's record (``version``, ``data_path``, ``added``, ``rows``), or None.
    """
    if min_cases <= 0 or matched.empty:
        return None
    layout = ResultsPaths(storage.location(results_dir))
    latest = current(results_dir)
    parent_path = latest["data_path"] if latest else str(base_data)
    parent, _ = validate(read_input(parent_path), str(parent_path), max_missing_share=1.0, min_rows_per_class=0)
    parent[ID_COLUMN] = parent[ID_COLUMN].astype(str)
    cases = confirmed_cases(matched, results_dir)
    new = cases[~cases[ID_COLUMN].isin(set(parent[ID_COLUMN]))]
    if len(new) < min_cases:
        logger.info("%d new confirmed case(s) since %s: a new training data version needs %d",
                    len(new), latest["version"] if latest else "the configured data", min_cases)
        return None
    number = int(latest["version"][1:]) + 1 if latest else 1
    version = _version_name(number)
    data = pd.concat([parent[[ID_COLUMN, TARGET_COLUMN, *FEATURE_COLUMNS]], new[[ID_COLUMN, TARGET_COLUMN,
                                                                                   *FEATURE_COLUMNS]]],
                     ignore_index=True)
    folder = layout.datasets / version
    if storage.exists(folder / "manifest.json"):
        # Written whole by a run killed before it moved current.json: never rewritten, made current.
        manifest = storage.read_json(folder / "manifest.json")
        logger.info("training data %s was written whole by an interrupted run: made current", version)
        return _make_current(layout, folder, manifest)
    body = data.to_csv(index=False, lineterminator="\n").encode()
    storage.write_bytes(body, folder / "data.csv")
    manifest = {
        "version": version,
        "parent": latest["version"] if latest else None,
        "parent_data": str(parent_path),
        "rows": len(data),
        "added": len(new),
        "class_balance": {k: int(v) for k, v in data[TARGET_COLUMN].value_counts().items()},
        "sha256": hashlib.sha256(body).hexdigest(),
        "batches": sorted(set(new["batch"])),
        "outcome_files": sorted({f for files in new["files"] for f in files}),
        "added_ids": new[ID_COLUMN].tolist(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # The manifest last: a version folder without one is incomplete (a killed run) and is
    # written again by the next; current.json moves only to a complete version.
    storage.write_json(manifest, folder / "manifest.json")
    record = _make_current(layout, folder, manifest)
    logger.info("training data %s: %d rows (%d confirmed cases added), %s", version, len(data), len(new),
                record["data_path"])
    return record


def _make_current(layout: ResultsPaths, folder: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    """Point ``current.json`` at the complete version in ``folder``; its record."""
    record = {"version": manifest["version"], "data_path": str(folder / "data.csv"), "sha256": manifest["sha256"],
              "rows": manifest["rows"], "added": manifest["added"]}
    storage.write_json(record, layout.datasets / CURRENT)
    return record


