"""The candidate models, their repeated cross-validation and the choice of operating point.

Everything here sees the training split only: candidates are compared on out-of-fold scores of
repeated stratified k-fold cross-validation, and the decision threshold is chosen on the
winner's out-of-fold probabilities, so the test split stays untouched until ``evaluate_model``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.base import ClassifierMixin, clone
from sklearn.model_selection import RepeatedStratifiedKFold

from etl.errors import ParameterError

#: Scores of a fold; for ``brier`` lower is better.
CV_METRICS = ("roc_auc", "pr_auc", "brier")
LOWER_IS_BETTER = {"brier"}


@dataclass(frozen=True)
class Candidate:
    """One candidate model: how to build it, and how simple it is.

    Attributes:
        name: the key in ``[candidates]`` of ``pipeline.toml`` and the mapped task's label.
        title: the name shown in the report.
        complexity: 1 for the simplest; among candidates whose CV scores differ by noise, the
            selection takes the simplest (``select_candidate``).
        build: ``(params, random_state) -> unfitted scikit-learn classifier``.
        run_params: run parameters of the DAG (trigger form, ``--conf``, the steps' flags) that
            set this candidate's parameters of the same name, over ``pipeline.toml``'s.
        check: refuses parameter values the estimator would accept but that make no sense
            (scikit-learn's own validation runs after it).
    """

    name: str
    title: str
    complexity: int
    build: Callable[[Mapping[str, Any], int], ClassifierMixin]
    run_params: tuple[str, ...] = ()
    check: Callable[[Mapping[str, Any]], None] | None = None


def _check_logistic(params: Mapping[str, Any]) -> None:
    if "C" in params and not params["C"] > 0:
        raise ParameterError(f"C must be > 0, got {params['C']}")
    if "max_iter" in params and params["max_iter"] < 1:
        raise ParameterError(f"max_iter must be >= 1, got {params['max_iter']}")


def _logistic_regression(params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(random_state=random_state, **params)


def _svm(params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    # Platt scaling (sigmoid calibration on internal folds) gives the probabilities the
    # threshold needs; scikit-learn's replacement for SVC(probability=True).
    return CalibratedClassifierCV(SVC(random_state=random_state, **params), method="sigmoid", ensemble=False)


def _random_forest(params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(random_state=random_state, n_jobs=1, **params)


def _extra_trees(params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(random_state=random_state, n_jobs=1, **params)


def _hist_gradient_boosting(params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=random_state, **params)


#: Every candidate the pipeline knows, simplest first. ``[candidates] enabled`` picks from these;
#: ``[candidates] <name> = {...}`` gives each its parameters. Adding a candidate: a builder and a
#: line here, and its name in ``enabled`` (see docs/model.md).
REGISTRY: dict[str, Candidate] = {c.name: c for c in (
    Candidate("logistic_regression", "Logistic regression", 1, _logistic_regression,
              run_params=("C", "max_iter"), check=_check_logistic),
    Candidate("svm", "SVM (RBF kernel, calibrated)", 2, _svm),
    Candidate("random_forest", "Random forest", 3, _random_forest),
    Candidate("extra_trees", "Extremely randomised trees", 4, _extra_trees),
    Candidate("hist_gradient_boosting", "Gradient boosting (histogram)", 5, _hist_gradient_boosting),
)}
CANDIDATES = tuple(REGISTRY)


def candidate_params(configured: Mapping[str, Mapping[str, Any]],
                     run_params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each enabled candidate's parameters: ``pipeline.toml``'s (``configured``), with the run
    parameters it takes (``Candidate.run_params``) set from ``run_params``.

    Raises:
        ParameterError: a candidate the registry does not know.
    """
    params = {}
    for name, values in configured.items():
        if name not in REGISTRY:
            raise ParameterError(f"unknown candidate model {name!r} (known: {', '.join(CANDIDATES)})")
        params[name] = {**values, **{key: run_params[key] for key in REGISTRY[name].run_params}}
    return params


def make_estimator(name: str, params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    """A fresh, unfitted scikit-learn classifier for candidate ``name`` with ``params``.

    Raises:
        ParameterError: an unknown candidate or a parameter the estimator does not accept.
    """
    if name not in REGISTRY:
        raise ParameterError(f"unknown candidate model {name!r} (known: {', '.join(CANDIDATES)})")
    if REGISTRY[name].check is not None:
        REGISTRY[name].check(params)
    try:
        estimator = REGISTRY[name].build(params, random_state)
        for part in (estimator, getattr(estimator, "estimator", None)):
            if part is not None:
                part._validate_params()
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"candidate {name}: {str(exc).splitlines()[0]}") from None
    return estimator


def malignant_probability(model: ClassifierMixin, X: Any) -> np.ndarray:
    """The model's probability of class 1 (malignant)."""
    return model.predict_proba(X)[:, list(model.classes_).index(1)]


def ranking_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
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
        scores.append(ranking_scores(y[held_out], p))
    return scores, oof.mean(axis=0)


def summarize(scores: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of each score over the folds."""
    return {
        metric: {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
        for metric, values in ((m, [s[m] for s in scores]) for m in scores[0])
    }


def rank(summaries: Mapping[str, Mapping[str, Mapping[str, float]]], metric: str) -> list[str]:
    """Candidate names, best first, by the mean of ``metric`` (ties: the simpler first)."""
    if metric not in CV_METRICS:
        raise ParameterError(f"selection metric {metric!r} is not one of {', '.join(CV_METRICS)}")
    sign = 1 if metric in LOWER_IS_BETTER else -1
    return sorted(summaries, key=lambda n: (sign * summaries[n][metric]["mean"], _complexity(n)))


def _complexity(name: str) -> int:
    return REGISTRY[name].complexity if name in REGISTRY else len(REGISTRY) + 1


def select_candidate(
    summaries: Mapping[str, Mapping[str, Mapping[str, float]]], metric: str, folds: int
) -> dict[str, Any]:
    """The one-standard-error rule: the simplest candidate whose mean CV ``metric`` is within one
    standard error of the best mean.

    Candidates whose scores differ by less than the folds' noise are equally good on the
    evidence; preferring the simplest of them stops the winner from switching with the seed.
    The standard error is the best candidate's sd over folds divided by the square root of the
    folds per repeat (repeats reuse the same rows, so they do not add independent evidence).

    Returns:
        ``winner``, ``best`` (the best mean), ``rule``, ``margin`` (one standard error),
        ``within_margin`` (the candidates that qualified) and ``ranking`` (by mean, best first).
    """
    ranking = rank(summaries, metric)
    best = ranking[0]
    mean, sd = summaries[best][metric]["mean"], summaries[best][metric]["sd"]
    margin = sd / math.sqrt(folds)
    sign = 1 if metric in LOWER_IS_BETTER else -1
    within = [n for n in ranking if sign * (summaries[n][metric]["mean"] - mean) <= margin + 1e-12]
    winner = min(within, key=lambda n: (_complexity(n), ranking.index(n)))
    return {"winner": winner, "best": best, "rule": "one standard error, simplest first",
            "metric": metric, "margin": float(margin), "within_margin": within, "ranking": ranking}


def choose_threshold(
    y: np.ndarray, p: np.ndarray, target_sensitivity: float, confidence: float = 0.0
) -> dict[str, Any]:
    """The highest threshold whose sensitivity on these rows has a one-sided exact lower
    confidence bound (at ``confidence``) of at least ``target_sensitivity``.

    With ``confidence`` 0 this is the highest threshold that catches ``target_sensitivity`` of
    the malignant rows given; a threshold chosen that way catches less on new patients (it is
    fitted to these rows). Asking the lower bound to reach the target keeps the promise on rows
    the model has not seen, at a price in specificity, which is reported beside it.

    Args:
        y: labels, 1 = malignant (the training split's, out of fold).
        p: probabilities of malignancy.
        target_sensitivity: in (0, 1].
        confidence: in [0, 1).

    Returns:
        ``threshold``, ``target_sensitivity``, ``confidence``, the ``sensitivity`` and
        ``specificity`` on these rows and the sensitivity's ``lower_bound``; ``reachable``
        (False when even catching every malignant row leaves the bound below the target: too
        few rows); and ``without_margin``: the threshold, sensitivity and specificity of
        ``confidence`` 0, the specificity the margin costs.
    """
    from etl.stats import lower_bound

    if not 0 < target_sensitivity <= 1:
        raise ParameterError(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    if not 0 <= confidence < 1:
        raise ParameterError(f"threshold_confidence must be in [0, 1), got {confidence}")
    positives = np.sort(p[y == 1])[::-1]
    n = len(positives)

    def at(caught: int, conf: float) -> dict[str, Any]:
        threshold = float(positives[caught - 1])
        predicted = p >= threshold
        k = int(predicted[y == 1].sum())  # ties at the threshold are caught too
        return {"threshold": threshold, "sensitivity": k / n,
                "specificity": float((~predicted[y == 0]).mean()),
                "lower_bound": lower_bound(k, n, conf)}

    needed = next((k for k in range(1, n + 1)
                   if lower_bound(k, n, confidence) >= target_sensitivity - 1e-12), None)
    chosen = at(needed or n, confidence)
    plain = at(math.ceil(target_sensitivity * n - 1e-9), 0.0)
    return {**chosen, "target_sensitivity": target_sensitivity, "confidence": confidence,
            "reachable": needed is not None,
            "without_margin": {k: plain[k] for k in ("threshold", "sensitivity", "specificity")}}
