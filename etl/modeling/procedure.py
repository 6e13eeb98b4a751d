"""What a run does with data: the training procedure, once, for every step that runs it.

``train_model`` / ``select_model`` run it on the training split, ``nested_cv`` on each outer
fold; ``evaluate_model``, ``etl.predict`` and the scoring DAG score with it. Nothing here reads or
writes files.

1. **Fit a candidate with its preprocessing** (``make_pipeline``): the median imputer and the
   standard scaler are a step of a scikit-learn ``Pipeline``, so every cross-validation fit
   learns them from its own fit rows only: no out-of-fold score has seen its row's statistics.
2. **Cross-validate** (``cross_validate``): repeated stratified k-fold on raw rows; every
   repeat's out-of-fold probabilities are kept apart (``CrossValidation``).
3. **Choose the operating point** (``choose_threshold``) by a stated rule (``RULES``):
   - ``risk_control`` (default): *expected sensitivity on new patients >= target*. Conformal
     risk control (Angelopoulos et al., 2022) for the miss rate: with ``n`` malignant
     out-of-fold rows, the threshold may miss ``k`` of them when ``(k + 1) / (n + 1) <= 1 -
     target``.
   - ``exact_bound``: *sensitivity on new patients >= target with probability ``confidence``*:
     the exact one-sided lower bound of the out-of-fold sensitivity reaches the target.
   The repeats' out-of-fold probabilities are averaged per row before the threshold is read
   (measured against the median of per-repeat thresholds under nested CV: the same sensitivity,
   0.2-0.4 points more specificity; docs/model.md).
4. **Select** (``select_candidate``): by ``[selection] metric``, as shipped the share of cases
   each candidate refers between its own two thresholds (lower is better; or its specificity at
   its sensitivity threshold), with a one-standard-error rule on the *paired* per-fold
   differences to the best candidate (every candidate is scored on the same folds); the
   simplest candidate within it wins; ROC AUC breaks ties.
5. **Score** (``threshold_metrics``, ``ranking_scores``, ``predict_frame``).
6. **Nested cross-validation** (``run_outer_fold``, ``summarize_folds``): the whole procedure
   on all but one outer fold, scored on that fold; read as the pooled confusion matrix over
   every row scored, with exact intervals.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.base import ClassifierMixin, clone
from sklearn.impute import SimpleImputer
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from etl.catalog import ParameterError
from etl.data.schema import BENIGN, FEATURE_COLUMNS, ID_COLUMN, LABEL_CODES, MALIGNANT, TARGET_COLUMN
from etl.modeling.models import REGISTRY, make_estimator
from etl.modeling.thresholds import choose_threshold, malignant_threshold

logger = logging.getLogger(__name__)

#: Metrics a selection may rank by. ``specificity``: at each candidate's own operating point;
#: ``referral``: the share of cases each candidate refers at its own two thresholds (the
#: three-way call's; lower is better).
SELECTION_METRICS = ("specificity", "referral", "roc_auc", "pr_auc", "brier")
LOWER_IS_BETTER = {"brier", "referral"}
#: Operating-point rules, and the guarantee each gives (``guarantee``).


# -- data ------------------------------------------------------------------------------------

def features_and_labels(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Split a frame into the feature matrix and 0/1 labels (1 = malignant)."""
    return df[list(FEATURE_COLUMNS)], df[TARGET_COLUMN].map(LABEL_CODES).to_numpy(dtype=int)


def make_preprocessor() -> Pipeline:
    """Median imputation, then standard scaling (``transform`` maps raw features to model input)."""
    return Pipeline(
        [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
    ).set_output(transform="pandas")


def make_pipeline(name: str, params: Mapping[str, Any], random_state: int) -> Pipeline:
    """Candidate ``name`` behind its preprocessing: what every cross-validation fit fits, on raw
    rows (``preprocess`` then ``model``).

    Raises:
        ParameterError: an unknown candidate or a parameter its estimator does not accept.
    """
    return Pipeline([("preprocess", make_preprocessor()),
                     ("model", make_estimator(name, params, random_state))])


# -- scores ----------------------------------------------------------------------------------

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


def threshold_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """Scores of calling a tumour malignant when its probability is at least ``threshold``."""
    y_pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, y_pred, labels=[0, 1]).ravel()
    return {
        "threshold": float(threshold),
        "accuracy": float(skm.accuracy_score(y, y_pred)),
        "precision": float(skm.precision_score(y, y_pred, zero_division=0)),
        "recall": float(skm.recall_score(y, y_pred, zero_division=0)),
        "specificity": float(tn / (tn + fp)) if tn + fp else 0.0,
        "f1": float(skm.f1_score(y, y_pred, zero_division=0)),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def predict_frame(probabilities: Any, ids: Any, threshold: float) -> pd.DataFrame:
    """One row per scored row: ``id``, the probability of malignancy and the label at
    ``threshold``."""
    p = np.asarray(probabilities, dtype=float)
    return pd.DataFrame({ID_COLUMN: np.asarray(ids), "malignant_probability": p,
                         "predicted": np.where(p >= threshold, MALIGNANT, BENIGN)})



def score_rows(release: Any, rows: pd.DataFrame, novelty_alpha: float = 0.01) -> pd.DataFrame:
    """``predict_frame`` of a release (``etl.releases.reader.Release``: its probabilities and
    thresholds) on ``rows``, with a ``release`` column naming it, the three-way ``call``
    (``benign``, ``refer``, ``malignant``: ``etl.modeling.thresholds.call``), ``out_of_scope``:
    why the release may not answer for the case (``etl.data.scope`` at ``novelty_alpha``; empty
    when it may), and ``reason_1`` to ``reason_3``: the features that moved the case's score
    most (``etl.modeling.reasons``). A case out of scope gets no probability, no ``predicted``,
    no reasons and the call ``out of scope``. What ``etl.predict`` and the scoring DAG write."""
    from etl.data.scope import OUT_OF_SCOPE, check_scope
    from etl.modeling.reasons import REASON_COLUMNS, attribute, reasons
    from etl.modeling.thresholds import call

    z = release.scaler.transform(rows[list(FEATURE_COLUMNS)])
    out = predict_frame(malignant_probability(release.model, z), rows[ID_COLUMN].to_numpy(), release.threshold)
    out = out.assign(release=release.name,
                     call=call(out["malignant_probability"], release.threshold, release.malignant_threshold))
    scope = check_scope(rows, release.scope, novelty_alpha)["reason"].to_numpy()
    outside = scope != ""
    out.loc[outside, "malignant_probability"] = np.nan
    out.loc[outside, "predicted"] = ""
    out.loc[outside, "call"] = OUT_OF_SCOPE
    out = out.assign(out_of_scope=scope, **{column: "" for column in REASON_COLUMNS})
    inside = np.flatnonzero(~outside)
    if len(inside):
        listed = reasons(attribute(release.model, np.asarray(z, dtype=float)[inside]),
                         rows[list(FEATURE_COLUMNS)].to_numpy(dtype=float)[inside], FEATURE_COLUMNS,
                         release.scope.get("quantiles"))
        for column in REASON_COLUMNS:
            out.loc[inside, column] = listed[column].to_numpy()
    return out

# -- cross-validation ------------------------------------------------------------------------

@dataclass
class CrossValidation:
    """Out-of-fold results of repeated stratified k-fold cross-validation.

    Attributes:
        oof: ``(repeats, rows)``: each row's out-of-fold probability of malignancy per repeat.
        fold: ``(repeats, rows)``: the fold (within its repeat) that held each row out.
        scores: the threshold-free scores of every fold, repeat by repeat.
    """

    oof: np.ndarray
    fold: np.ndarray
    scores: list[dict[str, float]] = field(default_factory=list)

    @property
    def folds(self) -> int:
        return int(self.fold.max()) + 1

    @property
    def repeats(self) -> int:
        return int(self.oof.shape[0])

    def fold_values(self, y: np.ndarray, metric: str, threshold: float | None = None,
                    malignant_threshold: float | None = None) -> np.ndarray:
        """``metric`` on each fold's held-out rows (repeat by repeat): a threshold-free score,
        ``specificity`` at ``threshold``, or ``referral``: the share of rows between
        ``threshold`` and ``malignant_threshold``."""
        if metric not in ("specificity", "referral"):
            return np.array([s[metric] for s in self.scores])
        values = []
        for r in range(self.repeats):
            for f in range(self.folds):
                if metric == "referral":
                    p = self.oof[r, self.fold[r] == f]
                    values.append(float(np.mean((p >= threshold) & (p < malignant_threshold))))
                    continue
                benign = (self.fold[r] == f) & (y == 0)
                values.append(float(np.mean(self.oof[r, benign] < threshold)) if benign.any() else 1.0)
        return np.array(values)


def cross_validate(estimator: ClassifierMixin, X: Any, y: np.ndarray, folds: int, repeats: int,
                   random_state: int) -> CrossValidation:
    """Repeated stratified k-fold cross-validation of ``estimator`` (a ``make_pipeline``: the
    preprocessing is refitted in every fit, on its fit rows only)."""
    if folds < 2 or repeats < 1:
        raise ParameterError(f"cross-validation needs folds >= 2 and repeats >= 1, got {folds}, {repeats}")
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=random_state)
    X = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X), columns=list(FEATURE_COLUMNS))
    oof, fold = np.full((repeats, len(y)), np.nan), np.zeros((repeats, len(y)), dtype=int)
    scores = []
    for i, (fit_rows, held_out) in enumerate(splitter.split(X, y)):
        model = clone(estimator).fit(X.iloc[fit_rows], y[fit_rows])
        p = malignant_probability(model, X.iloc[held_out])
        oof[i // folds, held_out], fold[i // folds, held_out] = p, i % folds
        scores.append(ranking_scores(y[held_out], p))
    return CrossValidation(oof, fold, scores)


def _same_estimator(a: Any, b: Any) -> bool:
    """Whether two unfitted scikit-learn estimators are built alike (so both fit the same model):
    the same class, parameters and nested estimators, as joblib's hash of the objects tells."""
    import joblib

    return joblib.hash(a) == joblib.hash(b)


def _vote_members(pipeline: Pipeline, others: Mapping[str, Pipeline]) -> list[str] | None:
    """The candidates among ``others`` that ``pipeline`` (a soft vote with equal weights behind
    the same preprocessing) averages, member by member; None when it is not one."""
    from sklearn.ensemble import VotingClassifier

    model = pipeline.named_steps["model"]
    if not isinstance(model, VotingClassifier) or model.voting != "soft" or model.weights is not None:
        return None
    alike = {name: other for name, other in others.items()
             if _same_estimator(pipeline.named_steps["preprocess"], other.named_steps["preprocess"])}
    members = []
    for _, member in model.estimators:
        match = next((name for name, other in alike.items() if _same_estimator(member, other.named_steps["model"])),
                     None)
        if match is None:
            return None
        members.append(match)
    return members


def cross_validate_candidates(pipelines: Mapping[str, Pipeline], X: Any, y: np.ndarray, folds: int,
                              repeats: int, random_state: int) -> dict[str, CrossValidation]:
    """``cross_validate`` of every candidate pipeline on the same folds. A soft vote of other
    candidates (``soft_vote``) is not fitted again: its out-of-fold probabilities are the mean
    of its members' on each fold, which is what its own fit would give, bit for bit (the same
    members, fitted on the same rows; ``VotingClassifier`` averages their probabilities). That
    halves the nested cross-validation's fits with the default candidates."""
    votes = {name: _vote_members(pipe, {n: p for n, p in pipelines.items() if n != name})
             for name, pipe in pipelines.items()}
    derived = {name: m for name, m in votes.items() if m is not None and all(votes[x] is None for x in m)}
    cvs = {name: cross_validate(pipe, X, y, folds, repeats, random_state)
           for name, pipe in pipelines.items() if name not in derived}
    for name, member_names in derived.items():
        members = [cvs[m] for m in member_names]
        oof = np.mean([m.oof for m in members], axis=0)
        fold = members[0].fold
        scores = [ranking_scores(y[fold[i // folds] == i % folds], oof[i // folds, fold[i // folds] == i % folds])
                  for i in range(folds * repeats)]
        cvs[name] = CrossValidation(oof, fold.copy(), scores)
    return {name: cvs[name] for name in pipelines}


def summarize(scores: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of each score over the folds."""
    return {
        metric: {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
        for metric, values in ((m, [s[m] for s in scores]) for m in scores[0])
    }


# -- selection -------------------------------------------------------------------------------

def _complexity(name: str) -> int:
    return REGISTRY[name].complexity if name in REGISTRY else len(REGISTRY) + 1


def select_candidate(cvs: Mapping[str, CrossValidation], y: np.ndarray, thresholds: Mapping[str, float],
                     metric: str = "specificity", malignant_thresholds: Mapping[str, float] | None = None
                     ) -> dict[str, Any]:
    """The simplest candidate within one standard error of the best, on paired fold differences.

    Every candidate is scored on the same folds, so the comparison with the best candidate is
    made fold by fold: the standard error is the sd of the per-fold differences over the square
    root of the folds per repeat (repeats reuse the same rows, so they add no independent
    evidence). ``metric`` ``specificity`` is read at each candidate's own threshold
    (``thresholds``), ``referral`` between it and its own malignant threshold
    (``malignant_thresholds``); the threshold-free scores need none. Ties rank by mean ROC AUC.

    Returns:
        ``winner``, ``best``, ``rule``, ``metric``, ``means`` (each candidate's mean),
        ``margins`` (the standard error of each candidate's paired difference),
        ``within_margin`` and ``ranking`` (best first).
    """
    if metric not in SELECTION_METRICS:
        raise ParameterError(f"selection metric {metric!r} is not one of {', '.join(SELECTION_METRICS)}")
    sign = 1 if metric in LOWER_IS_BETTER else -1
    upper = malignant_thresholds or {}
    values = {n: cv.fold_values(y, metric, thresholds.get(n), upper.get(n)) for n, cv in cvs.items()}
    auc = {n: float(np.mean(cv.fold_values(y, "roc_auc"))) for n, cv in cvs.items()}
    means = {n: float(v.mean()) for n, v in values.items()}
    ranking = sorted(cvs, key=lambda n: (round(sign * means[n], 12), -auc[n], _complexity(n)))
    best = ranking[0]
    folds = next(iter(cvs.values())).folds
    margins, within = {}, []
    for n in ranking:
        worse_by = sign * (values[n] - values[best])  # > 0 where n is worse than the best
        margins[n] = float(np.std(worse_by, ddof=1) / math.sqrt(folds)) if len(worse_by) > 1 else 0.0
        if worse_by.mean() <= margins[n] + 1e-12:
            within.append(n)
    winner = min(within, key=lambda n: (_complexity(n), ranking.index(n)))
    return {"winner": winner, "best": best, "rule": "one standard error of the paired fold differences, "
            "simplest first", "metric": metric, "means": means, "roc_auc": auc, "margins": margins,
            "within_margin": within, "ranking": ranking}


def choose_model(cvs: Mapping[str, CrossValidation], y: np.ndarray, *, metric: str, target_sensitivity: float,
                 rule: str, confidence: float, target_malignant_specificity: float) -> dict[str, Any]:
    """Each candidate's operating point, then the selection, then the winner's second threshold
    (the three-way call's): the one implementation that the DAG's ``select_model`` and every
    fold of the nested cross-validation use.

    Returns:
        ``{"selection": ..., "threshold": the winner's choose_threshold, "thresholds": every
        candidate's threshold, "triage": the winner's malignant_threshold}``
    """
    points = {n: choose_threshold(y, cv.oof, target_sensitivity, rule, confidence) for n, cv in cvs.items()}
    triage = {n: malignant_threshold(y, cv.oof, target_malignant_specificity, lower=points[n]["threshold"])
              for n, cv in cvs.items()}
    selection = select_candidate(cvs, y, {n: p["threshold"] for n, p in points.items()}, metric,
                                 {n: t["threshold"] for n, t in triage.items()})
    winner = selection["winner"]
    return {"selection": selection, "threshold": points[winner],
            "thresholds": {n: p["threshold"] for n, p in points.items()}, "triage": triage[winner]}


# -- the procedure ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Procedure:
    """The settings of the training procedure (``[selection]``; ``random_state`` of the run)."""

    cv_folds: int
    cv_repeats: int
    metric: str
    target_sensitivity: float
    rule: str
    confidence: float
    random_state: int
    target_malignant_specificity: float

    @classmethod
    def of(cls, selection: Any, random_state: int) -> Procedure:
        """The procedure of the ``[selection]`` settings (``etl.settings.SelectionSettings``),
        seeded by ``random_state``."""
        return cls(selection.cv_folds, selection.cv_repeats, selection.metric, selection.target_sensitivity,
                   selection.rule, selection.threshold_confidence, random_state,
                   selection.target_malignant_specificity)


def run_procedure(train: pd.DataFrame, candidates: Mapping[str, Mapping[str, Any]], procedure: Procedure
                  ) -> tuple[Pipeline, dict[str, Any], dict[str, CrossValidation]]:
    """The whole procedure on raw rows ``train``: every candidate cross-validated, the selection
    and operating point, the winner refitted (with its preprocessing) on all of ``train``.

    Returns:
        ``(fitted pipeline, choose_model's record, each candidate's CrossValidation)``
    """
    X, y = features_and_labels(train)
    cvs = cross_validate_candidates({name: make_pipeline(name, params, procedure.random_state)
                                     for name, params in candidates.items()},
                                    X, y, procedure.cv_folds, procedure.cv_repeats, procedure.random_state)
    choice = choose_model(cvs, y, metric=procedure.metric, target_sensitivity=procedure.target_sensitivity,
                          rule=procedure.rule, confidence=procedure.confidence,
                          target_malignant_specificity=procedure.target_malignant_specificity)
    winner = choice["selection"]["winner"]
    model = make_pipeline(winner, candidates[winner], procedure.random_state).fit(X, y)
    return model, choice, cvs
