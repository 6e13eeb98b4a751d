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
4. **Select** (``select_candidate``): by the metric the pipeline promises, specificity at each
   candidate's own threshold, with a one-standard-error rule on the *paired* per-fold
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
from collections.abc import Iterable, Mapping
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

from etl.errors import ParameterError
from etl.models import REGISTRY, make_estimator
from etl.schema import BENIGN, FEATURE_COLUMNS, ID_COLUMN, LABEL_CODES, MALIGNANT, SCORES, TARGET_COLUMN

logger = logging.getLogger(__name__)

#: Metrics a selection may rank by. ``specificity``: at each candidate's own operating point.
SELECTION_METRICS = ("specificity", "roc_auc", "pr_auc", "brier")
LOWER_IS_BETTER = {"brier"}
#: Operating-point rules, and the guarantee each gives (``guarantee``).
RULES = ("risk_control", "exact_bound")


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



def score_rows(release: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """``predict_frame`` of a release (``etl.releases.Release``: its probabilities and
    threshold) on ``rows``, with a ``release`` column naming it: what ``etl.predict`` and the
    scoring DAG write."""
    return predict_frame(release.probabilities(rows), rows[ID_COLUMN].to_numpy(), release.threshold).assign(
        release=release.name)

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

    def fold_values(self, y: np.ndarray, metric: str, threshold: float | None = None) -> np.ndarray:
        """``metric`` on each fold's held-out rows (repeat by repeat): a threshold-free score,
        or ``specificity`` at ``threshold``."""
        if metric != "specificity":
            return np.array([s[metric] for s in self.scores])
        values = []
        for r in range(self.repeats):
            for f in range(self.folds):
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


# -- operating point -------------------------------------------------------------------------

def allowed_misses(malignant: int, target_sensitivity: float, rule: str, confidence: float = 0.0) -> int | None:
    """How many of ``malignant`` out-of-fold malignant rows a threshold may miss under ``rule``;
    None when even missing none does not give the guarantee (too few rows)."""
    from etl.stats import lower_bound

    n, alpha = malignant, 1 - target_sensitivity
    if rule == "risk_control":
        k = math.floor(alpha * (n + 1) - 1 + 1e-9)
        return k if k >= 0 else None
    if rule == "exact_bound":
        # The fewest caught whose exact lower bound reaches the target: the bound grows with the
        # count caught, so a bisection finds it (17 bounds at 64k malignant rows, not 60k).
        def reaches(caught: int) -> bool:
            return lower_bound(caught, n, confidence) >= target_sensitivity - 1e-12

        if not reaches(n):
            return None
        low, high = 0, n
        while low < high:
            mid = (low + high) // 2
            low, high = (low, mid) if reaches(mid) else (mid + 1, high)
        return n - low
    if rule == "none":
        return math.floor(alpha * n + 1e-9)
    raise ParameterError(f"threshold rule {rule!r} is not one of {', '.join(RULES)}")


def guarantee(rule: str, target_sensitivity: float, confidence: float = 0.0) -> str:
    """The one sentence that says what the operating point promises."""
    if rule == "risk_control":
        return (f"Expected sensitivity on new patients of at least {target_sensitivity:.0%} "
                "(conformal risk control on the out-of-fold malignant cases).")
    if rule == "exact_bound":
        return (f"Sensitivity on new patients of at least {target_sensitivity:.0%} with probability "
                f"{confidence:.0%} (exact one-sided bound on the out-of-fold malignant cases).")
    raise ParameterError(f"threshold rule {rule!r} is not one of {', '.join(RULES)}")


def _threshold_at(scores: np.ndarray, y: np.ndarray, misses: int) -> float:
    """The threshold that misses ``misses`` malignant rows of ``scores``: halfway between the
    highest score it may miss and the lowest it must catch (every threshold in that gap misses
    the same rows; the midpoint leaves room on both sides)."""
    malignant = np.sort(scores[y == 1])
    return float((malignant[misses - 1] + malignant[misses]) / 2 if misses else malignant[0])


def _rates(oof: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    oof = np.atleast_2d(oof)
    return {"sensitivity": float(np.mean(oof[:, y == 1] >= threshold)),
            "specificity": float(np.mean(oof[:, y == 0] < threshold))}


def choose_threshold(y: np.ndarray, oof: np.ndarray, target_sensitivity: float, rule: str = "risk_control",
                     confidence: float = 0.0) -> dict[str, Any]:
    """The operating point of ``rule`` on out-of-fold probabilities ``oof`` (one row per repeat,
    averaged per row before the threshold is read).

    Returns:
        ``threshold``, ``rule``, ``guarantee`` (the sentence), ``target_sensitivity``,
        ``confidence``, ``malignant`` (out-of-fold malignant rows per repeat), ``allowed_misses``,
        the out-of-fold ``sensitivity`` / ``specificity`` at the threshold (over the repeats),
        ``reachable`` (False: too few malignant rows for the guarantee; the threshold then
        catches every one), ``threshold_per_repeat`` (each repeat's own, for the record); and
        ``alternatives``: the threshold and
        out-of-fold rates of the other rule and of no margin at all (``none``: the target
        met exactly on these rows), the price of each guarantee in specificity.
    """
    if not 0 < target_sensitivity < 1:
        raise ParameterError(f"target_sensitivity must be in (0, 1), got {target_sensitivity}")
    if not 0 <= confidence < 1:
        raise ParameterError(f"threshold_confidence must be in [0, 1), got {confidence}")
    oof = np.atleast_2d(np.asarray(oof, dtype=float))
    mean = oof.mean(axis=0)  # each row's out-of-fold probability, averaged over the repeats
    n = int(np.sum(y == 1))
    if n == 0:
        raise ParameterError("no malignant rows to choose a threshold on")

    def point(r: str) -> dict[str, Any]:
        k = allowed_misses(n, target_sensitivity, r, confidence)
        t = _threshold_at(mean, y, k if k is not None else 0)
        return {"threshold": t, "allowed_misses": k if k is not None else 0, "reachable": k is not None,
                **_rates(mean, y, t)}

    chosen = point(rule)
    k = chosen["allowed_misses"]
    return {
        **chosen, "rule": rule, "guarantee": guarantee(rule, target_sensitivity, confidence),
        "target_sensitivity": target_sensitivity, "confidence": confidence if rule == "exact_bound" else None,
        "malignant": n,
        "threshold_per_repeat": [_threshold_at(row, y, k) for row in oof],
        "alternatives": {r: point(r) for r in (*RULES, "none") if r != rule},
    }


# -- selection -------------------------------------------------------------------------------

def _complexity(name: str) -> int:
    return REGISTRY[name].complexity if name in REGISTRY else len(REGISTRY) + 1


def select_candidate(cvs: Mapping[str, CrossValidation], y: np.ndarray, thresholds: Mapping[str, float],
                     metric: str = "specificity") -> dict[str, Any]:
    """The simplest candidate within one standard error of the best, on paired fold differences.

    Every candidate is scored on the same folds, so the comparison with the best candidate is
    made fold by fold: the standard error is the sd of the per-fold differences over the square
    root of the folds per repeat (repeats reuse the same rows, so they add no independent
    evidence). ``metric`` ``specificity`` is read at each candidate's own threshold
    (``thresholds``); the threshold-free scores need none. Ties rank by mean ROC AUC.

    Returns:
        ``winner``, ``best``, ``rule``, ``metric``, ``means`` (each candidate's mean),
        ``margins`` (the standard error of each candidate's paired difference),
        ``within_margin`` and ``ranking`` (best first).
    """
    if metric not in SELECTION_METRICS:
        raise ParameterError(f"selection metric {metric!r} is not one of {', '.join(SELECTION_METRICS)}")
    sign = 1 if metric in LOWER_IS_BETTER else -1
    values = {n: cv.fold_values(y, metric, thresholds.get(n)) for n, cv in cvs.items()}
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
                 rule: str, confidence: float) -> dict[str, Any]:
    """Each candidate's operating point, then the selection: the one implementation that the
    DAG's ``select_model`` and every fold of the nested cross-validation use.

    Returns:
        ``{"selection": ..., "threshold": the winner's choose_threshold, "thresholds": every
        candidate's threshold}``
    """
    points = {n: choose_threshold(y, cv.oof, target_sensitivity, rule, confidence) for n, cv in cvs.items()}
    selection = select_candidate(cvs, y, {n: p["threshold"] for n, p in points.items()}, metric)
    return {"selection": selection, "threshold": points[selection["winner"]],
            "thresholds": {n: p["threshold"] for n, p in points.items()}}


# -- nested cross-validation -----------------------------------------------------------------

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
                          rule=procedure.rule, confidence=procedure.confidence)
    winner = choice["selection"]["winner"]
    model = make_pipeline(winner, candidates[winner], procedure.random_state).fit(X, y)
    return model, choice, cvs


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
    from etl.stats import clopper_pearson

    cm = {k: sum(f["scores"]["confusion_matrix"][k] for f in folds) for k in ("tp", "fn", "tn", "fp")}
    out: dict[str, Any] = {"confusion_matrix": cm, "malignant": cm["tp"] + cm["fn"], "benign": cm["tn"] + cm["fp"]}
    for name, k, n in (("sensitivity", cm["tp"], cm["tp"] + cm["fn"]), ("specificity", cm["tn"], cm["tn"] + cm["fp"]),
                       ("ppv", cm["tp"], cm["tp"] + cm["fp"])):
        out[name] = k / n if n else 0.0
        out[f"{name}_ci95"] = list(clopper_pearson(k / repeats, n / repeats)) if n else [0.0, 1.0]
    return out


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
        "scores": summary,
        **out_of_sample(folds, len(repeats)),
    }


def out_of_sample(folds: Iterable[Mapping[str, Any]], repeats: int = 1) -> dict[str, Any]:
    """What the outer folds' held-out probabilities say beyond the confusion matrix: the
    calibration table and the decision curve (``etl.stats``), pooled over every row scored; empty
    for fold records without their predictions."""
    from etl.stats import calibration_table, net_benefit

    folds = [f for f in folds if "predictions" in f]
    if not folds:
        return {}
    y = np.concatenate([f["predictions"]["malignant"] for f in folds]).astype(int)
    p = np.concatenate([f["predictions"]["probability"] for f in folds]).astype(float)
    return {"calibration": {"brier": float(np.mean((p - y) ** 2)), "bands": calibration_table(y, p, repeats=repeats)},
            "decision_curve": net_benefit(y, p)}
