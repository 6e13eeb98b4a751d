"""The floor of the benchmark: the pipeline's modelling work in one plain process.

Read the CSV, stratified split, median-impute and scale, logistic regression with the same
out-of-fold fits as the pipeline's selection (``bench/bench.toml``: 2 folds) and the final fit,
score the test split, dump model and scaler with joblib. No validation, no checks, no files
between steps, no orchestration.

Usage: python bench/bare.py DATA.csv OUTPUT_DIR
Prints one JSON line: ``{"seconds": in-process time, "roc_auc": ..., "rows": ...}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

started = time.perf_counter()

import joblib  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def main(data: str, out: str) -> dict:
    df = pd.read_csv(data)
    y = (df["diagnosis"] == "M").astype(int).to_numpy()
    X = df.drop(columns=["id", "diagnosis"])
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42, stratify=y)
    scaler = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    X_train = scaler.fit_transform(X_train)
    X_test = scaler.transform(X_test)
    model = LogisticRegression(C=1.0, max_iter=1000)
    oof = cross_val_predict(model, X_train, y_train, cv=StratifiedKFold(2, shuffle=True, random_state=42),
                            method="predict_proba")[:, 1]
    model.fit(X_train, y_train)
    auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
    Path(out).mkdir(parents=True, exist_ok=True)
    joblib.dump(model, Path(out) / "model.pkl")
    joblib.dump(scaler, Path(out) / "scaler.pkl")
    return {"rows": len(df), "roc_auc": float(auc), "oof_roc_auc": float(roc_auc_score(y_train, oof))}


if __name__ == "__main__":
    result = main(*sys.argv[1:3])
    print(json.dumps({"seconds": time.perf_counter() - started, **result}))
