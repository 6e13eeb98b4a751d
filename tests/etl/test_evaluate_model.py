import numpy as np
import pandas as pd
import pytest

from etl import storage
from etl.evaluate_model import compute_metrics, evaluate_model
from etl.load_data import RawTable, validate
from etl.preprocess_data import split_and_scale
from etl.train_model import features_and_labels, fit_model


def test_compute_metrics_treats_malignant_as_positive():
    y_true = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    y_pred = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    y_score = np.array([0.9, 0.8, 0.7, 0.4, 0.6, 0.3, 0.2, 0.1, 0.1, 0.05])
    m = compute_metrics(y_true, y_pred, y_score)
    assert m["confusion_matrix"] == {"tn": 5, "fp": 1, "fn": 1, "tp": 3}
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(5 / 6)
    assert m["f1"] == pytest.approx(0.75)
    assert m["roc_auc"] == pytest.approx(23 / 24)
    assert m["n_test"] == 10


def test_evaluate_model_writes_metrics(small_csv, tmp_path):
    train, test, _ = split_and_scale(validate(RawTable(pd.read_csv(small_csv, dtype=str), header=True))[0], 0.25, 0)
    storage.dump_object(fit_model(*features_and_labels(train), C=1.0, max_iter=1000, random_state=0),
                        tmp_path / "model.pkl")
    storage.write_frame(test, tmp_path / "test.csv")
    out = evaluate_model(tmp_path / "model.pkl", tmp_path / "test.csv", tmp_path / "metrics.json")
    metrics = storage.read_json(out["metrics"])
    assert metrics["n_test"] == 15
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert 0.8 <= metrics[key] <= 1.0, key
    cm = metrics["confusion_matrix"]
    assert cm["tp"] + cm["fn"] == 5 and cm["tn"] + cm["fp"] == 10
