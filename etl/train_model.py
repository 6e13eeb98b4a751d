"""Train the candidate models and select one (the procedure itself is ``etl.modeling.procedure``).

``train_candidate`` cross-validates one candidate with its preprocessing refitted inside every
fold (repeated stratified k-fold on the training split's raw rows) and fits it on the whole
scaled training split; the DAG runs one such task per candidate, in parallel. ``select_model``
gives every candidate its operating point by the configured rule, picks one by the
one-standard-error rule on the paired per-fold differences of the selection metric
(``etl.modeling.procedure.choose_model``, shared with the nested cross-validation) and records why.
Malignant is the positive class (label 1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from etl import runner, storage
from etl.catalog import ParameterError
from etl.data.schema import ID_COLUMN, LABEL_CODES, TARGET_COLUMN
from etl.modeling.models import make_estimator
from etl.modeling.procedure import (
    CrossValidation,
    choose_model,
    cross_validate,
    features_and_labels,
    make_pipeline,
    summarize,
)
from etl.runner import Outputs, Run, Step
from etl.settings import SelectionSettings
from etl.storage.layout import CandidatePaths

logger = logging.getLogger(__name__)


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


def raw_rows(data: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """The validated (not imputed, not scaled) rows of ``data`` that ``split`` holds, in its order."""
    return data.set_index(ID_COLUMN).loc[split[ID_COLUMN]].reset_index()


def train_candidate(
    data_path: storage.Location,
    train_path: storage.Location,
    name: str,
    params: Mapping[str, Any],
    out_dir: storage.Location | CandidatePaths,
    folds: int,
    repeats: int,
    random_state: int,
) -> dict[str, str]:
    """Cross-validate candidate ``name`` on the training split's raw rows (``data_path``, the
    rows of ``train_path``), its preprocessing refitted in every fold; then fit it on the whole
    scaled training split (``train_path``), the model ``scaler.pkl`` feeds.

    Writes into ``out_dir``: ``model.pkl`` (+ checksum), ``cv.json`` (every fold's scores and
    their mean and sd) and ``oof.parquet`` (each training row's out-of-fold probability and fold,
    per repeat: ``p_<repeat>``, ``fold_<repeat>``).

    Returns:
        ``{"candidate": name, "candidate_model": ..., "cv": ..., "oof": ...}``
    """
    train = storage.read_frame(train_path)
    raw = raw_rows(storage.read_frame(data_path), train)
    X_raw, y = features_and_labels(raw)
    cv = cross_validate(make_pipeline(name, params, random_state), X_raw, y, folds, repeats, random_state)
    X, _ = features_and_labels(train)
    model = make_estimator(name, params, random_state).fit(X, y)
    summary = summarize(cv.scores)
    logger.info(
        "%s: %d x %d-fold CV on %d training rows (preprocessing refitted in each fold): roc_auc %.4f +/- %.4f, "
        "pr_auc %.4f, brier %.4f", name, repeats, folds, len(y), summary["roc_auc"]["mean"],
        summary["roc_auc"]["sd"], summary["pr_auc"]["mean"], summary["brier"]["mean"],
    )
    out = CandidatePaths.of(out_dir)
    storage.dump_object(model, out.model)
    oof = pd.DataFrame({ID_COLUMN: train[ID_COLUMN], TARGET_COLUMN: train[TARGET_COLUMN]})
    for r in range(repeats):
        oof[f"p_{r}"], oof[f"fold_{r}"] = cv.oof[r], cv.fold[r]
    storage.write_frame(oof, out.oof)
    storage.write_json(
        {
            "candidate": name,
            "estimator": type(model).__name__,
            "params": dict(params),
            "random_state": random_state,
            "folds": folds,
            "repeats": repeats,
            "rows": len(y),
            "preprocessing": "median imputer and standard scaler refitted on each fold's fit rows",
            "train_sha256": storage.sha256(train_path),
            "scores": cv.scores,
            "summary": summary,
        },
        out.cv,
    )
    return {"candidate": name, "candidate_model": str(out.model), "cv": str(out.cv), "oof": str(out.oof)}


def read_cross_validation(paths: CandidatePaths) -> tuple[np.ndarray, CrossValidation]:
    """A candidate's labels and ``CrossValidation`` from the files ``train_candidate`` wrote."""
    frame = storage.read_frame(paths.oof)
    cv = storage.read_json(paths.cv)
    repeats = cv["repeats"]
    return (frame[TARGET_COLUMN].map(LABEL_CODES).to_numpy(dtype=int),
            CrossValidation(np.vstack([frame[f"p_{r}"].to_numpy() for r in range(repeats)]),
                            np.vstack([frame[f"fold_{r}"].to_numpy() for r in range(repeats)]), cv["scores"]))


def select_model(
    candidate_dirs: Mapping[str, storage.Location | CandidatePaths],
    model_path: storage.Location,
    training_path: storage.Location,
    selection: SelectionSettings,
) -> dict[str, str]:
    """Give each candidate its operating point by ``selection.rule`` on its out-of-fold
    probabilities, pick one by the one-standard-error rule on the paired fold differences of
    ``selection.metric``
    (``etl.modeling.procedure.choose_model``); copy it to ``model_path`` and record the choice.

    Returns:
        ``{"model": model_path, "training": training_path, "candidate": winner}``
    """
    candidates = {name: CandidatePaths.of(d) for name, d in candidate_dirs.items()}
    cvs = {name: storage.read_json(c.cv) for name, c in candidates.items()}
    read = {name: read_cross_validation(c) for name, c in candidates.items()}
    y = next(iter(read.values()))[0]
    metric, rule, target_sensitivity = selection.metric, selection.rule, selection.target_sensitivity
    choice = choose_model({n: cv for n, (_, cv) in read.items()}, y, metric=metric,
                          target_sensitivity=target_sensitivity, rule=rule,
                          confidence=selection.threshold_confidence,
                          target_malignant_specificity=selection.target_malignant_specificity)
    chosen, threshold = choice["selection"], choice["threshold"]
    winner = chosen["winner"]
    storage.copy_object(candidates[winner].model, model_path)  # byte for byte
    cv = cvs[winner]
    logger.info(
        "selected %s (%s): %s by %s; threshold %.4f (%s: %d of %d out-of-fold malignant rows may be missed) "
        "gives out-of-fold sensitivity %.3f, specificity %.3f (%.3f with no margin)", winner, chosen["rule"],
        ", ".join(f"{n} {chosen['means'][n]:.4f}" for n in chosen["ranking"]), metric,
        threshold["threshold"], rule, threshold["allowed_misses"], threshold["malignant"], threshold["sensitivity"],
        threshold["specificity"], threshold["alternatives"]["none"]["specificity"],
    )
    logger.info("guarantee: %s", threshold["guarantee"])
    triage = choice["triage"]
    logger.info("malignant called from %.4f (%d of %d out-of-fold benign rows may be above it): %s",
                triage["threshold"], triage["allowed_false_alarms"], triage["benign"], triage["guarantee"])
    if not threshold["reachable"]:
        logger.warning("target sensitivity %.3f cannot be promised by %s with %d malignant training rows: the "
                       "threshold catches all of them", target_sensitivity, rule, threshold["malignant"])
    storage.write_json(
        {
            "candidate": winner,
            "estimator": cv["estimator"],
            "params": {**cv["params"], "random_state": cv["random_state"]},
            "threshold": threshold,
            "triage": triage,
            "candidate_thresholds": choice["thresholds"],
            "rows": cv["rows"],
            "train_sha256": cv["train_sha256"],
            "selection": {
                **chosen,
                "folds": cv["folds"],
                "repeats": cv["repeats"],
                "cross_validation": {name: cvs[name]["summary"] for name in chosen["ranking"]},
            },
        },
        training_path,
    )
    return {"model": str(model_path), "training": str(training_path), "candidate": winner}


def _train_model(run: Run, candidate: str) -> Outputs:
    """``train_candidate`` of ``candidate`` with its run parameters and ``[selection]``'s CV."""
    if candidate not in run.settings.candidates:
        raise ParameterError(f"candidate {candidate!r} is not enabled in [candidates]")
    sel = run.settings.selection
    return train_candidate(run.input("train_model", "data"), run.input("train_model", "train"), candidate,
                           run.candidate_params()[candidate], run.folder.candidate(candidate), sel.cv_folds,
                           sel.cv_repeats, run.random_state)


def _select_model(run: Run) -> Outputs:
    """``select_model`` among the enabled candidates' files with ``[selection]``."""
    candidates = {name: CandidatePaths(run.input("select_model", "cv", candidate=name).parent)
                  for name in run.settings.candidates}
    return select_model(candidates, run.folder.model, run.folder.training, run.settings.selection)


#: Both tasks: the command line trains the candidates (``--candidate``: these only), then selects.
STEPS = runner.steps(Step("train_model", _train_model), Step("select_model", _select_model))
main = runner.entry_point(STEPS, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
