"""The candidate models, their repeated cross-validation and the choice of operating point.

Everything here sees the training split only: candidates are compared on out-of-fold scores of
repeated stratified k-fold cross-validation, and the decision threshold is chosen on the
winner's out-of-fold probabilities, so the test split stays untouched until ``evaluate_model``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.base import ClassifierMixin, clone
from sklearn.model_selection import RepeatedStratifiedKFold

from etl.errors import ParameterError

#: The candidates, in order of preference when their scores tie.
CANDIDATES = ("logistic_regression", "svm", "random_forest", "hist_gradient_boosting")
#: Scores of a fold; for ``brier`` lower is better.
CV_METRICS = ("roc_auc", "pr_auc", "brier")
LOWER_IS_BETTER = {"brier"}


def make_estimator(name: str, params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    """A fresh, unfitted scikit-learn classifier for candidate ``name`` with ``params``.

    Raises:
        ParameterError: an unknown candidate or a parameter the estimator does not accept.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    builders = {
        "logistic_regression": lambda: LogisticRegression(random_state=random_state, **params),
        # Platt scaling (sigmoid calibration on internal folds) gives the probabilities the
        # threshold needs; scikit-learn's replacement for SVC(probability=True).
        "svm": lambda: CalibratedClassifierCV(
            SVC(random_state=random_state, **params), method="sigmoid", ensemble=False
        ),
        "random_forest": lambda: RandomForestClassifier(random_state=random_state, n_jobs=1, **params),
        "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(random_state=random_state, **params),
    }
    if name not in builders:
        raise ParameterError(f"unknown candidate model {name!r} (known: {', '.join(CANDIDATES)})")
    try:
        estimator = builders[name]()
        for part in (estimator, getattr(estimator, "estimator", None)):
            if part is not None:
                part._validate_params()
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"candidate {name}: {str(exc).splitlines()[0]}") from None
    return estimator


def malignant_probability(model: ClassifierMixin, X: Any) -> np.ndarray:
    """The model's probability of class 1 (malignant)."""
    return model.predict_proba(X)[:, list(model.classes_).index(1)]


def fold_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Threshold-free scores of probabilities ``p`` for labels ``y`` (1 = malignant)."""
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)),
        "pr_auc": float(skm.average_precision_score(y, p)),
        "brier": float(skm.brier_score_loss(y, p)),
    }


def cross_validate(
    estimator: ClassifierMixin, X: Any, y: np.ndarray, folds: int, repeats: int, random_state: int
) -> tuple[list[dict[str, float]], np.ndarray]:
    """Repeated stratified k-fold cross-validation.

    Returns:
        ``(scores, oof)``: the scores of every fold, and each row's out-of-fold probability of
        malignancy, averaged over the repeats.
    """
    if folds < 2 or repeats < 1:
        raise ParameterError(f"cross-validation needs folds >= 2 and repeats >= 1, got {folds}, {repeats}")
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=random_state)
    X = np.asarray(X)
    oof = np.zeros((repeats, len(y)))
    scores = []
    for i, (fit_rows, held_out) in enumerate(splitter.split(X, y)):
        model = clone(estimator).fit(X[fit_rows], y[fit_rows])
        p = malignant_probability(model, X[held_out])
        oof[i // folds, held_out] = p
        scores.append(fold_scores(y[held_out], p))
    return scores, oof.mean(axis=0)


def summarize(scores: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of each score over the folds."""
    return {
        metric: {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
        for metric, values in ((m, [s[m] for s in scores]) for m in scores[0])
    }


def rank(summaries: Mapping[str, Mapping[str, Mapping[str, float]]], metric: str) -> list[str]:
    """Candidate names, best first, by the mean of ``metric`` (ties: ``CANDIDATES`` order)."""
    if metric not in CV_METRICS:
        raise ParameterError(f"selection metric {metric!r} is not one of {', '.join(CV_METRICS)}")
    sign = 1 if metric in LOWER_IS_BETTER else -1
    order = {name: i for i, name in enumerate(CANDIDATES)}
    return sorted(summaries, key=lambda n: (sign * summaries[n][metric]["mean"], order.get(n, len(order))))


def choose_threshold(y: np.ndarray, p: np.ndarray, target_sensitivity: float) -> dict[str, float]:
    """The highest threshold at which at least ``target_sensitivity`` of the malignant rows score
    at or above it: the target sensitivity with the best specificity these scores allow.

    Args:
        y: labels, 1 = malignant (the training split's, out of fold).
        p: probabilities of malignancy.
        target_sensitivity: in (0, 1].
    """
    if not 0 < target_sensitivity <= 1:
        raise ParameterError(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    positives = np.sort(p[y == 1])[::-1]
    needed = math.ceil(target_sensitivity * len(positives) - 1e-9)
    threshold = float(positives[needed - 1])
    predicted = p >= threshold
    return {
        "threshold": threshold,
        "target_sensitivity": target_sensitivity,
        "sensitivity": float(predicted[y == 1].mean()),
        "specificity": float((~predicted[y == 0]).mean()),
    }
