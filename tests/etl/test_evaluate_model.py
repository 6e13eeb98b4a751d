import shutil

import numpy as np
import pandas as pd
import pytest

from etl import storage
from etl.catalog import IntegrityError
from etl.evaluate_model import compute_metrics, evaluate_model, fast_scores, ranking_metrics, threshold_metrics
from etl.storage.layout import RunPaths


def test_compute_metrics_treats_malignant_as_positive():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.4, 0.6, 0.3, 0.2, 0.1, 0.1, 0.05])
    m = compute_metrics(y, p, threshold=0.5, resamples=200, random_state=0)
    assert m["confusion_matrix"] == {"tn": 5, "fp": 1, "fn": 1, "tp": 3}
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"]) == pytest.approx((0.8, 0.75, 0.75, 0.75))
    assert m["specificity"] == pytest.approx(5 / 6)
    assert m["roc_auc"] == pytest.approx(23 / 24)
    assert m["n_test"] == 10 and m["threshold"] == 0.5
    low = compute_metrics(y, p, threshold=0.35, resamples=200, random_state=0)
    assert low["recall"] == 1.0 and low["at_0.5"]["recall"] == 0.75  # both operating points
    assert low["roc_auc"] == m["roc_auc"]  # threshold-free
    for metric, (lo, hi) in m["ci95"].items():
        assert lo <= hi, metric
    assert m["ci95"]["roc_auc"][0] <= m["roc_auc"] <= m["ci95"]["roc_auc"][1]


def test_fast_bootstrap_scores_equal_scikit_learns():
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(5, 150))
        y = rng.integers(0, 2, n)
        if y.min() == y.max():
            continue
        p = np.round(rng.random(n), int(rng.integers(1, 4)))  # with ties
        threshold = float(rng.random())
        expected = {**threshold_metrics(y, p, threshold), **ranking_metrics(y, p)}
        for metric, value in fast_scores(y, p, threshold).items():
            assert value == pytest.approx(expected[metric], abs=1e-12), metric
        # A bootstrap draw as weights (how often each row was drawn) = the rows repeated.
        rows = rng.integers(0, n, n)
        if y[rows].min() == y[rows].max():
            continue
        expected = {**threshold_metrics(y[rows], p[rows], threshold), **ranking_metrics(y[rows], p[rows])}
        for metric, value in fast_scores(y, p, threshold, np.bincount(rows, minlength=n)).items():
            assert value == pytest.approx(expected[metric], abs=1e-12), metric


def test_evaluate_model_writes_metrics_and_predictions(evaluated_runs, tmp_path):
    run = RunPaths(tmp_path / "run")
    shutil.copytree(evaluated_runs["new"], run.root)
    out = evaluate_model(run.model, run.test, run.training, tmp_path / "m.json", tmp_path / "p.csv", 200, 0)
    assert out == {"metrics": str(tmp_path / "m.json"), "predictions": str(tmp_path / "p.csv")}
    metrics = storage.read_json(out["metrics"])
    assert metrics["n_test"] == 15
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert 0.8 <= metrics[key] <= 1.0, key
    cm = metrics["confusion_matrix"]
    assert cm["tp"] + cm["fn"] == 5 and cm["tn"] + cm["fp"] == 10

    predictions = pd.read_csv(out["predictions"])
    test = pd.read_parquet(run.test)
    assert list(predictions.columns) == ["id", "diagnosis", "malignant_probability", "predicted", "call"]
    assert list(predictions["id"].astype(str)) == list(test["id"]) and list(predictions["diagnosis"]) == list(test["diagnosis"])
    threshold = storage.read_json(run.training)["threshold"]["threshold"]
    assert metrics["threshold"] == threshold
    assert ((predictions["malignant_probability"] >= threshold) == (predictions["predicted"] == "M")).all()
    shares = metrics["triage"]["test"]  # the three-way call, counted as metrics.json counts it
    assert ((predictions["call"] == "benign") == (predictions["predicted"] == "B")).all()
    assert (predictions["malignant_probability"] >= metrics["triage"]["malignant_from"]).equals(predictions["call"] == "malignant")
    for truth, label in (("malignant", "M"), ("benign", "B")):
        got = predictions.loc[predictions["diagnosis"] == label, "call"].value_counts()
        assert {c: int(got.get(c, 0)) for c in ("benign", "refer", "malignant")} == shares["counts"][truth]
    assert (predictions["predicted"] == predictions["diagnosis"]).mean() == metrics["accuracy"]
    # the same inputs give the same bytes
    assert (tmp_path / "m.json").read_bytes() == (evaluated_runs["new"] / "metrics.json").read_bytes()
    assert (tmp_path / "p.csv").read_bytes() == (evaluated_runs["new"] / "predictions.csv").read_bytes()


def test_a_changed_model_is_refused(evaluated_runs, tmp_path):
    run = RunPaths(tmp_path / "run")
    shutil.copytree(evaluated_runs["new"], run.root)
    shutil.copy(evaluated_runs["old"] / "model.skops", run.model)  # a different model, same name
    with pytest.raises(IntegrityError, match=r"model.skops: SHA-256 .* does not match"):
        evaluate_model(run.model, run.test, run.training, run.metrics, run.predictions, 50, 0)
    assert run.metrics.read_bytes() == (evaluated_runs["new"] / "metrics.json").read_bytes()
