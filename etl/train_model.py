"""Fit a logistic regression on the scaled training split.

Malignant is the positive class (label 1), so the model's probability is the probability of
malignancy.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from etl import cli, storage
from etl.errors import ParameterError
from etl.schema import FEATURE_COLUMNS, LABEL_CODES, TARGET_COLUMN

logger = logging.getLogger(__name__)


def features_and_labels(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Split a preprocessed frame into the feature matrix and 0/1 labels (1 = malignant)."""
    return df[list(FEATURE_COLUMNS)], df[TARGET_COLUMN].map(LABEL_CODES).to_numpy(dtype=int)


def fit_model(
    X: pd.DataFrame, y: np.ndarray, C: float, max_iter: int, random_state: int
) -> LogisticRegression:
    """Fit a logistic regression.

    Args:
        X: scaled features.
        y: labels, 1 = malignant.
        C: inverse regularisation strength, > 0.
        max_iter: solver iterations, >= 1.
        random_state: seed (used by solvers that shuffle).
    """
    if not C > 0:
        raise ParameterError(f"C must be > 0, got {C}")
    if max_iter < 1:
        raise ParameterError(f"max_iter must be >= 1, got {max_iter}")
    return LogisticRegression(C=C, max_iter=max_iter, random_state=random_state).fit(X, y)


def train_model(
    train_path: storage.Location,
    model_path: storage.Location,
    training_path: storage.Location,
    C: float,
    max_iter: int,
    random_state: int,
) -> dict[str, str]:
    """Read the training split, fit the model and save it with joblib (plus its checksum), and
    a record of the estimator, its parameters and the training data.

    Returns:
        ``{"model": model_path, "training": training_path}``
    """
    X, y = features_and_labels(storage.read_frame(train_path, "preprocess_data"))
    model = fit_model(X, y, C=C, max_iter=max_iter, random_state=random_state)
    accuracy = float(model.score(X, y))
    logger.info(
        "fitted LogisticRegression(C=%s, max_iter=%s) on %d rows; training accuracy %.4f",
        C, max_iter, len(y), accuracy,
    )
    storage.dump_object(model, model_path)
    storage.write_json(
        {
            "estimator": type(model).__name__,
            "params": {"C": C, "max_iter": max_iter, "random_state": random_state},
            "rows": len(y),
            "malignant_rows": int(y.sum()),
            "train_sha256": storage.sha256(train_path),
            "training_accuracy": accuracy,
            "iterations": int(model.n_iter_.max()),
        },
        training_path,
    )
    return {"model": str(model_path), "training": str(training_path)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, settings, run = cli.parser(__doc__)
    p.add_argument("--train", type=cli.path_arg, default=run.train, help="train split")
    p.add_argument("--model", type=cli.path_arg, default=run.model, help="model file to write")
    p.add_argument("--training", type=cli.path_arg, default=run.training,
                   help="training record JSON to write")
    p.add_argument("--C", dest="C", type=float, default=settings.C)
    p.add_argument("--max-iter", type=int, default=settings.max_iter)
    p.add_argument("--random-state", type=int, default=settings.random_state)
    return cli.run(
        p, lambda a: train_model(a.train, a.model, a.training, a.C, a.max_iter, a.random_state), argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
