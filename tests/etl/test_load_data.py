import json

import pandas as pd
import pytest

from etl.catalog import DataValidationError, MissingInputError, PipelineError
from etl.data.schema import FEATURE_COLUMNS, ID_COLUMN, TARGET_COLUMN
from etl.load_data import load_data, read_input, validate
from etl.settings import load_settings
from tests import input_shapes
from tests.conftest import run_main

#: The shipped [validation] rules, as load_data takes them.
RULES = vars(load_settings().validation)

CANONICAL = [ID_COLUMN, TARGET_COLUMN, *FEATURE_COLUMNS]


@pytest.fixture(scope="module")
def frame(small_csv) -> pd.DataFrame:
    return pd.read_csv(small_csv)


@pytest.mark.parametrize("shape", list(input_shapes.ACCEPTED))
def test_accepted_shapes_give_the_same_validated_table(shape, frame, small_csv, tmp_path):
    path = input_shapes.build(input_shapes.ACCEPTED, shape, frame, tmp_path)
    _, rows, missing = input_shapes.ACCEPTED[shape]
    out = load_data(path, tmp_path / "data.parquet", tmp_path / "profile.json", **RULES)
    data = pd.read_parquet(out["data"])
    assert list(data.columns) == CANONICAL
    assert len(data) == rows
    reference = pd.read_csv(small_csv, dtype={"id": "str"})[CANONICAL]  # ids stay text
    pd.testing.assert_frame_equal(data.drop(columns=["texture_se"]), reference.drop(columns=["texture_se"]))
    assert int(data["texture_se"].isna().sum()) == missing
    assert json.loads((tmp_path / "profile.json").read_text())["missing_total"] == missing


@pytest.mark.parametrize("shape", list(input_shapes.REFUSED))
def test_refused_inputs_raise_one_line(shape, frame, tmp_path):
    path = input_shapes.build(input_shapes.REFUSED, shape, frame, tmp_path)
    with pytest.raises(DataValidationError) as info:
        validate(read_input(path), source=str(path))
    assert str(info.value) == f"{path}: {input_shapes.REFUSED[shape][1]}"
    assert not (tmp_path / "data.parquet").exists()
    # A PipelineError: the task wrapper fails the task at once, without retry (etl.orchestration.tasks._step;
    # real runs of a refusal of each kind: tests/e2e/test_input_contract.py).
    assert isinstance(info.value, PipelineError)


@pytest.mark.parametrize("shape", ["shared_trailing_comma", "uci_wdbc_data", "few_missing"])
def test_cli_accepts(shape, frame, tmp_path, env, monkeypatch, capsys):
    path = input_shapes.build(input_shapes.ACCEPTED, shape, frame, tmp_path)
    status, out, err = run_main("etl.load_data", "--data-path", str(path), "--run-dir", str(tmp_path / "run"),
                                env=env, monkeypatch=monkeypatch, capsys=capsys)
    assert status == 0, err
    assert json.loads(out) == {"data": str(tmp_path / "run" / "data.parquet"),
                               "profile": str(tmp_path / "run" / "profile.json")}


@pytest.mark.parametrize("shape", list(input_shapes.REFUSED))
def test_cli_refuses_with_one_line_and_no_traceback(shape, frame, tmp_path, env, monkeypatch, capsys):
    path = input_shapes.build(input_shapes.REFUSED, shape, frame, tmp_path)
    status, out, err = run_main("etl.load_data", "--data-path", str(path), "--run-dir", str(tmp_path / "run"),
                                env=env, monkeypatch=monkeypatch, capsys=capsys)
    assert status == 1
    assert out == ""
    assert err.splitlines() == [f"error: {path}: {input_shapes.REFUSED[shape][1]}"]
    assert not (tmp_path / "run" / "data.parquet").exists()


def test_duplicates_extra_and_empty_columns_are_logged_and_recorded(frame, tmp_path, caplog):
    caplog.set_level("INFO")
    path = tmp_path / "in.csv"
    input_shapes._shared_trailing_comma(pd.concat([frame, frame.iloc[[7]]]).assign(site="a"), path)
    load_data(path, tmp_path / "data.parquet", tmp_path / "profile.json", **RULES)
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert profile["rows_read"] == 61 and profile["rows"] == 60
    assert profile["duplicate_rows_dropped"] == 1
    assert profile["ignored_columns"] == ["site"]
    assert profile["empty_columns_dropped"] == ["Unnamed: 33"]
    assert "dropped 1 exact duplicate row(s), lines 62" in caplog.text
    assert "ignored extra column(s): site" in caplog.text


def test_profile_describes_the_data(small_csv, tmp_path):
    load_data(small_csv, tmp_path / "data.parquet", tmp_path / "profile.json", **RULES)
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert (profile["rows"], profile["columns"]) == (60, 32)
    assert profile["class_balance"] == {"B": 39, "M": 21}
    assert profile["dtypes"]["radius_mean"] == "float64"
    assert profile["missing_values"] == {} and profile["missing_total"] == 0
    radius = pd.read_csv(small_csv)["radius_mean"]
    assert profile["features"]["radius_mean"]["max"] == radius.max()
    assert profile["features"]["radius_mean"]["mean"] == pytest.approx(radius.mean())


def test_limits_are_parameters(frame, tmp_path):
    """The inputs refused at the default limits are accepted when the limits allow them."""
    path = input_shapes.build(input_shapes.REFUSED, "too_many_missing", frame, tmp_path)
    load_data(path, tmp_path / "a.parquet", tmp_path / "a.json", **{**RULES, "max_missing_share": 0.2})
    assert json.loads((tmp_path / "a.json").read_text())["missing_values"] == {"texture_se": 10}
    assert pd.read_parquet(tmp_path / "a.parquet")["texture_se"].isna().sum() == 10  # imputed later, on train only
    path = input_shapes.build(input_shapes.REFUSED, "too_few_rows", frame, tmp_path)
    load_data(path, tmp_path / "b.parquet", tmp_path / "b.json", **{**RULES, "min_rows_per_class": 3})
    assert json.loads((tmp_path / "b.json").read_text())["class_balance"] == {"B": 10, "M": 3}
    with pytest.raises(DataValidationError, match="need at least 4 of each class"):
        load_data(path, tmp_path / "c.parquet", tmp_path / "c.json", **{**RULES, "min_rows_per_class": 4})


def test_missing_file(tmp_path):
    with pytest.raises(MissingInputError):
        read_input(tmp_path / "absent.csv")
