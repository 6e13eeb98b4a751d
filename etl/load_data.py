"""Load the input CSV, check it against the data contract and write a validated copy.

The validated copy has exactly the columns ``id``, ``diagnosis`` (``M``/``B``) and the 30
features of ``etl.schema.FEATURE_COLUMNS``, in that order; downstream steps read only it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from etl import cli, storage
from etl.errors import DataValidationError
from etl.schema import FEATURE_COLUMNS, ID_COLUMN, LABEL_CODES, TARGET_COLUMN

logger = logging.getLogger(__name__)

#: Fewest rows of each class: enough for a stratified split and a fitted model.
MIN_ROWS_PER_CLASS = 5


def validate(df: pd.DataFrame, source: str = "input") -> pd.DataFrame:
    """Check ``df`` against the data contract and return it in canonical column order.

    Args:
        df: the table as read from the CSV.
        source: name of the file, used in error messages.

    Raises:
        DataValidationError: with one line naming the file, the problem and where it is.
    """
    required = [ID_COLUMN, TARGET_COLUMN, *FEATURE_COLUMNS]
    missing = [c for c in required if c not in df.columns]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataValidationError(
            f"{source}: {len(missing)} required column(s) missing: {shown} "
            f"(expected {ID_COLUMN!r}, {TARGET_COLUMN!r} and the 30 WDBC feature columns)"
        )
    out = df[required].copy()
    if out.empty:
        raise DataValidationError(f"{source}: no data rows")

    for column in FEATURE_COLUMNS:
        values = pd.to_numeric(out[column], errors="coerce")
        bad = values.isna() & out[column].notna()
        if bad.any():
            row = bad.idxmax()
            raise DataValidationError(
                f"{source}: column {column!r}, data row {row + 1}: "
                f"non-numeric value {out.at[row, column]!r} (expected a number)"
            )
        if values.isna().any():
            row = values.isna().idxmax()
            raise DataValidationError(
                f"{source}: column {column!r}, data row {row + 1}: missing value"
            )
        out[column] = values.astype("float64")

    labels = out[TARGET_COLUMN].astype("string").str.strip()
    bad = ~labels.isin(list(LABEL_CODES))
    if bad.any():
        row = bad.idxmax()
        raise DataValidationError(
            f"{source}: column {TARGET_COLUMN!r}, data row {row + 1}: "
            f"label {out.at[row, TARGET_COLUMN]!r} (expected one of {sorted(LABEL_CODES)})"
        )
    out[TARGET_COLUMN] = labels.astype(object)

    counts = out[TARGET_COLUMN].value_counts()
    for label in LABEL_CODES:
        if counts.get(label, 0) < MIN_ROWS_PER_CLASS:
            raise DataValidationError(
                f"{source}: {counts.get(label, 0)} row(s) with diagnosis {label!r} "
                f"(need at least {MIN_ROWS_PER_CLASS} of each class to split and train)"
            )
    return out.reset_index(drop=True)


def read_input(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read the input CSV; an unreadable or empty file is a ``DataValidationError``."""
    path = storage.require(path)
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"{path}: empty file (expected a CSV with a header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise DataValidationError(f"{path}: not a readable CSV file ({reason})") from None


def load_data(data_path: str | os.PathLike[str], output_path: str | os.PathLike[str]) -> dict[str, str]:
    """Read and validate ``data_path``; write the validated table to ``output_path``.

    Returns:
        ``{"data": output_path}``
    """
    df = validate(read_input(data_path), source=str(data_path))
    counts = df[TARGET_COLUMN].value_counts()
    logger.info(
        "loaded %s: %d rows, %d features, %d malignant, %d benign",
        data_path, len(df), len(FEATURE_COLUMNS), counts.get("M", 0), counts.get("B", 0),
    )
    storage.write_frame(df, output_path)
    return {"data": str(output_path)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, settings, run = cli.parser(__doc__)
    p.add_argument("--data-path", type=cli.path_arg, default=settings.data_path, help="input CSV")
    p.add_argument("--output", type=cli.path_arg, default=run.data, help="validated CSV to write")
    return cli.run(p, lambda a: load_data(a.data_path, a.output), argv)


if __name__ == "__main__":
    raise SystemExit(main())
