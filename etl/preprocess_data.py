"""Split the validated data into stratified train and test sets, impute and scale the features.

The split (``[split] method``) is by default a *hash split*: a row is a test row when the
SHA-256 of the salt and its id is among the lowest of its class (the test share of each class).
It does not depend on ``random_state``, so runs with other seeds hold out the same patients,
and runs on grown data nearly all of them (a new row with a low hash takes the place of the
old row at its class's cut, which then trains), and the quality gate compares a new model with the published one on
rows neither trained on. ``method = "random"`` keeps scikit-learn's seeded stratified split.

The preprocessing (a median ``SimpleImputer`` for the few missing values ``load_data`` lets
through, then a ``StandardScaler``) is fitted on the training split only, so no information
from the test split leaks into training, and saved as ``scaler.pkl``, so prediction applies
exactly the same transformation.
"""

from __future__ import annotations

import hashlib
import logging
import math

import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from etl import runner, storage
from etl.catalog import DataValidationError, ParameterError
from etl.data.schema import FEATURE_COLUMNS, ID_COLUMN, TARGET_COLUMN
from etl.modeling.procedure import make_preprocessor
from etl.runner import Outputs, Run, Step

logger = logging.getLogger(__name__)


#: How a split may be drawn (``[split] method``).
SPLIT_METHODS = ("hash", "random")


def hash_split(df: pd.DataFrame, test_size: float, salt: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified split by a hash of each row's id: per class, the rows whose SHA-256 of
    ``salt`` and id is lowest are the test rows (``ceil(test_size * rows)`` in all, shared out
    between the classes by their size, largest remainder first). Both parts keep ``df``'s order.
    """
    keys = df[ID_COLUMN].astype(str).map(lambda i: hashlib.sha256(f"{salt}\0{i}".encode()).hexdigest())
    counts = df[TARGET_COLUMN].value_counts().sort_index()
    n_test = math.ceil(test_size * len(df) - 1e-9)
    exact = counts * n_test / len(df)
    quota = exact.apply(math.floor)
    for label in (exact - quota).sort_values(ascending=False, kind="stable").index[: n_test - int(quota.sum())]:
        quota[label] += 1
    if ((quota < 1) | (counts - quota < 1)).any():
        raise DataValidationError(
            f"cannot split {len(df)} rows with test_size={test_size}: each class needs a row on both sides "
            f"({', '.join(f'{k}: {v}' for k, v in counts.items())})")
    test_rows = set()
    for label, n in quota.items():
        test_rows |= set(keys[df[TARGET_COLUMN] == label].sort_values(kind="stable").index[:n])
    is_test = df.index.isin(list(test_rows))
    return df[~is_test], df[is_test]


def split_and_scale(
    df: pd.DataFrame, test_size: float, random_state: int, method: str, salt: str
) -> tuple[pd.DataFrame, pd.DataFrame, Pipeline]:
    """Stratified split of ``df``, then impute and scale with statistics of the train split.

    Args:
        df: validated data (``etl.load_data.validate``).
        test_size: share of rows held out, strictly between 0 and 1.
        random_state: seed of a ``random`` split.
        method: ``hash`` (``hash_split`` with ``salt``) or ``random``.

    Returns:
        ``(train, test, preprocessor)``: both frames keep every column, features imputed and
        scaled.
    """
    if not 0.0 < test_size < 1.0:
        raise ParameterError(f"test_size must be strictly between 0 and 1, got {test_size}")
    if method not in SPLIT_METHODS:
        raise ParameterError(f"split method {method!r} is not one of {', '.join(SPLIT_METHODS)}")
    if method == "hash":
        return fit_and_scale(*hash_split(df, test_size, salt))
    try:
        train, test = train_test_split(
            df, test_size=test_size, random_state=random_state, stratify=df[TARGET_COLUMN]
        )
    except ValueError as exc:  # too few rows for this test_size and stratification
        raise DataValidationError(
            f"cannot split {len(df)} rows with test_size={test_size}: {exc}"
        ) from None
    return fit_and_scale(train, test)


def fit_and_scale(train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, Pipeline]:
    """Fit the preprocessing on ``train`` only and apply it to both (every column kept, index
    reset). ``split_and_scale`` and each fold of the nested cross-validation use this."""
    features = list(FEATURE_COLUMNS)
    preprocessor = make_preprocessor().fit(train[features])
    train, test = train.copy(), test.copy()
    for part in (train, test):
        part[features] = preprocessor.transform(part[features])
    return train.reset_index(drop=True), test.reset_index(drop=True), preprocessor


def _missing(df: pd.DataFrame) -> dict[str, int]:
    return {c: int(n) for c, n in df[list(FEATURE_COLUMNS)].isna().sum().items() if n}


def preprocess_data(
    data_path: storage.Location,
    train_path: storage.Location,
    test_path: storage.Location,
    scaler_path: storage.Location,
    summary_path: storage.Location,
    test_size: float,
    random_state: int,
    method: str,
    salt: str,
) -> dict[str, str]:
    """Read validated data, split, impute and scale it; write both splits, the fitted
    preprocessing and a summary (split sizes, values imputed per column).

    Returns:
        ``{"train": ..., "test": ..., "scaler": ..., "preprocessing": ...}`` paths.
    """
    data = storage.read_frame(data_path)
    train, test, scaler = split_and_scale(data, test_size, random_state, method, salt)
    by_id = data.set_index("id")
    imputed = {"train": _missing(by_id.loc[train["id"]]), "test": _missing(by_id.loc[test["id"]])}
    n_imputed = sum(sum(part.values()) for part in imputed.values())
    logger.info(
        "%s split of %d rows: %d train, %d test (test_size=%s%s); imputer and scaler "
        "fitted on train; %d missing value(s) imputed with train medians", method,
        len(data), len(train), len(test), test_size,
        f", salt {salt!r}" if method == "hash" else f", random_state={random_state}", n_imputed,
    )
    storage.write_frame(train, train_path)
    storage.write_frame(test, test_path)
    storage.dump_object(scaler, scaler_path)
    storage.write_json(
        {
            "rows": {"train": len(train), "test": len(test)},
            "test_size": test_size,
            "random_state": random_state,
            "split": {"method": method, **({"salt": salt} if method == "hash" else {"random_state": random_state})},
            "imputed_values": imputed,
            "imputed_total": n_imputed,
            "train_medians": dict(zip(FEATURE_COLUMNS, map(float, scaler["impute"].statistics_), strict=True)),
        },
        summary_path,
    )
    return {"train": str(train_path), "test": str(test_path), "scaler": str(scaler_path),
            "preprocessing": str(summary_path)}


def _preprocess_data(run: Run) -> Outputs:
    """``preprocess_data`` on the run's table with ``[split]`` and the run's seed."""
    f, split = run.folder, run.settings.split
    return preprocess_data(run.input("preprocess_data", "data"), f.train, f.test, f.scaler, f.preprocessing,
                           split.test_size, run.random_state, split.method, split.salt)


STEPS = runner.steps(Step("preprocess_data", _preprocess_data))
main = runner.entry_point(STEPS, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
