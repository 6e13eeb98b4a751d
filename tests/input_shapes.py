"""Input files in every shape users bring, built from the 60-row fixture (tests/conftest.py).

``ACCEPTED``: shapes the pipeline must take, with the rows it should keep.
``REFUSED``: broken inputs, with the one-line message the user must see.
Shared by the etl tests (core and CLI) and the end-to-end DAG-run tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

Builder = Callable[[pd.DataFrame, Path], None]


def _csv(df: pd.DataFrame, path: Path, **kwargs) -> None:
    df.to_csv(path, index=False, **kwargs)


def _shared_trailing_comma(df, path):
    """The widely shared CSV: quoted header, a trailing comma on every line."""
    header = ",".join(f'"{c}"' for c in df.columns) + ","
    rows = [",".join(map(str, r)) + "," for r in df.itertuples(index=False)]
    path.write_text("\n".join([header, *rows]) + "\n")


def _uci_wdbc_data(df, path):
    """UCI's wdbc.data: no header, id, diagnosis, 30 features."""
    _csv(df, path, header=False)


def _bom_crlf(df, path):
    path.write_bytes(b"\xef\xbb\xbf" + df.to_csv(index=False).replace("\n", "\r\n").encode())


def _reordered_extra_columns(df, path):
    _csv(df[list(reversed(df.columns))].assign(hospital="north", batch=7), path)


def _few_missing(df, path):
    df = df.astype({"texture_se": object})
    df.loc[[3, 40], "texture_se"] = ""
    _csv(df, path)


def _exact_duplicates(df, path):
    _csv(pd.concat([df, df.iloc[[5, 50]]]), path)


#: name -> (builder, rows kept, values to impute)
ACCEPTED: dict[str, tuple[Builder, int, int]] = {
    "shared_trailing_comma": (_shared_trailing_comma, 60, 0),
    "uci_wdbc_data": (_uci_wdbc_data, 60, 0),
    "bom_crlf": (_bom_crlf, 60, 0),
    "reordered_extra_columns": (_reordered_extra_columns, 60, 0),
    "few_missing": (_few_missing, 60, 2),
    "exact_duplicates": (_exact_duplicates, 60, 0),
}


def _set(column, rows, value):
    def build(df, path):
        df = df.astype({column: object})
        df.loc[rows, column] = value
        _csv(df, path)

    return build


def _edit_line(number: int, edit: Callable[[str], str]):
    """The CSV with line ``number`` (1 = the header) changed by ``edit``."""
    def build(df, path):
        lines = df.to_csv(index=False).splitlines()
        lines[number - 1] = edit(lines[number - 1])
        path.write_text("\n".join(lines) + "\n")

    return build


#: name -> (builder, message the user sees after "<file>: ")
REFUSED: dict[str, tuple[Builder, str]] = {
    "empty_file": (lambda df, p: p.write_text(""), "empty file (expected a CSV with a header row)"),
    "header_only": (lambda df, p: _csv(df.head(0), p), "header only, no data rows"),
    "missing_column": (
        lambda df, p: _csv(df.drop(columns=["area_worst"]), p),
        "1 required column(s) missing: 'area_worst' (expected 'id', 'diagnosis' and the 30 WDBC feature columns)",
    ),
    "non_numeric": (
        _set("radius_mean", [0], "abc"),
        "line 2, column 'radius_mean': non-numeric value 'abc' (expected a number)",
    ),
    "bad_label": (_set("diagnosis", [2], "X"), "line 4: diagnosis 'X' (expected M or B)"),
    "no_header_wrong_column_count": (
        lambda df, p: _csv(df.drop(columns=["area_worst"]), p, header=False),
        "no header row and 31 columns on line 1 (expected a header naming 'id', 'diagnosis' and "
        "the 30 features, or the 32 columns of UCI's wdbc.data)",
    ),
    "truncated_row": (
        _edit_line(8, lambda line: ",".join(line.split(",")[:10])),
        "line 8: 10 fields, expected 32 like line 1 (a truncated or ragged row)",
    ),
    "row_with_extra_fields": (
        _edit_line(6, lambda line: line + ",1.0,2.0"),
        "line 6: 34 fields, expected 32 like line 1 (a truncated or ragged row)",
    ),
    "empty_id": (_set("id", [3], ""), "line 5: no value in column 'id'"),
    "empty_diagnosis": (_set("diagnosis", [4], ""), "line 6: no value in column 'diagnosis'"),
    "one_class": (
        lambda df, p: _csv(df[df.diagnosis == "B"], p),
        "only one class present ('B', 39 rows); expected both M and B",
    ),
    "column_all_missing": (_set("texture_se", slice(None), ""), "column 'texture_se' has no values"),
    "too_many_missing": (
        _set("texture_se", list(range(10)), ""),
        "column 'texture_se': 10 of 60 values missing (16.7%; at most 5.0% can be imputed)",
    ),
    "wrong_delimiter": (
        lambda df, p: _csv(df, p, sep=";"),
        "wrong delimiter: the first line is separated by semicolons (expected commas)",
    ),
    "not_text": (
        lambda df, p: p.write_bytes(b"PK\x03\x04\x14\x00\x00\x00" + bytes(range(256)) * 4),
        "not a text file (binary content; expected a CSV)",
    ),
    "not_utf8": (
        lambda df, p: p.write_bytes(df.to_csv(index=False).replace("radius", "radiùs", 1).encode("latin-1")),
        "not UTF-8 text (byte offset 17: b'\\xf9'); save the CSV as UTF-8",
    ),
    "too_few_rows": (
        lambda df, p: _csv(pd.concat([df[df.diagnosis == "M"].head(3), df[df.diagnosis == "B"].head(10)]), p),
        "too few rows to split and train: 3 with diagnosis 'M' (need at least 5 of each class)",
    ),
    "duplicate_id": (
        lambda df, p: _csv(pd.concat([df, df.iloc[[4]].assign(radius_mean=99.0)]), p),
        "id '5' is on lines 6 and 62 with different values (expected one row per id)",
    ),
}


def build(table: dict, name: str, df: pd.DataFrame, folder: Path) -> Path:
    """Write input ``name`` of ``table`` (``ACCEPTED`` or ``REFUSED``) into ``folder``."""
    path = folder / f"{name}.csv"
    table[name][0](df, path)
    return path
