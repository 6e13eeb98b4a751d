import pandas as pd
import pytest

from etl.errors import DataValidationError, MissingInputError
from etl.load_data import load_data, read_input, validate
from etl.schema import FEATURE_COLUMNS, ID_COLUMN, TARGET_COLUMN


@pytest.fixture
def frame(small_csv) -> pd.DataFrame:
    return pd.read_csv(small_csv)


def test_validate_returns_the_canonical_columns(frame):
    shuffled = frame[list(reversed(frame.columns))].assign(extra="x")
    out = validate(shuffled)
    assert list(out.columns) == [ID_COLUMN, TARGET_COLUMN, *FEATURE_COLUMNS]
    assert out[list(FEATURE_COLUMNS)].dtypes.eq("float64").all()
    assert len(out) == len(frame)


def test_load_data_writes_the_validated_copy(small_csv, tmp_path):
    out = load_data(small_csv, tmp_path / "run" / "data.csv")
    written = pd.read_csv(out["data"])
    assert len(written) == 60
    assert written[TARGET_COLUMN].value_counts().to_dict() == {"B": 39, "M": 21}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda df: df.drop(columns=["area_worst"]), r"missing: 'area_worst'"),
        (lambda df: df.drop(columns=[TARGET_COLUMN]), r"missing: 'diagnosis'"),
        (lambda df: df.astype({"radius_mean": object}).assign(**{"radius_mean": ["abc"] + [1.0] * 59}),
         r"column 'radius_mean', data row 1: non-numeric value 'abc'"),
        (lambda df: df.assign(texture_se=[None] * 3 + [1.0] * 57), r"'texture_se', data row 1: missing value"),
        (lambda df: df.assign(diagnosis=["X"] + list(df.diagnosis[1:])), r"data row 1: label 'X'"),
        (lambda df: df[df.diagnosis == "B"], r"0 row\(s\) with diagnosis 'M'"),
        (lambda df: df.head(0), r"no data rows"),
    ],
)
def test_validate_refuses_bad_data_with_one_line(frame, change, message):
    with pytest.raises(DataValidationError, match=message) as info:
        validate(change(frame), source="in.csv")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("in.csv: ")


def test_read_input_refuses_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataValidationError, match="empty file"):
        read_input(tmp_path / "empty.csv")
    with pytest.raises(MissingInputError):
        read_input(tmp_path / "absent.csv")
