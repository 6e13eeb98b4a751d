import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from etl import storage
from etl.errors import ParameterError
from etl.load_data import RawTable, validate
from etl.preprocess_data import split_and_scale
from etl.train_model import features_and_labels, fit_model, train_model


@pytest.fixture
def train(small_csv) -> pd.DataFrame:
    return split_and_scale(validate(RawTable(pd.read_csv(small_csv, dtype=str), header=True))[0], 0.25, 0)[0]


def test_labels_code_malignant_as_one(train):
    X, y = features_and_labels(train)
    assert X.shape == (45, 30)
    assert list(y) == [1 if d == "M" else 0 for d in train["diagnosis"]]


def test_fit_model_learns_the_training_data(train):
    X, y = features_and_labels(train)
    model = fit_model(X, y, C=1.0, max_iter=1000, random_state=0)
    assert isinstance(model, LogisticRegression)
    assert model.score(X, y) > 0.9
    weak = fit_model(X, y, C=1e-4, max_iter=1000, random_state=0)
    assert abs(weak.coef_).sum() < abs(model.coef_).sum()


@pytest.mark.parametrize(("C", "max_iter", "message"), [(0, 10, "C must be > 0"), (1, 0, "max_iter")])
def test_bad_parameters_are_refused(train, C, max_iter, message):
    X, y = features_and_labels(train)
    with pytest.raises(ParameterError, match=message):
        fit_model(X, y, C=C, max_iter=max_iter, random_state=0)


def test_train_model_saves_a_verified_model_and_its_record(train, tmp_path):
    storage.write_frame(train, tmp_path / "train.csv")
    out = train_model(tmp_path / "train.csv", tmp_path / "model.pkl", tmp_path / "training.json",
                      C=0.5, max_iter=100, random_state=0)
    model = storage.load_object(out["model"])  # checked against model.pkl.sha256
    assert list(model.classes_) == [0, 1] and model.C == 0.5
    record = storage.read_json(out["training"])
    assert record["estimator"] == "LogisticRegression"
    assert record["params"] == {"C": 0.5, "max_iter": 100, "random_state": 0}
    assert (record["rows"], record["malignant_rows"]) == (45, 16)
    assert record["train_sha256"] == storage.sha256(tmp_path / "train.csv")
