"""Score the trained model on the held-out test split and write ``metrics.json``."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
from sklearn import metrics as skm

from etl import cli, storage
from etl.schema import LABEL_CODES, MALIGNANT
from etl.train_model import features_and_labels

logger = logging.getLogger(__name__)


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray) -> dict[str, Any]:
    """Classification metrics with malignant (1) as the positive class.

    Args:
        y_true: true labels, 1 = malignant.
        y_pred: predicted labels.
        y_score: predicted probability of malignancy.

    Returns:
        ``accuracy``, ``precision``, ``recall`` (sensitivity), ``f1``, ``specificity``,
        ``roc_auc``, the confusion matrix counts and the number of test rows.
    """
    tn, fp, fn, tp = skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(skm.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, zero_division=0)),
        "specificity": float(tn / (tn + fp)) if tn + fp else 0.0,
        "roc_auc": float(skm.roc_auc_score(y_true, y_score)),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "n_test": int(len(y_true)),
        "positive_class": MALIGNANT,
    }


def evaluate_model(
    model_path: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str],
) -> dict[str, str]:
    """Score ``model_path`` on ``test_path`` and write the metrics as JSON.

    Returns:
        ``{"metrics": metrics_path}``
    """
    model = storage.load_object(model_path)
    X, y = features_and_labels(storage.read_frame(test_path))
    malignant = list(model.classes_).index(LABEL_CODES[MALIGNANT])
    result = compute_metrics(y, model.predict(X), model.predict_proba(X)[:, malignant])
    logger.info(
        "test split (%d rows): accuracy %.4f, precision %.4f, recall %.4f, f1 %.4f, roc_auc %.4f",
        result["n_test"], result["accuracy"], result["precision"], result["recall"],
        result["f1"], result["roc_auc"],
    )
    storage.write_json(result, metrics_path)
    return {"metrics": str(metrics_path)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, _, run = cli.parser(__doc__)
    p.add_argument("--model", type=cli.path_arg, default=run.model, help="model (train_model)")
    p.add_argument("--test", type=cli.path_arg, default=run.test, help="test split")
    p.add_argument("--metrics", type=cli.path_arg, default=run.metrics, help="JSON to write")
    return cli.run(p, lambda a: evaluate_model(a.model, a.test, a.metrics), argv)


if __name__ == "__main__":
    raise SystemExit(main())
