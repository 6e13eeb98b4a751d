import shutil

import numpy as np
import pandas as pd
import pytest

from etl import storage
from etl.config import RunPaths
from etl.errors import IntegrityError
from etl.evaluate_model import compute_metrics, evaluate_model


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


def test_evaluate_model_writes_metrics_and_predictions(evaluated_runs, tmp_path):
    run = RunPaths(tmp_path / "run")
    shutil.copytree(evaluated_runs["new"], run.root)
    out = evaluate_model(run.model, run.test, tmp_path / "m.json", tmp_path / "p.csv")
    assert out == {"metrics": str(tmp_path / "m.json"), "predictions": str(tmp_path / "p.csv")}
    metrics = storage.read_json(out["metrics"])
    assert metrics["n_test"] == 15
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert 0.8 <= metrics[key] <= 1.0, key
    cm = metrics["confusion_matrix"]
    assert cm["tp"] + cm["fn"] == 5 and cm["tn"] + cm["fp"] == 10

    predictions = pd.read_csv(out["predictions"])
    test = pd.read_csv(run.test)
    assert list(predictions.columns) == ["id", "diagnosis", "malignant_probability", "predicted"]
    assert list(predictions["id"]) == list(test["id"]) and list(predictions["diagnosis"]) == list(test["diagnosis"])
    assert ((predictions["malignant_probability"] >= 0.5) == (predictions["predicted"] == "M")).all()
    assert (predictions["predicted"] == predictions["diagnosis"]).mean() == metrics["accuracy"]
    # the same inputs give the same bytes
    assert (tmp_path / "m.json").read_bytes() == (evaluated_runs["new"] / "metrics.json").read_bytes()
    assert (tmp_path / "p.csv").read_bytes() == (evaluated_runs["new"] / "predictions.csv").read_bytes()


def test_a_changed_model_is_refused(evaluated_runs, tmp_path):
    run = RunPaths(tmp_path / "run")
    shutil.copytree(evaluated_runs["new"], run.root)
    shutil.copy(evaluated_runs["old"] / "model.pkl", run.model)  # a different model, same name
    with pytest.raises(IntegrityError, match="model.pkl: SHA-256 .* does not match"):
        evaluate_model(run.model, run.test, run.metrics, run.predictions)
    assert run.metrics.read_bytes() == (evaluated_runs["new"] / "metrics.json").read_bytes()
