"""Small-sample statistics the pipeline's numbers rest on (SciPy's distributions underneath).

- ``clopper_pearson``: the exact binomial interval of a proportion (sensitivity, specificity,
  precision, accuracy). It covers the true value at least as often as its level says, for any
  sample size, and is never zero-width: catching 42 of 42 malignant tumours gives [0.916, 1].
- ``proportions``: shares with their exact intervals, by name (the pooled estimates, the
  realized figures of confirmed outcomes).
- ``lower_bound``: the one-sided version, used to choose an operating point whose promised
  sensitivity holds on new patients, not just on the rows it was chosen on.
- ``noninferior_paired``: whether one classifier is shown to be no worse than another, on the
  same rows, by more than a margin (exact test on the rows where they disagree).
- ``delong``: DeLong's paired test of two ROC AUCs on the same rows (with a margin:
  non-inferiority).
- ``calibration_table``: predicted risk bands against the observed share of malignant tumours
  in each, with exact intervals (the model card; the monitoring of confirmed outcomes).
- ``upper_bound``: the one-sided exact upper bound (a realized sensitivity shown below its
  target: the outcomes' alarm); ``spiegelhalter``: Spiegelhalter's z test of calibration.
- ``net_benefit``: the decision curve (Vickers & Elkin, 2006): the model's net benefit at each
  threshold probability against treating everyone and treating no one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import stats


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval of a proportion ``k`` of ``n``."""
    if n <= 0:
        return 0.0, 1.0
    tail = (1 - level) / 2
    lo = float(stats.beta.ppf(tail, k, n - k + 1)) if k > 0 else 0.0
    hi = float(stats.beta.ppf(1 - tail, k + 1, n - k)) if k < n else 1.0
    return lo, hi


def proportions(counts: Iterable[tuple[str, int, int]], repeats: int = 1,
                none_when_empty: bool = False) -> dict[str, Any]:
    """Each ``(name, k, n)`` as ``name``: ``k / n``, and ``name_ci95``: its exact 95 % interval
    (``clopper_pearson``), taken at ``n / repeats`` patients when the ``n`` scores rescored each
    patient ``repeats`` times (the repeats add no new patients). With ``n`` 0: 0 and [0, 1], or
    None and None (``none_when_empty``)."""
    out: dict[str, Any] = {}
    for name, k, n in counts:
        if n:
            out[name], out[f"{name}_ci95"] = k / n, list(clopper_pearson(k / repeats, n / repeats))
        else:
            out[name], out[f"{name}_ci95"] = (None, None) if none_when_empty else (0.0, [0.0, 1.0])
    return out


def lower_bound(k: int, n: int, confidence: float) -> float:
    """One-sided exact lower confidence bound of a proportion ``k`` of ``n`` at ``confidence``
    (the true proportion is at least this with that confidence); ``k / n`` when ``confidence``
    is 0."""
    if confidence <= 0:
        return k / n
    return float(stats.beta.ppf(1 - confidence, k, n - k + 1)) if k > 0 else 0.0


def noninferior_paired(old_right: np.ndarray, new_right: np.ndarray, margin: float) -> dict[str, Any]:
    """Exact conditional test that the new classifier is no worse than the old one, on the same
    ``n`` rows, by ``margin`` or more (a share of the rows).

    Only the rows where they disagree carry evidence: ``only_old`` (old right, new wrong) and
    ``only_new``, ``m`` in all. Given ``m``, ``only_old`` is binomial with ``pi``; the new model
    is worse by ``m (2 pi - 1) / n``, so "worse by at least ``margin``" is ``pi >= pi0 = (1 +
    margin n / m) / 2``. The p-value is ``P(only_old or fewer | m, pi0)``; when ``pi0 > 1`` (so
    few disagreements that the new model cannot be worse by the margin on these rows) it is 0.

    Returns:
        ``only_old``, ``only_new``, ``rows``, ``difference`` (new minus old share right),
        ``margin`` and ``p_value`` (small: shown non-inferior).
    """
    only_old = int(np.sum(old_right & ~new_right))
    only_new = int(np.sum(new_right & ~old_right))
    n, m = len(old_right), only_old + only_new
    pi0 = (1 + margin * n / m) / 2 if m else math.inf
    p = 0.0 if pi0 > 1 else float(stats.binom.cdf(only_old, m, pi0))
    return {"only_old": only_old, "only_new": only_new, "rows": n,
            "difference": (only_new - only_old) / n if n else 0.0, "margin": margin, "p_value": p}


def _midrank(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, method="average")


def delong(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, margin: float = 0.0) -> dict[str, float]:
    """DeLong's test of ROC AUC(B) < ROC AUC(A) - ``margin``, both scored on the same rows
    (labels ``y``).

    Returns:
        ``auc_a``, ``auc_b``, ``difference`` (B - A), its standard error ``se`` and the one-sided
        ``p_value`` of B being worse by at least ``margin``. With ``margin`` 0 a small p-value
        says B is worse; with a margin, a small p-value says B is *not* worse by the margin
        (non-inferiority: ``1 - p`` of the other direction). With no variance (e.g. both perfect)
        the difference itself decides.
    """
    y = np.asarray(y) == 1
    m, n = int(y.sum()), int((~y).sum())
    aucs, v10, v01 = [], [], []
    for p in (np.asarray(p_a, float), np.asarray(p_b, float)):
        pos, neg = p[y], p[~y]
        all_ranks = _midrank(np.r_[pos, neg])
        tx, ty = all_ranks[:m] - _midrank(pos), all_ranks[m:] - _midrank(neg)
        aucs.append((all_ranks[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append(1 - ty / m)  # per negative: share of positives above it
        v01.append(tx / n)      # per positive: share of negatives below it
    s10, s01 = np.cov(np.vstack(v10)), np.cov(np.vstack(v01))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / n + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / m
    diff = float(aucs[1] - aucs[0])
    se = math.sqrt(var) if var > 0 else 0.0
    if margin:  # H0: B worse by margin or more; small p: shown not worse by the margin
        p_value = float(stats.norm.sf((diff + margin) / se)) if se > 0 else (0.0 if diff + margin > 0 else 1.0)
    else:
        p_value = float(stats.norm.cdf(diff / se)) if se > 0 else (1.0 if diff >= 0 else 0.0)
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": diff, "se": se,
            "p_value": p_value}


def upper_bound(k: int, n: int, confidence: float) -> float:
    """One-sided exact upper confidence bound of a proportion ``k`` of ``n`` at ``confidence``
    (the true proportion is at most this with that confidence); 1 for ``n`` = 0."""
    if n <= 0 or k >= n:
        return 1.0
    return float(stats.beta.ppf(confidence, k + 1, n - k))


def spiegelhalter(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Spiegelhalter's (1986) z test that predicted probabilities ``p`` are calibrated for the
    outcomes ``y``: ``z = sum((y - p)(1 - 2p)) / sqrt(sum((1 - 2p)^2 p (1 - p)))``, standard
    normal when they are; a small two-sided ``p_value`` says the risks no longer match what
    happens (too high or too low, or too confident)."""
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), 1e-12, 1 - 1e-12)
    var = float(np.sum((1 - 2 * p) ** 2 * p * (1 - p)))
    if len(y) == 0 or var <= 0:
        return {"z": 0.0, "p_value": 1.0, "cases": len(y)}
    z = float(np.sum((y - p) * (1 - 2 * p)) / math.sqrt(var))
    return {"z": z, "p_value": float(2 * stats.norm.sf(abs(z))), "cases": len(y)}


#: The predicted-risk bands of a calibration table (upper edges; the last band ends at 1).
RISK_BANDS: tuple[float, ...] = (0.0, 0.05, 0.2, 0.5, 0.8, 0.95, 1.0)
#: The threshold probabilities of a decision curve: where a biopsy is worth it, from "at almost
#: any risk" to "only at even odds".
DECISION_THRESHOLDS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)


def calibration_table(y: np.ndarray, p: np.ndarray, bands: tuple[float, ...] = RISK_BANDS,
                      repeats: int = 1) -> list[dict[str, Any]]:
    """Predicted risk against what happened: for each band of predicted probability, the cases
    in it, their mean predicted risk and the observed share of malignant tumours with its exact
    95 % interval (bands with no case are left out).

    With ``repeats`` > 1 the rows score every patient ``repeats`` times (nested CV's repeated
    outer folds): the interval is taken at the number of patients, as in
    ``etl.modeling.nested.pooled_counts``.
    """
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    rows = []
    for lo, hi in itertools.pairwise(bands):
        inside = (p >= lo) & ((p < hi) if hi < bands[-1] else (p <= hi))
        n = int(inside.sum())
        if not n:
            continue
        k = int(y[inside].sum())
        rows.append({"band": [lo, hi], "cases": n, "malignant": k, "mean_predicted": float(p[inside].mean()),
                     "observed": k / n, "observed_ci95": list(clopper_pearson(k / repeats, n / repeats))})
    return rows


def net_benefit(y: np.ndarray, p: np.ndarray, thresholds: tuple[float, ...] = DECISION_THRESHOLDS
                ) -> list[dict[str, float]]:
    """The decision curve: at each threshold probability ``t`` (the risk at which a person would
    choose a biopsy), treating those with predicted risk >= ``t`` gains
    ``TP/n - FP/n * t / (1 - t)`` (net true positives per patient, a false positive weighed by
    the odds of ``t``). Beside it, treating everyone (``prevalence - (1 - prevalence) t/(1-t)``)
    and treating no one (0). A model is useful at ``t`` where it beats both."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    n, prevalence = len(y), float(y.mean()) if len(y) else 0.0
    curve = []
    for t in thresholds:
        odds = t / (1 - t)
        treated = p >= t
        tp, fp = int(np.sum(treated & (y == 1))), int(np.sum(treated & (y == 0)))
        curve.append({"threshold": t, "model": (tp - fp * odds) / n if n else 0.0,
                      "treat_all": prevalence - (1 - prevalence) * odds, "treat_none": 0.0})
    return curve
