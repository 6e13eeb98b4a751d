"""The shipped CSV is exactly what scripts/make_dataset.py derives from scikit-learn's copy."""

import csv
import importlib.util

import pandas as pd

from etl.data.schema import FEATURE_COLUMNS, ID_COLUMN, TARGET_COLUMN
from tests.conftest import PROJECT_ROOT


def _make_dataset():
    spec = importlib.util.spec_from_file_location("make_dataset", PROJECT_ROOT / "scripts" / "make_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_csv_is_reproducible(shipped_csv, tmp_path):
    out = tmp_path / "wdbc.csv"
    assert _make_dataset().main([str(out)]) == 0
    assert out.read_bytes() == shipped_csv.read_bytes()


def test_shipped_csv_has_the_widely_shared_layout(shipped_csv):
    with open(shipped_csv, newline="") as fh:
        header = next(csv.reader(fh))
    assert header == [ID_COLUMN, TARGET_COLUMN, *FEATURE_COLUMNS]
    assert header[9] == "concave points_mean"
    df = pd.read_csv(shipped_csv)
    assert len(df) == 569
    assert df[TARGET_COLUMN].value_counts().to_dict() == {"B": 357, "M": 212}
    assert df[ID_COLUMN].is_unique
    # First row of UCI's wdbc.data (id 842302): malignant, radius_mean 17.99, area_worst 2019.
    assert df.loc[0, [TARGET_COLUMN, "radius_mean", "area_worst"]].tolist() == ["M", 17.99, 2019.0]
