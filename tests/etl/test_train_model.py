from dataclasses import replace

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from etl import storage
from etl.catalog import ParameterError
from etl.load_data import RawTable, validate
from etl.modeling.procedure import features_and_labels
from etl.preprocess_data import split_and_scale
from etl.settings import load_settings
from etl.train_model import fit_model, select_model, train_candidate


@pytest.fixture
def train(small_csv) -> pd.DataFrame:
    return split_and_scale(validate(RawTable(pd.read_csv(small_csv, dtype=str), header=True))[0], 0.25, 0,
                           "random", "")[0]


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


@pytest.fixture
def split(small_csv, tmp_path):
    """A run folder of the small data set, preprocessed, and its settings."""
    from etl.load_data import load_data
    from etl.preprocess_data import preprocess_data
    from etl.storage.layout import RunPaths

    run = RunPaths(tmp_path / "run")
    load_data(small_csv, run.data, run.profile, **vars(load_settings().validation))
    preprocess_data(run.data, run.train, run.test, run.scaler, run.preprocessing, 0.25, 0, "hash", "s")
    return run


def test_every_candidate_trains_cross_validates_and_records(split):
    settings = load_settings()
    for name, params in settings.candidates.items():
        out = train_candidate(split.data, split.train, name, params, split.candidate(name), folds=3, repeats=2,
                              random_state=0)
        cv = storage.read_json(out["cv"])
        assert (cv["candidate"], cv["folds"], cv["repeats"], cv["rows"]) == (name, 3, 2, 45)
        assert len(cv["scores"]) == 6 and set(cv["summary"]) == {"roc_auc", "pr_auc", "brier"}
        model = storage.load_object(out["candidate_model"])  # checked against its checksum
        assert list(model.classes_) == [0, 1] and model.n_features_in_ == 30
        oof = pd.read_parquet(out["oof"])
        assert list(oof["id"]) == list(pd.read_parquet(split.train)["id"])
        for r in (0, 1):
            assert oof[f"p_{r}"].between(0, 1).all() and set(oof[f"fold_{r}"]) == {0, 1, 2}


def test_selection_and_threshold_never_see_the_test_split(split, tmp_path):
    """Selection reads only the candidates' training-split records: scrambling the test split
    changes nothing, and every out-of-fold row is a training row."""
    names = ["logistic_regression", "svm"]
    settings = load_settings()
    for name in names:
        train_candidate(split.data, split.train, name, settings.candidates[name], split.candidate(name), 3, 1, 0)
    dirs = {n: split.candidate(n) for n in names}
    how = replace(settings.selection, target_sensitivity=0.9)
    select_model(dirs, tmp_path / "m1.pkl", tmp_path / "t1.json", how)
    test = pd.read_parquet(split.test)
    test["diagnosis"] = test["diagnosis"].map({"M": "B", "B": "M"})  # every test label wrong
    test.iloc[:, 2:] = 0.0
    test.to_csv(split.test, index=False)
    select_model(dirs, tmp_path / "m2.pkl", tmp_path / "t2.json", how)
    assert (tmp_path / "t1.json").read_bytes() == (tmp_path / "t2.json").read_bytes()
    assert (tmp_path / "m1.pkl").read_bytes() == (tmp_path / "m2.pkl").read_bytes()
    train_ids = set(pd.read_parquet(split.train)["id"])
    for name in names:
        assert set(pd.read_parquet(split.candidate(name).oof)["id"]) == train_ids
    assert not train_ids & set(test["id"])
    record = storage.read_json(tmp_path / "t1.json")
    assert record["train_sha256"] == storage.sha256(split.train)
    assert record["selection"]["ranking"][0] == record["candidate"]
    assert record["threshold"]["sensitivity"] >= 1 - (record["threshold"]["allowed_misses"]
                                                       / record["threshold"]["malignant"]) - 1e-12


def test_a_bad_candidate_setting_is_one_clear_line(split):
    with pytest.raises(ParameterError, match=r"candidate random_forest: .*n_estimators"):
        train_candidate(split.data, split.train, "random_forest", {"n_estimators": 0}, split.candidate("rf"), 3, 1, 0)
    with pytest.raises(ParameterError, match="unknown candidate model 'xgboost'"):
        train_candidate(split.data, split.train, "xgboost", {}, split.candidate("x"), 3, 1, 0)
    with pytest.raises(ParameterError, match="C must be > 0"):
        train_candidate(split.data, split.train, "logistic_regression", {"C": 0, "max_iter": 10}, split.candidate("lr"), 3, 1, 0)
