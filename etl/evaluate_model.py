"""Score the selected model on the held-out test split: ``metrics.json`` and ``predictions.csv``.

At the threshold ``select_model`` chose (and at 0.5): accuracy, precision, recall (sensitivity),
specificity, F1, the confusion matrix; ROC AUC, PR AUC, Brier score; a 95 % interval of each
(exact for proportions, bootstrap for the rest); every candidate's cross-validation scores; and,
when the nested cross-validation ran, the expected performance of the whole procedure on
unseen patients (``expected_performance``). The model is loaded only after its SHA-256
matches the checksum written with it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from etl import runner, storage
from etl.data.schema import FEATURE_COLUMNS, ID_COLUMN, MALIGNANT, TARGET_COLUMN
from etl.modeling.nested import summarize_folds
from etl.modeling.procedure import features_and_labels, malignant_probability, predict_frame, threshold_metrics
from etl.modeling.procedure import ranking_scores as ranking_metrics
from etl.modeling.thresholds import call, triage_counts, triage_shares
from etl.runner import Outputs, Run, Step

logger = logging.getLogger(__name__)


#: Scores that depend on the threshold, and those that do not.
THRESHOLD_METRICS = ("accuracy", "precision", "recall", "specificity", "f1")
RANKING_METRICS = ("roc_auc", "pr_auc", "brier")


class RankedScores:
    """Test labels and probabilities sorted once by probability, so that every bootstrap
    resample is scored in linear time: a resample is a weight per row (how often it was
    drawn), and every score is a weighted sum over the sorted rows (no sort per resample)."""

    def __init__(self, y: np.ndarray, p: np.ndarray):
        order = np.argsort(-p, kind="mergesort")
        self.order, self.y, self.p = order, np.asarray(y)[order] == 1, np.asarray(p, dtype=float)[order]
        # The first row of each run of equal probabilities (ties share one threshold).
        self.starts = np.r_[0, np.flatnonzero(np.diff(self.p)) + 1]

    def scores(self, threshold: float, weights: np.ndarray | None = None) -> dict[str, float]:
        """The scores of ``threshold_metrics`` and ``ranking_metrics`` for rows weighted by
        ``weights`` (in the original row order; default: each row once)."""
        w = np.ones(len(self.y)) if weights is None else np.asarray(weights, dtype=float)[self.order]
        wp, wn = w * self.y, w * ~self.y
        n_pos, n_neg, n = wp.sum(), wn.sum(), w.sum()
        called = self.p >= threshold
        tp, fp = wp[called].sum(), wn[called].sum()
        fn, tn = n_pos - tp, n_neg - fp
        pos_at, neg_at = np.add.reduceat(wp, self.starts), np.add.reduceat(wn, self.starts)
        tps, fps = np.cumsum(pos_at), np.cumsum(neg_at)
        # Mann-Whitney: each positive beats the negatives below its score, ties count half.
        roc_auc = np.sum(pos_at * (n_neg - fps + 0.5 * neg_at)) / (n_pos * n_neg)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(tps + fps > 0, tps / (tps + fps), 0.0)
        recall = tps / n_pos
        return {
            "accuracy": float((tp + tn) / n),
            "precision": float(tp / (tp + fp)) if tp + fp else 0.0,
            "recall": float(tp / n_pos) if n_pos else 0.0,
            "specificity": float(tn / n_neg) if n_neg else 0.0,
            "f1": float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0,
            "roc_auc": float(roc_auc),
            "pr_auc": float(np.sum(np.diff(np.r_[0.0, recall]) * precision)),
            "brier": float(np.sum(w * (self.p - self.y) ** 2) / n),
        }


def fast_scores(
    y: np.ndarray, p: np.ndarray, threshold: float, weights: np.ndarray | None = None
) -> dict[str, float]:
    """The same scores as ``threshold_metrics`` and ``ranking_metrics``, in plain NumPy, each
    row counted ``weights`` times (a test checks they equal scikit-learn's on the rows repeated)."""
    return RankedScores(y, p).scores(threshold, weights)


#: Proportions, with their exact interval: the count of successes and of trials, from the
#: confusion matrix.
PROPORTIONS = {
    "recall": lambda c: (c["tp"], c["tp"] + c["fn"]),
    "specificity": lambda c: (c["tn"], c["tn"] + c["fp"]),
    "precision": lambda c: (c["tp"], c["tp"] + c["fp"]),
    "accuracy": lambda c: (c["tp"] + c["tn"], c["tp"] + c["tn"] + c["fp"] + c["fn"]),
}
#: Scores with no closed-form interval here: percentile bootstrap over the test rows.
BOOTSTRAPPED = ("f1", "roc_auc", "pr_auc", "brier")


def bootstrap_ci(
    y: np.ndarray, p: np.ndarray, threshold: float, resamples: int, random_state: int
) -> dict[str, list[float]]:
    """95 % percentile bootstrap intervals of every score, resampling the test rows."""
    rng = np.random.default_rng(random_state)
    ranked = RankedScores(y, p)
    draws: dict[str, list[float]] = {m: [] for m in (*THRESHOLD_METRICS, *RANKING_METRICS)}
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() == y[rows].max():  # one class only: no AUC; skip this draw
            continue
        for metric, value in ranked.scores(threshold, np.bincount(rows, minlength=len(y))).items():
            draws[metric].append(value)
    return {m: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for m, v in draws.items()}


def confidence_intervals(
    y: np.ndarray, p: np.ndarray, threshold: float, resamples: int, random_state: int
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """95 % intervals of every test score and the method of each.

    Proportions get the exact Clopper-Pearson interval (it covers at least 95 % of the time for
    any sample size; a percentile bootstrap of sensitivity on 42 positives covers about 78 %).
    F1, ROC AUC, PR AUC and Brier get a percentile bootstrap; where every resample gives the
    same value (a perfect score: the bootstrap cannot see beyond the rows it has), the exact
    interval of that value as a proportion of the smaller class's rows replaces it, so no
    interval is ever zero-width.
    """
    from etl.modeling.stats import clopper_pearson

    cm = threshold_metrics(y, p, threshold)["confusion_matrix"]
    ci = {m: list(clopper_pearson(*count(cm))) for m, count in PROPORTIONS.items()}
    methods = dict.fromkeys(PROPORTIONS, "clopper-pearson")
    boot = bootstrap_ci(y, p, threshold, resamples, random_state)
    smaller = int(min(np.sum(y == 1), np.sum(y == 0)))
    for metric in BOOTSTRAPPED:
        lo, hi = boot[metric]
        if hi - lo > 1e-12:
            ci[metric], methods[metric] = [lo, hi], "percentile bootstrap"
        else:
            ci[metric] = list(clopper_pearson(round(lo * smaller), smaller))
            methods[metric] = "exact bound (bootstrap degenerate)"
    return ci, methods


def compute_metrics(
    y: np.ndarray, p: np.ndarray, threshold: float, resamples: int = 1000, random_state: int = 0
) -> dict[str, Any]:
    """Test-split metrics with malignant (1) as the positive class.

    The seed's keys (``accuracy``, ``precision``, ``recall``, ``f1``) and ``specificity`` and
    ``confusion_matrix`` stay at the top level, at the chosen ``threshold``; ``at_threshold``
    and ``at_0.5`` hold both operating points; ``ci95`` the bootstrap intervals.
    """
    chosen = threshold_metrics(y, p, threshold)
    ci, methods = confidence_intervals(y, p, threshold, resamples, random_state)
    return {
        **{k: v for k, v in chosen.items() if k != "threshold"},
        **ranking_metrics(y, p),
        "threshold": float(threshold),
        "at_threshold": chosen,
        "at_0.5": threshold_metrics(y, p, 0.5),
        "ci95": ci,
        "ci_method": methods,
        "bootstrap": {"resamples": resamples, "random_state": random_state, "method": "percentile"},
        "n_test": len(y),
        "positive_class": MALIGNANT,
    }


def evaluate_model(
    model_path: storage.Location,
    test_path: storage.Location,
    training_path: storage.Location,
    metrics_path: storage.Location,
    predictions_path: storage.Location,
    bootstrap_resamples: int,
    random_state: int,
    outer_fold_paths: Sequence[storage.Location] = (),
) -> dict[str, str]:
    """Score the selected model (after checking its SHA-256) on the test split at the threshold
    ``select_model`` chose; write the metrics as JSON and the test predictions as CSV (``id``,
    ``diagnosis``, ``malignant_probability``, ``predicted``, ``call``: the three-way call).

    With ``outer_fold_paths`` (the ``nested_cv`` folds' records), ``metrics.json`` also gets
    ``expected_performance``: the procedure's scores on unseen rows (``summarize_folds``).

    Returns:
        ``{"metrics": metrics_path, "predictions": predictions_path}``
    """
    model = storage.load_object(storage.require(model_path))
    training = storage.read_json(training_path)
    test = storage.read_frame(test_path)
    _, y = features_and_labels(test)
    threshold = training["threshold"]["threshold"]
    predictions = predict_frame(malignant_probability(model, test[list(FEATURE_COLUMNS)]),
                                test[ID_COLUMN].to_numpy(), threshold)
    predictions.insert(1, TARGET_COLUMN, test[TARGET_COLUMN].to_numpy())
    predictions["call"] = call(predictions["malignant_probability"], threshold, training["triage"]["threshold"])
    result = compute_metrics(y, predictions["malignant_probability"].to_numpy(), threshold,
                             bootstrap_resamples, random_state)
    result["model"] = {"candidate": training["candidate"], "estimator": training["estimator"]}
    result["cross_validation"] = training["selection"]["cross_validation"]
    result["selection"] = {k: v for k, v in training["selection"].items() if k != "cross_validation"}
    result["operating_point"] = training["threshold"]
    result["guarantee"] = training["threshold"]["guarantee"]
    triage = training["triage"]
    result["triage"] = {  # the three-way call (etl.modeling.thresholds): its two thresholds and promises
        "benign_below": threshold, "malignant_from": triage["threshold"],
        "guarantees": {"benign": training["threshold"]["guarantee"], "malignant": triage["guarantee"]},
        "malignant_threshold": triage,
        "test": triage_shares(triage_counts(y, predictions["malignant_probability"].to_numpy(), threshold,
                                            triage["threshold"])),
    }
    if outer_fold_paths:
        expected = summarize_folds([storage.read_json(f) for f in outer_fold_paths],
                                   training["threshold"]["target_sensitivity"])
        result = {"expected_performance": expected, **result}
        pooled = expected["pooled"]
        logger.info("expected on unseen patients (%d outer folds, %d repeats, pooled): caught %d of %d malignant, "
                    "sensitivity %.4f [%.3f, %.3f]; cleared %d of %d benign, specificity %.4f [%.3f, %.3f]",
                    expected["outer_folds"], expected["outer_repeats"], pooled["confusion_matrix"]["tp"],
                    pooled["malignant"], pooled["sensitivity"], *pooled["sensitivity_ci95"],
                    pooled["confusion_matrix"]["tn"], pooled["benign"], pooled["specificity"],
                    *pooled["specificity_ci95"])
    logger.info(
        "test split (%d rows), %s at threshold %.4f: sensitivity %.4f [%.3f, %.3f], specificity %.4f, "
        "roc_auc %.4f [%.3f, %.3f]",
        result["n_test"], training["candidate"], threshold, result["recall"], *result["ci95"]["recall"],
        result["specificity"], result["roc_auc"], *result["ci95"]["roc_auc"],
    )
    storage.write_json(result, metrics_path)
    storage.write_frame(predictions, predictions_path)
    return {"metrics": str(metrics_path), "predictions": str(predictions_path)}


def _evaluate_model(run: Run) -> Outputs:
    """``evaluate_model`` on the run's model, test split and nested folds."""
    i = run.inputs("evaluate_model")
    return evaluate_model(i.model, i.test, i.training, run.folder.metrics, run.folder.predictions,
                          run.settings.evaluation.bootstrap_resamples, run.random_state, i.outer_fold)


STEPS = runner.steps(Step("evaluate_model", _evaluate_model))
main = runner.entry_point(STEPS, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
