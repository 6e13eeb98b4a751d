"""Nested cross-validation: the whole procedure (``etl.modeling.procedure``) run on all but one
outer fold of the data and scored on that fold, and the folds pooled into the expected
performance on patients the procedure never saw."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import RepeatedStratifiedKFold

from etl.catalog import ParameterError
from etl.data.schema import ID_COLUMN, SCORES
from etl.modeling.procedure import (
    Procedure,
    features_and_labels,
    malignant_probability,
    ranking_scores,
    run_procedure,
    summarize,
    threshold_metrics,
)
from etl.modeling.thresholds import triage_counts, triage_shares

logger = logging.getLogger(__name__)


def outer_split(y: np.ndarray, folds: int, repeats: int, random_state: int, index: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(train, test)`` of outer fold ``index`` (repeat ``index // folds``)."""
    if folds < 2 or repeats < 1:
        raise ParameterError(f"nested_cv needs outer_folds >= 2 and outer_repeats >= 1, got {folds}, {repeats}")
    if not 0 <= index < folds * repeats:
        raise ParameterError(f"outer fold {index} does not exist: {folds} x {repeats} folds")
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=random_state)
    for i, split in enumerate(splitter.split(np.zeros(len(y)), y)):
        if i == index:
            return split
    raise AssertionError("unreachable")


def run_outer_fold(data: pd.DataFrame, index: int, candidates: Mapping[str, Mapping[str, Any]],
                   procedure: Procedure, outer_folds: int, outer_repeats: int) -> dict[str, Any]:
    """Run the procedure on all but outer fold ``index`` of ``data`` (validated raw rows) and
    score what it picks on that fold, which nothing in the procedure saw."""
    _, labels = features_and_labels(data)
    fit_rows, held_out = outer_split(labels, outer_folds, outer_repeats, procedure.random_state, index)
    model, choice, cvs = run_procedure(data.iloc[fit_rows], candidates, procedure)
    X_test, y_test = features_and_labels(data.iloc[held_out])
    p = malignant_probability(model, X_test)
    threshold = choice["threshold"]["threshold"]
    scores = {**threshold_metrics(y_test, p, threshold), **ranking_scores(y_test, p)}
    triage = triage_counts(y_test, p, threshold, choice["triage"]["threshold"])
    logger.info("outer fold %d: %s at threshold %.4f on %d unseen rows: caught %d of %d, cleared %d of %d",
                index, choice["selection"]["winner"], threshold, len(y_test), scores["confusion_matrix"]["tp"],
                int(y_test.sum()), scores["confusion_matrix"]["tn"], int(len(y_test) - y_test.sum()))
    return {
        "fold": index,
        "repeat": index // outer_folds,
        "rows": {"train": len(fit_rows), "test": len(y_test), "test_malignant": int(y_test.sum())},
        "candidate": choice["selection"]["winner"],
        "selection": choice["selection"],
        "cross_validation": {n: summarize(cv.scores) for n, cv in cvs.items()},
        "threshold": choice["threshold"],
        "triage": {**choice["triage"], "counts": triage},
        "scores": scores,
        # every held-out row's probability: the decision curve and calibration of the procedure
        "predictions": {"id": data.iloc[held_out][ID_COLUMN].astype(str).tolist(),
                        "malignant": y_test.astype(int).tolist(), "probability": p.tolist()},
    }


def pooled_counts(folds: Iterable[Mapping[str, Any]], repeats: int = 1) -> dict[str, Any]:
    """The confusion matrix summed over ``folds``, with exact 95 % intervals.

    With ``repeats`` > 1 the folds score every patient ``repeats`` times: the proportions are
    over all the scores, and their intervals are taken at the number of distinct patients (the
    repeats add no new patients), so they are not narrowed by rescoring.
    """
    from etl.modeling.stats import proportions

    cm = {k: sum(f["scores"]["confusion_matrix"][k] for f in folds) for k in ("tp", "fn", "tn", "fp")}
    return {"confusion_matrix": cm, "malignant": cm["tp"] + cm["fn"], "benign": cm["tn"] + cm["fp"],
            **proportions((("sensitivity", cm["tp"], cm["tp"] + cm["fn"]), ("specificity", cm["tn"], cm["tn"] + cm["fp"]),
                           ("ppv", cm["tp"], cm["tp"] + cm["fp"])), repeats)}


def _summed_triage(folds: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for f in folds:
        for cls, calls in f["triage"]["counts"].items():
            counts[cls].update(calls)
    return {cls: dict(calls) for cls, calls in counts.items()}


def summarize_folds(folds: Iterable[Mapping[str, Any]], target_sensitivity: float) -> dict[str, Any]:
    """The expected performance on unseen patients: the pooled confusion matrix over every row
    the outer folds scored (per outer repeat and over all, exact 95 % intervals), beside each
    score's mean, sd, min and max over the folds and how often each candidate was chosen."""
    folds = sorted(folds, key=lambda f: f["fold"])
    if not folds:
        raise ParameterError("no outer fold results to summarise")
    summary: dict[str, Any] = {}
    for name in SCORES:
        values = np.array([f["scores"][name] for f in folds])
        summary[name] = {"mean": float(values.mean()),
                         "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                         "min": float(values.min()), "max": float(values.max())}
    repeats = sorted({f["repeat"] for f in folds})
    chosen: dict[str, int] = {}
    for f in folds:
        chosen[f["candidate"]] = chosen.get(f["candidate"], 0) + 1
    point = folds[0]["threshold"]
    return {
        "method": "nested cross-validation: the whole procedure (every candidate's CV with its "
                  "preprocessing, selection, threshold) fitted on the other outer folds, scored on the held-out one",
        "guarantee": point.get("guarantee"),
        "outer_folds": len(folds),
        "outer_repeats": len(repeats),
        "rows_scored": int(sum(f["rows"]["test"] for f in folds)),
        "target_sensitivity": target_sensitivity,
        "pooled": pooled_counts(folds, len(repeats)),
        "per_repeat": [pooled_counts([f for f in folds if f["repeat"] == r]) | {"repeat": r} for r in repeats],
        "share_below_target_sensitivity": float(np.mean([f["scores"]["recall"] < target_sensitivity - 1e-12
                                                         for f in folds])),
        "candidates_chosen": chosen,
        "thresholds": [f["threshold"]["threshold"] for f in folds],
        **({"triage": {"guarantee": point.get("guarantee"), "guarantee_malignant": folds[0]["triage"]["guarantee"],
                       "target_malignant_specificity": folds[0]["triage"]["target_specificity"],
                       "malignant_thresholds": [f["triage"]["threshold"] for f in folds],
                       "pooled": triage_shares(_summed_triage(folds), len(repeats))}}
           if all("triage" in f for f in folds) else {}),
        "scores": summary,
        **out_of_sample(folds, len(repeats)),
    }


def out_of_sample(folds: Iterable[Mapping[str, Any]], repeats: int = 1) -> dict[str, Any]:
    """What the outer folds' held-out probabilities say beyond the confusion matrix: the
    calibration table and the decision curve (``etl.modeling.stats``), pooled over every row scored; empty
    for fold records without their predictions."""
    from etl.modeling.stats import calibration_table, net_benefit

    folds = [f for f in folds if "predictions" in f]
    if not folds:
        return {}
    y = np.concatenate([f["predictions"]["malignant"] for f in folds]).astype(int)
    p = np.concatenate([f["predictions"]["probability"] for f in folds]).astype(float)
    return {"calibration": {"brier": float(np.mean((p - y) ** 2)), "bands": calibration_table(y, p, repeats=repeats)},
            "decision_curve": net_benefit(y, p)}
