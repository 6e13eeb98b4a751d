"""Score the trained model on the held-out test split: ``metrics.json`` and ``predictions.csv``.

The model is loaded only after its SHA-256 matches the checksum ``train_model`` recorded.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from etl import cli, storage
from etl.schema import BENIGN, FEATURE_COLUMNS, ID_COLUMN, LABEL_CODES, MALIGNANT, TARGET_COLUMN
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


def predict_frame(model: Any, df: pd.DataFrame) -> pd.DataFrame:
    """One row per row of ``df`` (preprocessed): ``id``, malignant probability, predicted label."""
    X = df[list(FEATURE_COLUMNS)]
    malignant = list(model.classes_).index(LABEL_CODES[MALIGNANT])
    predicted = model.predict(X)
    return pd.DataFrame(
        {
            ID_COLUMN: df[ID_COLUMN].to_numpy(),
            "malignant_probability": model.predict_proba(X)[:, malignant],
            "predicted": np.where(predicted == LABEL_CODES[MALIGNANT], MALIGNANT, BENIGN),
        }
    )


def evaluate_model(
    model_path: storage.Location,
    test_path: storage.Location,
    metrics_path: storage.Location,
    predictions_path: storage.Location,
) -> dict[str, str]:
    """Score ``model_path`` (after checking its SHA-256) on ``test_path``; write the metrics as
    JSON and the test predictions as CSV (``id``, ``diagnosis``, ``malignant_probability``,
    ``predicted``).

    Returns:
        ``{"metrics": metrics_path, "predictions": predictions_path}``
    """
    model = storage.load_object(storage.require(model_path, "train_model"))
    test = storage.read_frame(test_path, "preprocess_data")
    _, y = features_and_labels(test)
    predictions = predict_frame(model, test)
    predictions.insert(1, TARGET_COLUMN, test[TARGET_COLUMN].to_numpy())
    result = compute_metrics(
        y,
        (predictions["predicted"] == MALIGNANT).to_numpy(dtype=int),
        predictions["malignant_probability"].to_numpy(),
    )
    logger.info(
        "test split (%d rows): accuracy %.4f, precision %.4f, recall %.4f, f1 %.4f, roc_auc %.4f",
        result["n_test"], result["accuracy"], result["precision"], result["recall"],
        result["f1"], result["roc_auc"],
    )
    storage.write_json(result, metrics_path)
    storage.write_frame(predictions, predictions_path)
    return {"metrics": str(metrics_path), "predictions": str(predictions_path)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, _, run = cli.parser(__doc__)
    p.add_argument("--model", type=cli.path_arg, default=run.model, help="model (train_model)")
    p.add_argument("--test", type=cli.path_arg, default=run.test, help="test split")
    p.add_argument("--metrics", type=cli.path_arg, default=run.metrics, help="JSON to write")
    p.add_argument("--predictions", type=cli.path_arg, default=run.predictions,
                   help="test predictions CSV to write")
    return cli.run(p, lambda a: evaluate_model(a.model, a.test, a.metrics, a.predictions), argv)


if __name__ == "__main__":
    raise SystemExit(main())
