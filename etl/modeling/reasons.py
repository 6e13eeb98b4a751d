"""The reasons behind a case's call: how much each feature moved the case's score away from a
reference case, for every candidate, and the top ``TOP`` of them as readable lines.

**The score** is the model's log-odds of malignancy, ``log(p / (1 - p))``: both thresholds of the
call are thresholds on it. **The reference case** is the average training case: every feature at
its training mean, where the release's standard scaler puts 0. A case's *contributions* ``c_j``
(one per feature, in log-odds) add up to its score minus the reference's score, so they account
for the whole distance; ``c_j > 0`` pushes towards malignant.

They are path attributions (Aumann-Shapley: a feature's contribution is what the score gains
along a path from the reference to the case while that feature moves), exact for each model's
own form and as cheap as scoring it once more:

- **logistic regression** (``LogisticRegression``): the score is linear, and ``c_j = w_j z_j``
  (its coefficient times the case's scaled value): the exact linear contributions, the same as
  any Shapley method gives a linear model.
- **RBF-kernel SVM** (an ``SVC`` behind Platt scaling): the score is ``-(a d(z) + b)`` with
  ``d(z) = sum_i alpha_i exp(-gamma ||s_i - z||^2) + rho``. Each support vector's term moves
  with its squared distance, a sum over features, so the term's change from the reference to the
  case is split among the features in proportion to each one's change of that sum (the straight
  path in the exponent's additive parts); summed over support vectors this is two matrix
  products, the cost of one more kernel evaluation.
- **a vote** of such models (the soft vote, or calibration folds averaged): each member's
  contributions, weighted by how much the vote's log-odds moves with that member's log-odds along
  the straight path from the reference (a one-dimensional integral per case, Gauss-Legendre).
- **any other model** (the tree candidates, not enabled as shipped): the features move from the
  reference to the case one at a time, in column order and in reverse, and each feature gets the
  mean of its two steps (``2 x features`` more predictions: slower, still exact in sum).

A listed reason says where the case's value sits among the training rows (its percentile, from
the quantiles ``etl.data.scope`` keeps in the release). Tested against the logistic regression's
exact contributions, the sum for every candidate, and the direction of every listed feature
(setting it to its reference value moves the score against its contribution) in
``tests/etl/modeling/test_reasons.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Reasons listed per case.
TOP = 3
#: The predictions' reason columns, ``reason_1`` (the largest) to ``reason_3``.
REASON_COLUMNS = tuple(f"reason_{k}" for k in range(1, TOP + 1))
#: Probabilities are kept inside (EPS, 1 - EPS) before their log-odds are taken.
EPS = 1e-12
#: Rows per block of the kernel computation (bounds the memory at 200k rows).
BLOCK = 20_000
#: Gauss-Legendre nodes of a vote's path integral (exact for polynomials of degree 31; the
#: integrand is smooth: the error is far below the log-odds' printed precision).
NODES = 16
#: Contributions smaller than this (log-odds) are not listed as reasons.
SMALLEST = 0.01


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(x)


@dataclass
class Attribution:
    """A model's log-odds on the cases, split among the features (``contributions``, summing to
    ``score - reference``), and ``without(rows, features)``: the log-odds of those rows with that
    feature (one per row) set to its reference value."""

    contributions: np.ndarray
    score: np.ndarray
    reference: float
    without: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _linear(model: Any, z: np.ndarray) -> Attribution:
    w = np.asarray(model.coef_, dtype=float).ravel()
    b = float(np.ravel(model.intercept_)[0])
    c = z * w
    score = c.sum(axis=1) + b
    return Attribution(c, score, b, lambda rows, j: score[rows] - c[rows, j])


def _rbf_svm(svc: Any, a: float, b: float, z: np.ndarray) -> Attribution:
    """The log-odds ``-(a d(z) + b)``, ``d`` an RBF SVC's decision function (positive towards
    class 1), split among the features."""
    from scipy.special import exprel

    s = np.asarray(svc.support_vectors_, dtype=float)
    alpha = np.asarray(svc.dual_coef_, dtype=float).ravel()
    gamma, rho = float(svc._gamma), float(np.ravel(svc.intercept_)[0])
    k_ref = np.exp(-gamma * np.einsum("ij,ij->i", s, s))  # the reference case is z = 0
    contributions, d = np.empty_like(z), np.empty(len(z))
    kernel = np.empty((len(z), len(s)))
    for start in range(0, len(z), BLOCK):
        x = z[start:start + BLOCK]
        change = np.einsum("ij,ij->i", x, x)[:, None] - 2.0 * (x @ s.T)  # ||s_i - x||^2 - ||s_i||^2
        kernel[start:start + BLOCK] = k_ref * np.exp(-gamma * change)
        d[start:start + BLOCK] = kernel[start:start + BLOCK] @ alpha + rho
        # Each support vector's change of term per unit change of its squared distance (stable at
        # no change: exprel(0) = 1), split by each feature's part of that change, x_k^2 - 2 s_ik x_k.
        weight = alpha * (-gamma) * k_ref * exprel(-gamma * change)
        contributions[start:start + BLOCK] = x * x * weight.sum(axis=1)[:, None] - 2.0 * x * (weight @ s)

    def without(rows: np.ndarray, j: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows))
        for start in range(0, len(rows), BLOCK):
            r, f = rows[start:start + BLOCK], j[start:start + BLOCK]
            x = z[r, f][:, None]  # feature f of row r to 0 changes each squared distance by 2 s x - x^2
            moved = kernel[r] * np.exp(-gamma * (2.0 * s[:, f].T * x - x * x))
            out[start:start + BLOCK] = -(a * (moved @ alpha + rho) + b)
        return out

    return Attribution(-a * contributions, -(a * d + b), -(a * float(alpha @ k_ref + rho) + b), without)


def _vote(members: Sequence[Attribution]) -> Attribution:
    """The log-odds of the mean of the members' probabilities, attributed along the straight path
    of the members' log-odds from the reference to the case."""
    m = len(members)
    reference = np.array([member.reference for member in members])
    delta = np.stack([member.score - member.reference for member in members])  # (members, rows)
    nodes, weights = np.polynomial.legendre.leggauss(NODES)
    gain = np.zeros_like(delta)
    for t, w in zip((nodes + 1) / 2, weights / 2, strict=True):
        p = _sigmoid(reference[:, None] + t * delta)  # each member's probability on the path
        mean = p.mean(axis=0)
        gain += w * (p * (1 - p) / m) / np.clip(mean * (1 - mean), EPS, None)

    def vote(scores: Sequence[np.ndarray]) -> np.ndarray:
        return _logit(np.mean([_sigmoid(x) for x in scores], axis=0))

    score, ref = vote([member.score for member in members]), float(vote([np.array([r]) for r in reference])[0])
    # The quadrature is exact to rounding where the path is smooth; a member's steep sigmoid
    # (log-odds far from 0) leaves a small remainder, shared out so the sum is exact.
    total = (gain * delta).sum(axis=0)
    gain *= np.where(np.abs(total) > 1e-9, (score - ref) / np.where(total == 0, 1, total), 1.0)
    contributions = sum(g[:, None] * member.contributions for g, member in zip(gain, members, strict=True))
    return Attribution(contributions, score, ref,
                       lambda rows, j: vote([member.without(rows, j) for member in members]))


def _coordinate_path(model: Any, z: np.ndarray) -> Attribution:
    """Any model: each feature's step on the path that moves one feature at a time from the
    reference to the case, in column order and in reverse, averaged."""
    names = getattr(model, "feature_names_in_", None)

    def log_odds(x: np.ndarray) -> np.ndarray:
        x = pd.DataFrame(x, columns=names) if names is not None else x
        return _logit(model.predict_proba(x)[:, list(model.classes_).index(1)])

    n, f = z.shape
    score, ref = log_odds(z), float(log_odds(np.zeros((1, f)))[0])
    contributions = np.zeros_like(z)
    for order in (range(f), range(f - 1, -1, -1)):
        point, previous = np.zeros_like(z), np.full(n, ref)
        for j in order:
            point[:, j] = z[:, j]
            now = log_odds(point)
            contributions[:, j] += (now - previous) / 2
            previous = now

    def without(rows: np.ndarray, j: np.ndarray) -> np.ndarray:
        x = z[rows].copy()
        x[np.arange(len(rows)), j] = 0.0
        return log_odds(x)

    return Attribution(contributions, score, ref, without)


def _attribute(model: Any, z: np.ndarray) -> Attribution:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    if isinstance(model, LogisticRegression) and len(model.classes_) == 2:
        return _linear(model, z)
    if isinstance(model, VotingClassifier) and model.voting == "soft" and model.weights is None:
        return _vote([_attribute(member, z) for member in model.estimators_])
    if isinstance(model, CalibratedClassifierCV) and model.method == "sigmoid":
        members = []
        for fitted in model.calibrated_classifiers_:
            svc, calibrator = fitted.estimator, fitted.calibrators[0]
            if not (isinstance(svc, SVC) and svc.kernel == "rbf"):
                return _coordinate_path(model, z)
            members.append(_rbf_svm(svc, float(calibrator.a_), float(calibrator.b_), z))
        return members[0] if len(members) == 1 else _vote(members)
    return _coordinate_path(model, z)


def attribute(model: Any, z: Any) -> Attribution:
    """Each case's contributions to its log-odds of malignancy, from the reference case.

    Args:
        model: a fitted candidate (``etl.modeling.models``), as the release keeps it.
        z: the cases as the model sees them (after the release's preprocessing), ``(n, features)``.

    Returns:
        an ``Attribution``: ``contributions[i].sum()`` equals ``score[i] - reference`` (to rounding).
    """
    return _attribute(model, np.ascontiguousarray(z, dtype=float))


def listed(attribution: Attribution) -> np.ndarray:
    """Each case's reasons: the ``TOP`` features of largest contribution (at least ``SMALLEST``
    in size) whose reference value moves the score against their contribution, largest first;
    ``-1`` where fewer qualify. A feature whose effect on the case turns over when it alone goes
    back to the reference (its contribution comes from interactions) is passed over."""
    c = attribution.contributions
    n = len(c)
    order = np.argsort(-np.abs(c), axis=1, kind="stable")
    chosen, found = np.full((n, TOP), -1), np.zeros(n, dtype=int)
    for k in range(c.shape[1]):
        rows = np.flatnonzero(found < TOP)
        j = order[rows, k]
        part = c[rows, j]
        big = np.abs(part) >= SMALLEST
        rows, j, part = rows[big], j[big], part[big]
        if not len(rows):
            break
        moved = attribution.without(rows, j) - attribution.score[rows]
        agree = np.sign(moved) == -np.sign(part)
        rows, j = rows[agree], j[agree]
        chosen[rows, found[rows]] = j
        found[rows] += 1
    return chosen


def percentiles(quantiles: Any, feature: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Where each value sits among the training rows of its feature, 0-100: ``quantiles`` are the
    training quantiles 0, 1, ..., 100 of every feature (``(101, features)``, kept in the release
    by ``etl.data.scope``), interpolated; a value tied with several quantiles gets the middle."""
    q = np.asarray(quantiles, dtype=float)
    grid = np.linspace(0.0, 100.0, q.shape[0])
    out = np.full(len(values), np.nan)
    for j in np.unique(feature[feature >= 0]):
        at = feature == j
        low = np.interp(values[at], q[:, j], grid)
        high = 100.0 - np.interp(-values[at], -q[::-1, j], grid)
        out[at] = (low + high) / 2
    return out


def reasons(attribution: Attribution, raw: np.ndarray, features: Sequence[str],
            quantiles: Any | None) -> pd.DataFrame:
    """The ``REASON_COLUMNS`` of each case (``listed``), each a line ``feature=value (pNN) +c.cc``:
    the feature, the case's raw value (``missing``: imputed with the training median), its
    training percentile (``p?`` when the release keeps no quantiles or the value is missing), and
    its contribution in log-odds (``+``: towards malignant); empty when fewer features qualify."""
    chosen = listed(attribution)
    rows = np.arange(len(chosen))
    names = [*features, ""]
    columns = {}
    for k, column in enumerate(REASON_COLUMNS):
        j = chosen[:, k]
        value, part = raw[rows, j], attribution.contributions[rows, j]
        where = (percentiles(quantiles, j, value) if quantiles is not None else np.full(len(j), np.nan))
        columns[column] = ["" if f < 0 else
                           f"{names[f]}={'missing' if v != v else f'{v:.4g}'} ({'p?' if w != w else f'p{w:.0f}'}) {c:+.2f}"
                           for f, v, w, c in zip(j.tolist(), value.tolist(), where.tolist(), part.tolist(), strict=True)]
    return pd.DataFrame(columns)
