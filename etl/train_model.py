"""Train the candidate models on the scaled training split and select one.

``train_candidate`` cross-validates one candidate (repeated stratified k-fold, training split
only) and fits it on the whole split; the DAG runs one such task per candidate, in parallel.
``select_model`` picks one by the one-standard-error rule on the configured metric and chooses its
decision threshold on its out-of-fold probabilities, with a margin that keeps the target
sensitivity on unseen rows (``choose_model``, shared with the nested cross-validation). Malignant is the positive class (label 1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from etl import cli, storage
from etl.config import CandidatePaths
from etl.models import (
    candidate_params,
    choose_threshold,
    cross_validate,
    make_estimator,
    select_candidate,
    summarize,
)
from etl.schema import FEATURE_COLUMNS, ID_COLUMN, LABEL_CODES, TARGET_COLUMN

logger = logging.getLogger(__name__)


def features_and_labels(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Split a preprocessed frame into the feature matrix and 0/1 labels (1 = malignant)."""
    return df[list(FEATURE_COLUMNS)], df[TARGET_COLUMN].map(LABEL_CODES).to_numpy(dtype=int)


def fit_model(
    X: pd.DataFrame, y: np.ndarray, C: float, max_iter: int, random_state: int
) -> LogisticRegression:
    """Fit the seed's model, a logistic regression (the ``logistic_regression`` candidate).

    Args:
        X: scaled features.
        y: labels, 1 = malignant.
        C: inverse regularisation strength, > 0.
        max_iter: solver iterations, >= 1.
        random_state: seed (used by solvers that shuffle).
    """
    return make_estimator("logistic_regression", {"C": C, "max_iter": max_iter}, random_state).fit(X, y)


def fit_candidate(
    X: Any, y: np.ndarray, name: str, params: Mapping[str, Any], folds: int, repeats: int,
    random_state: int,
) -> tuple[Any, list[dict[str, float]], np.ndarray]:
    """Cross-validate candidate ``name`` on ``X``, ``y``, then fit it on all of them.

    Returns:
        ``(model, scores, oof)``: the fitted model, every fold's scores, each row's out-of-fold
        probability of malignancy (averaged over the repeats).
    """
    estimator = make_estimator(name, params, random_state)
    scores, oof = cross_validate(estimator, X, y, folds, repeats, random_state)
    return clone(estimator).fit(X, y), scores, oof


def choose_model(
    summaries: Mapping[str, Mapping[str, Mapping[str, float]]],
    oof: Callable[[str], tuple[np.ndarray, np.ndarray]],
    metric: str,
    folds: int,
    target_sensitivity: float,
    confidence: float,
) -> dict[str, Any]:
    """The selection rule and the operating point, the one implementation that both the DAG's
    ``select_model`` and each fold of the nested cross-validation use.

    Args:
        summaries: each candidate's CV summary (``summarize``).
        oof: ``name -> (labels, out-of-fold probabilities)`` of a candidate's training rows.

    Returns:
        ``{"selection": select_candidate(...), "threshold": choose_threshold(...)}``
    """
    selection = select_candidate(summaries, metric, folds)
    y, p = oof(selection["winner"])
    return {"selection": selection,
            "threshold": choose_threshold(y, p, target_sensitivity, confidence)}


def train_candidate(
    train_path: storage.Location,
    name: str,
    params: Mapping[str, Any],
    out_dir: storage.Location | CandidatePaths,
    folds: int,
    repeats: int,
    random_state: int,
) -> dict[str, str]:
    """Cross-validate candidate ``name`` on the training split, then fit it on all of it.

    Writes into ``out_dir``: ``model.pkl`` (+ checksum), ``cv.json`` (every fold's scores and
    their mean and sd) and ``oof.parquet`` (each training row's out-of-fold probability).

    Returns:
        ``{"candidate": name, "model": ..., "cv": ..., "oof": ...}``
    """
    train = storage.read_frame(train_path, "preprocess_data")
    X, y = features_and_labels(train)
    model, scores, oof = fit_candidate(X, y, name, params, folds, repeats, random_state)
    summary = summarize(scores)
    logger.info(
        "%s: %d x %d-fold CV on %d training rows: roc_auc %.4f +/- %.4f, pr_auc %.4f, brier %.4f",
        name, repeats, folds, len(y), summary["roc_auc"]["mean"], summary["roc_auc"]["sd"],
        summary["pr_auc"]["mean"], summary["brier"]["mean"],
    )
    out = CandidatePaths.of(out_dir)
    storage.dump_object(model, out.model)
    storage.write_frame(
        pd.DataFrame({ID_COLUMN: train[ID_COLUMN], TARGET_COLUMN: train[TARGET_COLUMN],
                      "malignant_probability": oof}),
        out.oof,
    )
    storage.write_json(
        {
            "candidate": name,
            "estimator": type(model).__name__,
            "params": dict(params),
            "random_state": random_state,
            "folds": folds,
            "repeats": repeats,
            "rows": len(y),
            "train_sha256": storage.sha256(train_path),
            "scores": scores,
            "summary": summary,
        },
        out.cv,
    )
    return {"candidate": name, "model": str(out.model), "cv": str(out.cv), "oof": str(out.oof)}


def select_model(
    candidate_dirs: Mapping[str, storage.Location | CandidatePaths],
    metric: str,
    target_sensitivity: float,
    model_path: storage.Location,
    training_path: storage.Location,
    threshold_confidence: float = 0.0,
) -> dict[str, str]:
    """Pick a candidate by the one-standard-error rule on its cross-validated ``metric``
    (``etl.models.select_candidate``) and choose its decision threshold on its out-of-fold
    probabilities (``etl.models.choose_threshold``); copy it to ``model_path`` and record the
    choice.

    Returns:
        ``{"model": model_path, "training": training_path, "candidate": winner}``
    """
    candidates = {name: CandidatePaths.of(d) for name, d in candidate_dirs.items()}
    cvs = {name: storage.read_json(c.cv, "train_model") for name, c in candidates.items()}

    def oof(name: str) -> tuple[np.ndarray, np.ndarray]:
        frame = storage.read_frame(candidates[name].oof, "train_model")
        return frame[TARGET_COLUMN].map(LABEL_CODES).to_numpy(dtype=int), frame["malignant_probability"].to_numpy()

    any_cv = next(iter(cvs.values()))
    choice = choose_model({name: cv["summary"] for name, cv in cvs.items()}, oof, metric, any_cv["folds"],
                          target_sensitivity, threshold_confidence)
    selection, threshold = choice["selection"], choice["threshold"]
    winner = selection["winner"]
    storage.copy_object(candidates[winner].model, model_path)  # byte for byte
    cv = cvs[winner]
    logger.info(
        "selected %s (%s): %s by cross-validated %s, margin %.4f; threshold %.4f gives out-of-fold "
        "sensitivity %.3f (lower bound %.3f at %.0f %% confidence), specificity %.3f (%.3f without "
        "the margin)", winner, selection["rule"],
        ", ".join(f"{n} {cvs[n]['summary'][metric]['mean']:.4f}" for n in selection["ranking"]),
        metric, selection["margin"], threshold["threshold"], threshold["sensitivity"],
        threshold["lower_bound"], 100 * threshold_confidence, threshold["specificity"],
        threshold["without_margin"]["specificity"],
    )
    if not threshold["reachable"]:
        logger.warning("target sensitivity %.3f cannot be promised at %.0f %% confidence with %d malignant "
                       "training rows: the threshold catches all of them", target_sensitivity,
                       100 * threshold_confidence, int(np.sum(oof(winner)[0])))
    storage.write_json(
        {
            "candidate": winner,
            "estimator": cv["estimator"],
            "params": {**cv["params"], "random_state": cv["random_state"]},
            "threshold": threshold,
            "rows": cv["rows"],
            "train_sha256": cv["train_sha256"],
            "selection": {
                **selection,
                "folds": cv["folds"],
                "repeats": cv["repeats"],
                "cross_validation": {name: cvs[name]["summary"] for name in selection["ranking"]},
            },
        },
        training_path,
    )
    return {"model": str(model_path), "training": str(training_path), "candidate": winner}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: train the candidates, then select the model."""
    p, settings, run = cli.parser(__doc__)
    p.add_argument("--train", type=cli.path_arg, default=run.train, help="train split")
    p.add_argument("--candidate", action="append", choices=list(settings.candidates),
                   help="train only this candidate (repeatable; default: every enabled one)")
    p.add_argument("--model", type=cli.path_arg, default=run.model, help="selected model to write")
    p.add_argument("--training", type=cli.path_arg, default=run.training,
                   help="selection record JSON to write")
    p.add_argument("--C", dest="C", type=float, default=settings.C, help="logistic regression C")
    p.add_argument("--max-iter", type=int, default=settings.max_iter, help="logistic regression iterations")
    p.add_argument("--random-state", type=int, default=settings.random_state)

    def action(a):
        names = a.candidate or list(settings.candidates)
        params = candidate_params(settings.candidates, vars(a))
        for name in names:
            train_candidate(a.train, name, params[name], run.candidate(name), settings.cv_folds,
                            settings.cv_repeats, a.random_state)
        return select_model({n: run.candidate(n) for n in names}, settings.selection_metric,
                            settings.target_sensitivity, a.model, a.training,
                            settings.threshold_confidence)

    return cli.run(p, action, argv)


if __name__ == "__main__":
    raise SystemExit(main())
