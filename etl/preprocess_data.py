"""Split the validated data into stratified train and test sets and scale the features.

The ``StandardScaler`` is fitted on the training split only (no information from the test
split leaks into training) and saved, so prediction can apply the same transformation.
"""

from __future__ import annotations

import logging
import os

import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from etl import cli, storage
from etl.errors import DataValidationError, ParameterError
from etl.schema import FEATURE_COLUMNS, TARGET_COLUMN

logger = logging.getLogger(__name__)


def split_and_scale(
    df: pd.DataFrame, test_size: float, random_state: int
) -> tuple[pd.DataFrame, pd.DataFrame, StandardScaler]:
    """Stratified split of ``df``, then scale its features with statistics of the train split.

    Args:
        df: validated data (``etl.load_data.validate``).
        test_size: share of rows held out, strictly between 0 and 1.
        random_state: seed of the split.

    Returns:
        ``(train, test, scaler)``: both frames keep every column, features scaled.
    """
    if not 0.0 < test_size < 1.0:
        raise ParameterError(f"test_size must be strictly between 0 and 1, got {test_size}")
    try:
        train, test = train_test_split(
            df, test_size=test_size, random_state=random_state, stratify=df[TARGET_COLUMN]
        )
    except ValueError as exc:  # too few rows for this test_size and stratification
        raise DataValidationError(
            f"cannot split {len(df)} rows with test_size={test_size}: {exc}"
        ) from None
    scaler = StandardScaler().fit(train[list(FEATURE_COLUMNS)])
    train, test = train.copy(), test.copy()
    for part in (train, test):
        part[list(FEATURE_COLUMNS)] = scaler.transform(part[list(FEATURE_COLUMNS)])
    return train.reset_index(drop=True), test.reset_index(drop=True), scaler


def preprocess_data(
    data_path: str | os.PathLike[str],
    train_path: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
    scaler_path: str | os.PathLike[str],
    test_size: float,
    random_state: int,
) -> dict[str, str]:
    """Read validated data, split and scale it, write both splits and the scaler.

    Returns:
        ``{"train": ..., "test": ..., "scaler": ...}`` paths.
    """
    train, test, scaler = split_and_scale(storage.read_frame(data_path), test_size, random_state)
    logger.info(
        "split %d rows: %d train, %d test (test_size=%s, random_state=%s); scaler fitted on train",
        len(train) + len(test), len(train), len(test), test_size, random_state,
    )
    storage.write_frame(train, train_path)
    storage.write_frame(test, test_path)
    storage.dump_object(scaler, scaler_path)
    return {"train": str(train_path), "test": str(test_path), "scaler": str(scaler_path)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, settings, run = cli.parser(__doc__)
    p.add_argument("--data", type=cli.path_arg, default=run.data, help="validated CSV (load_data)")
    p.add_argument("--train", type=cli.path_arg, default=run.train, help="train split to write")
    p.add_argument("--test", type=cli.path_arg, default=run.test, help="test split to write")
    p.add_argument("--scaler", type=cli.path_arg, default=run.scaler, help="scaler to write")
    p.add_argument("--test-size", type=float, default=settings.test_size)
    p.add_argument("--random-state", type=int, default=settings.random_state)
    return cli.run(
        p,
        lambda a: preprocess_data(a.data, a.train, a.test, a.scaler, a.test_size, a.random_state),
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
