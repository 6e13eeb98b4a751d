"""The floor of the benchmark: the pipeline's modelling work in one plain process.

Read the CSV; stratified split; the selection's cross-validation (the imputer, scaler and logistic
regression refitted in every fold, ``--cv-folds`` x ``--cv-repeats``, as the pipeline's leak-free
CV); the final fit on the scaled training split; score the test split; and, with
``--outer-folds``, the nested cross-validation: the same CV and final fit on all rows but each
outer fold, scored on that fold (``--outer-repeats`` times). Dump model and scaler with joblib.
No validation, no checks, no files between steps, no orchestration. ``bench/run.py`` passes the
numbers of the benchmark's settings (``bench/bench.toml``), so the two do the same work.

Usage: python bench/bare.py DATA.csv OUTPUT_DIR [--cv-folds 2] [--cv-repeats 1] [--outer-folds 0]
       [--outer-repeats 1]
Prints one JSON line: ``{"seconds": in-process time, "roc_auc": ..., "rows": ..., "fits": ...}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

started = time.perf_counter()

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def _pipeline() -> Pipeline:
    return Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler()),
                     ("model", LogisticRegression(C=1.0, max_iter=1000))])


def cross_validate(X: np.ndarray, y: np.ndarray, folds: int, repeats: int) -> np.ndarray:
    """Out-of-fold probabilities, the preprocessing refitted in every fold; averaged over repeats."""
    oof = np.zeros((repeats, len(y)))
    for r in range(repeats):
        for fit, held in StratifiedKFold(folds, shuffle=True, random_state=42 + r).split(X, y):
            oof[r, held] = _pipeline().fit(X[fit], y[fit]).predict_proba(X[held])[:, 1]
    return oof.mean(axis=0)


def procedure(X: np.ndarray, y: np.ndarray, folds: int, repeats: int) -> tuple[Pipeline, LogisticRegression]:
    """The training procedure: its cross-validation, then the final fit on all of ``X``."""
    cross_validate(X, y, folds, repeats)
    scaler = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    return scaler, LogisticRegression(C=1.0, max_iter=1000).fit(scaler.fit_transform(X), y)


def main(data: str, out: str, cv_folds: int, cv_repeats: int, outer_folds: int, outer_repeats: int) -> dict:
    df = pd.read_csv(data)
    y = (df["diagnosis"] == "M").astype(int).to_numpy()
    X = df.drop(columns=["id", "diagnosis"]).to_numpy(dtype=float)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42, stratify=y)
    scaler, model = procedure(X_train, y_train, cv_folds, cv_repeats)
    auc = roc_auc_score(y_test, model.predict_proba(scaler.transform(X_test))[:, 1])
    nested = []
    for r in range(outer_repeats if outer_folds else 0):
        for rest, held in StratifiedKFold(outer_folds, shuffle=True, random_state=42 + r).split(X, y):
            s, m = procedure(X[rest], y[rest], cv_folds, cv_repeats)
            nested.append(roc_auc_score(y[held], m.predict_proba(s.transform(X[held]))[:, 1]))
    Path(out).mkdir(parents=True, exist_ok=True)
    joblib.dump(model, Path(out) / "model.pkl")
    joblib.dump(scaler, Path(out) / "scaler.pkl")
    fits = (1 + len(nested)) * (cv_folds * cv_repeats + 1)
    return {"rows": len(df), "roc_auc": float(auc), "nested_roc_auc": float(np.mean(nested)) if nested else None,
            "fits": fits}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--cv-folds", type=int, default=2)
    p.add_argument("--cv-repeats", type=int, default=1)
    p.add_argument("--outer-folds", type=int, default=0)
    p.add_argument("--outer-repeats", type=int, default=1)
    a = p.parse_args()
    result = main(a.data, a.out, a.cv_folds, a.cv_repeats, a.outer_folds, a.outer_repeats)
    print(json.dumps({"seconds": time.perf_counter() - started, **result}))
