"""The input contract: which CSV shapes the pipeline accepts, and the one-line refusal of
anything else (used by ``load_data``, ``etl.predict`` and the scoring DAG).

Accepted: the widely shared CSV (header, ``id``, ``diagnosis``, 30 features, with or without a
trailing comma on every line), UCI's original ``wdbc.data`` (no header, columns in the
documented order), UTF-8 with or without BOM, LF or CRLF line ends, columns in any order, extra
columns (ignored and logged), and a few missing feature values (imputed later, in
``preprocess_data``, with statistics of the training split).

Refused, with one line naming the file, what is wrong and where: anything else (see
``DataValidationError`` messages below and the README's "Input data" section). Exact duplicate
rows are dropped with a warning; two different rows with the same id are refused.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from etl import storage
from etl.catalog import DataValidationError
from etl.data.schema import FEATURE_COLUMNS, ID_COLUMN, LABEL_CODES, TARGET_COLUMN

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = (ID_COLUMN, TARGET_COLUMN, *FEATURE_COLUMNS)
#: Bytes read to sniff the encoding, the header and the delimiter.
_SNIFF_BYTES = 64 * 1024
_OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


@dataclass(frozen=True)
class RawTable:
    """The input as read: text cells (or missing), the features already numbers when they all
    parsed as numbers, plus how it was read."""

    frame: pd.DataFrame
    header: bool

    def line(self, index: int) -> int:
        """1-based line number in the file of data row ``index`` (0-based)."""
        return index + (2 if self.header else 1)


def _sniff(path: storage.Location) -> str:
    """First line of the file as text; refuses empty, binary and non-UTF-8 files."""
    with storage.open_read(path) as fh:
        head = fh.read(_SNIFF_BYTES)
    if not head.strip():
        raise DataValidationError(f"{path}: empty file (expected a CSV with a header row)")
    if b"\x00" in head:
        raise DataValidationError(f"{path}: not a text file (binary content; expected a CSV)")
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            f"{path}: not UTF-8 text (byte offset {exc.start}: {head[exc.start:exc.start + 1]!r}); "
            "save the CSV as UTF-8"
        ) from None
    return text.lstrip().splitlines()[0] if text.strip() else ""


def _fields(line: str) -> list[str]:
    return [f.strip() for f in next(csv.reader([line]), [])]


def read_input(path: storage.Location) -> RawTable:
    """Read the input CSV, with or without a header row: the feature columns as numbers when
    they all parse, else (to report the bad value and its line) every cell as a string.

    A header is recognised by the required column names; a file without one must have the 32
    columns of UCI's ``wdbc.data`` in its documented order.
    """
    path = storage.require(path)
    first = _sniff(path)
    fields = _fields(first)
    header = any(f in REQUIRED_COLUMNS for f in fields)
    if len(fields) == 1:
        for delimiter, name in _OTHER_DELIMITERS.items():
            if delimiter in first:
                raise DataValidationError(
                    f"{path}: wrong delimiter: the first line is separated by {name}s "
                    "(expected commas)"
                )
    names = None
    if not header:
        # UCI's wdbc.data: no header, id, diagnosis, then the 30 features.
        if len([f for f in fields if f]) != len(REQUIRED_COLUMNS):
            raise DataValidationError(
                f"{path}: no header row and {len(fields)} columns on line 1 (expected a header "
                f"naming {ID_COLUMN!r}, {TARGET_COLUMN!r} and the 30 features, or the "
                f"{len(REQUIRED_COLUMNS)} columns of UCI's wdbc.data)"
            )
        names = list(REQUIRED_COLUMNS) + [f"extra_{i}" for i in range(len(fields) - 32)]
    def read(dtype: Any) -> pd.DataFrame:
        with storage.open_read(path) as fh:
            return pd.read_csv(
                fh,
                encoding="utf-8-sig",
                header=0 if header else None,
                names=names,
                dtype=dtype,
                skipinitialspace=True,
                keep_default_na=False,
                na_values=["", "NA", "N/A", "NaN", "nan", "?"],
            )

    try:
        _check_row_lengths(path, len(fields))
        try:  # fast path: the parser reads the features as numbers (most files)
            frame = read(defaultdict(lambda: str, dict.fromkeys(FEATURE_COLUMNS, "float64")))
        except ValueError:  # a value that is not a number: read text, to say where (validate)
            frame = read(str)
    except (pd.errors.ParserError, csv.Error) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise DataValidationError(f"{path}: not a well-formed CSV ({reason})") from None
    except UnicodeDecodeError as exc:
        raise DataValidationError(f"{path}: not UTF-8 text ({exc.reason}); save the CSV as UTF-8") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return RawTable(frame, header)


def _check_row_lengths(path: storage.Target, expected: int) -> None:
    """Refuse a row with more or fewer fields than the first line: a truncated or ragged row
    would otherwise be padded with missing values and imputed, or shifted into wrong columns."""
    with storage.open_read(path) as fh:
        reader = csv.reader(io.TextIOWrapper(fh, encoding="utf-8-sig", newline=""), skipinitialspace=True)
        for row in reader:
            if row and len(row) != expected:  # (blank lines are skipped, as the parser does)
                raise DataValidationError(
                    f"{path}: line {reader.line_num}: {len(row)} fields, expected {expected} like line 1 "
                    "(a truncated or ragged row)"
                )


def _numeric(out: pd.DataFrame, table: RawTable, fail: Any) -> None:
    """Convert the feature columns to float64 in place; refuse a non-numeric value."""
    for column in FEATURE_COLUMNS:
        values = pd.to_numeric(out[column], errors="coerce")
        bad = values.isna() & out[column].notna()
        if bad.any():
            index = int(bad.idxmax())
            raise fail(
                f"line {table.line(index)}, column {column!r}: "
                f"non-numeric value {out.at[index, column]!r} (expected a number)"
            )
        out[column] = values.astype("float64")


def _features_only(df: pd.DataFrame, table: RawTable, fail: Any) -> pd.DataFrame:
    """``id`` and the 30 features of rows to score, one output row per input row."""
    out = df[[ID_COLUMN, *FEATURE_COLUMNS]].copy()
    absent = out[ID_COLUMN].isna()
    if absent.any():
        raise fail(f"line {table.line(int(absent.idxmax()))}: no value in column {ID_COLUMN!r}")
    _numeric(out, table, fail)
    for column in FEATURE_COLUMNS:
        if out[column].isna().all():
            raise fail(f"column {column!r} has no values")
    return out


def validate(
    table: RawTable,
    source: str = "input",
    max_missing_share: float = 0.05,
    min_rows_per_class: int = 5,
    labelled: bool = True,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Check a table against the data contract.

    Args:
        table: the input as read by ``read_input``.
        source: file name used in messages.
        max_missing_share: largest share of missing values allowed in a feature column.
        min_rows_per_class: fewest rows of each diagnosis.
        labelled: training data (the default). ``False`` for rows to score (``etl.predict``):
            ``diagnosis`` is optional and ignored, every row is kept (duplicates too), and only
            a column with no value at all is refused (the rest is imputed).

    Returns:
        ``(data, notes)``: the data in canonical column order (features ``float64``, missing
        values left as NaN), and what was adjusted: ignored columns, dropped duplicates.

    Raises:
        DataValidationError: one line: the file, what is wrong, where, what was expected.
    """
    df = table.frame

    def fail(message: str) -> DataValidationError:
        return DataValidationError(f"{source}: {message}")

    required = REQUIRED_COLUMNS if labelled else (ID_COLUMN, *FEATURE_COLUMNS)
    missing = [c for c in required if c not in df.columns]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise fail(
            f"{len(missing)} required column(s) missing: {shown} "
            f"(expected {ID_COLUMN!r}, {TARGET_COLUMN!r} and the 30 WDBC feature columns)"
        )
    extra = [c for c in df.columns if c not in REQUIRED_COLUMNS]
    empty_extra = [c for c in extra if df[c].isna().all()]
    if df.empty:
        raise fail("header only, no data rows")
    if not labelled:
        return _features_only(df, table, fail), {"header": table.header, "rows_read": len(df)}

    out = df[list(REQUIRED_COLUMNS)].copy()
    for column in (ID_COLUMN, TARGET_COLUMN):
        absent = out[column].isna()
        if absent.any():
            raise fail(f"line {table.line(int(absent.idxmax()))}: no value in column {column!r}")

    labels = out[TARGET_COLUMN].str.strip()
    bad = ~labels.isin(list(LABEL_CODES))
    if bad.any():
        index = int(bad.idxmax())
        raise fail(
            f"line {table.line(index)}: diagnosis {out.at[index, TARGET_COLUMN]!r} "
            f"(expected {' or '.join(sorted(LABEL_CODES, reverse=True))})"
        )
    out[TARGET_COLUMN] = labels.astype(object)

    _numeric(out, table, fail)
    negative = (out[list(FEATURE_COLUMNS)] < 0).to_numpy()
    if negative.any():  # no feature can be negative (etl.data.scope): a data error, not a case
        row, col = map(int, np.argwhere(negative)[0])
        index, column = out.index[row], FEATURE_COLUMNS[col]
        raise fail(f"line {table.line(index)}, column {column!r}: negative value {out.at[index, column]:g} "
                   "(every feature is a size, a count or a ratio of them)")

    rows_read = len(out)
    duplicated = out.duplicated(keep="first")
    if duplicated.any():
        lines = [table.line(int(i)) for i in out.index[duplicated][:5]]
        logger.warning(
            "%s: dropped %d exact duplicate row(s), lines %s", source, int(duplicated.sum()),
            ", ".join(map(str, lines)) + (" ..." if duplicated.sum() > 5 else ""),
        )
        out = out[~duplicated]
    same_id = out[ID_COLUMN].str.strip().duplicated(keep=False)
    if same_id.any():
        first_id = out.loc[same_id, ID_COLUMN].iloc[0]
        lines = [table.line(int(i)) for i in out.index[out[ID_COLUMN] == first_id]]
        raise fail(
            f"id {first_id!r} is on lines {' and '.join(map(str, lines[:2]))} with different "
            "values (expected one row per id)"
        )

    for column in FEATURE_COLUMNS:
        n_missing = int(out[column].isna().sum())
        if n_missing == len(out):
            raise fail(f"column {column!r} has no values")
        if n_missing > max_missing_share * len(out):
            raise fail(
                f"column {column!r}: {n_missing} of {len(out)} values missing "
                f"({n_missing / len(out):.1%}; at most {max_missing_share:.1%} can be imputed)"
            )

    counts = out[TARGET_COLUMN].value_counts()
    if len(counts) == 1:
        raise fail(f"only one class present ({counts.index[0]!r}, {counts.iloc[0]} rows); "
                   "expected both M and B")
    for label in sorted(LABEL_CODES, reverse=True):
        if counts.get(label, 0) < min_rows_per_class:
            raise fail(
                f"too few rows to split and train: {counts.get(label, 0)} with diagnosis "
                f"{label!r} (need at least {min_rows_per_class} of each class)"
            )

    notes = {
        "header": table.header,
        "rows_read": rows_read,
        "duplicate_rows_dropped": int(duplicated.sum()),
        "ignored_columns": [c for c in extra if c not in empty_extra],
        "empty_columns_dropped": empty_extra,
    }
    if notes["ignored_columns"]:
        logger.info("%s: ignored extra column(s): %s", source, ", ".join(notes["ignored_columns"]))
    if empty_extra:
        logger.info("%s: dropped empty column(s) %s (trailing commas)", source, ", ".join(empty_extra))
    return out.reset_index(drop=True), notes


def read_rows(input_path: storage.Location) -> pd.DataFrame:
    """The rows of a CSV to score, checked against the contract (``diagnosis`` optional and
    ignored): what ``etl.predict`` and the scoring DAG read.

    Raises:
        DataValidationError: the file breaks the contract (one line).
    """
    rows, _ = validate(read_input(input_path), str(input_path), labelled=False)
    return rows


def profile(df: pd.DataFrame, notes: dict[str, Any], source: str) -> dict[str, Any]:
    """Structure analysis of validated data: shape, types, missing values, classes, statistics."""
    features = df[list(FEATURE_COLUMNS)]
    stats = features.describe().T[["mean", "std", "min", "50%", "max"]].rename(columns={"50%": "median"})
    return {
        "source": source,
        **notes,
        "rows": len(df),
        "columns": len(df.columns),
        "dtypes": {c: str(t) for c, t in df.dtypes.items()},
        "missing_values": {c: int(n) for c, n in features.isna().sum().items() if n},
        "missing_total": int(features.isna().sum().sum()),
        "class_balance": {k: int(v) for k, v in df[TARGET_COLUMN].value_counts().sort_index().items()},
        "features": {c: {k: float(v) for k, v in row.items()} for c, row in stats.iterrows()},
    }
