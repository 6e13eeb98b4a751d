import numpy as np
import pandas as pd
import pytest

from etl import storage
from etl.catalog import DataValidationError, ParameterError
from etl.data.schema import FEATURE_COLUMNS, TARGET_COLUMN
from etl.load_data import RawTable, validate
from etl.preprocess_data import preprocess_data, split_and_scale


@pytest.fixture
def data(small_csv) -> pd.DataFrame:
    return validate(RawTable(pd.read_csv(small_csv, dtype=str), header=True))[0]


def test_split_is_stratified_and_seeded(data):
    train, test, _ = split_and_scale(data, test_size=0.25, random_state=7, method="random", salt="")
    assert (len(train), len(test)) == (45, 15)
    assert set(train["id"]).isdisjoint(test["id"])
    assert test[TARGET_COLUMN].value_counts().to_dict() == {"B": 10, "M": 5}
    again, _, _ = split_and_scale(data, test_size=0.25, random_state=7, method="random", salt="")
    pd.testing.assert_frame_equal(train, again)
    other, _, _ = split_and_scale(data, test_size=0.25, random_state=8, method="random", salt="")
    assert list(other["id"]) != list(train["id"])


def test_preprocessing_is_fitted_on_the_training_split_only(data):
    train, _test, preprocessor = split_and_scale(data, test_size=0.25, random_state=7, method="random", salt="")
    raw_train = data.set_index("id").loc[train["id"], list(FEATURE_COLUMNS)]
    scaler = preprocessor["scale"]
    np.testing.assert_allclose(scaler.mean_, raw_train.mean().to_numpy())
    np.testing.assert_allclose(train[list(FEATURE_COLUMNS)].mean(), 0, atol=1e-9)
    assert not np.allclose(scaler.mean_, data[list(FEATURE_COLUMNS)].mean().to_numpy())
    np.testing.assert_allclose(preprocessor["impute"].statistics_, raw_train.median().to_numpy())


def test_missing_values_are_imputed_with_training_medians(data):
    data = data.copy()
    test_ids = split_and_scale(data, test_size=0.25, random_state=7, method="random", salt="")[1]["id"]
    hole = test_ids.iloc[0]
    data.loc[data["id"] == hole, "texture_se"] = np.nan
    train, test, preprocessor = split_and_scale(data, test_size=0.25, random_state=7, method="random", salt="")
    assert not train.isna().any().any() and not test.isna().any().any()
    median = data.set_index("id").loc[train["id"], "texture_se"].median()
    scale = preprocessor["scale"]
    column = list(FEATURE_COLUMNS).index("texture_se")
    expected = (median - scale.mean_[column]) / scale.scale_[column]
    assert test.loc[test["id"] == hole, "texture_se"].item() == pytest.approx(expected)


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.1])
def test_test_size_out_of_range_is_refused(data, test_size):
    with pytest.raises(ParameterError, match="test_size"):
        split_and_scale(data, test_size=test_size, random_state=0, method="hash", salt="s")


def test_too_few_rows_for_the_split_is_refused(data):
    for method in ("hash", "random"):
        with pytest.raises(DataValidationError, match="cannot split 60 rows"):
            split_and_scale(data, test_size=0.01, random_state=0, method=method, salt="s")
    with pytest.raises(ParameterError, match="split method 'fold'"):
        split_and_scale(data, test_size=0.2, random_state=0, method="fold", salt="s")


def test_the_hash_split_is_stratified_and_the_same_for_every_seed_and_grown_data(data):
    train, test, _ = split_and_scale(data, test_size=0.25, random_state=7, method="hash", salt="s")
    assert (len(train), len(test)) == (45, 15)
    assert test[TARGET_COLUMN].value_counts().to_dict() == {"B": 10, "M": 5}
    other_seed = split_and_scale(data, test_size=0.25, random_state=8, method="hash", salt="s")[1]
    assert list(other_seed["id"]) == list(test["id"])
    assert set(split_and_scale(data, 0.25, 7, "hash", "other salt")[1]["id"]) != set(test["id"])
    grown = pd.concat([data, data.iloc[:12].assign(id=[f"new-{i}" for i in range(12)])], ignore_index=True)
    grown_test = split_and_scale(grown, test_size=0.25, random_state=7, method="hash", salt="s")[1]
    kept = set(test["id"]) & set(grown_test["id"])
    assert len(kept) >= len(test) - 3, (sorted(test["id"]), sorted(grown_test["id"]))


def test_preprocess_data_writes_splits_preprocessing_and_summary(data, tmp_path):
    data = data.copy()
    data.loc[[0, 1, 2], "area_se"] = np.nan
    storage.write_frame(data, tmp_path / "data.parquet")
    out = preprocess_data(
        tmp_path / "data.parquet", tmp_path / "train.parquet", tmp_path / "test.parquet",
        tmp_path / "scaler.pkl", tmp_path / "prep.json", test_size=0.2, random_state=42, method="hash", salt="s",
    )
    assert len(pd.read_parquet(out["train"])) == 48
    assert len(pd.read_parquet(out["test"])) == 12
    assert storage.load_object(out["scaler"]).n_features_in_ == 30
    summary = storage.read_json(out["preprocessing"])
    assert summary["rows"] == {"train": 48, "test": 12}
    assert summary["split"] == {"method": "hash", "salt": "s"}
    assert summary["imputed_total"] == 3
    imputed = summary["imputed_values"]
    assert imputed["train"].get("area_se", 0) + imputed["test"].get("area_se", 0) == 3
