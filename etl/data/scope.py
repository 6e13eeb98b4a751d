"""Whether the model may answer for a case at all: its scope, fitted on the raw training rows and
kept in the release (``manifest.json``'s ``scope``), and the check of each scored case.

A case is *out of scope*, and gets no probability and no call, when

- a feature is outside its **plausible range**: below 0 (every feature of the data set is a
  size, a count or a ratio of them: none is negative) or above ``RANGE_FACTOR`` times the largest
  value of the training rows (a value in another unit: areas in square micrometres, say); or
- it is **unlike the training rows**: its novelty score, the squared Mahalanobis distance of its
  robustly standardised features from the training rows (Ledoit-Wolf covariance), has a conformal
  p-value of at most ``alpha`` against the training rows' own scores, each computed out of fold
  (``FOLDS``-fold), so that a case drawn like the training rows is refused with probability at
  most ``alpha`` (``[scoring] novelty_alpha``; Vovk et al., split-conformal novelty detection).

Training refuses a negative value as a data error (``etl.data.contract``); the batch-level drift
test (``etl.data.drift``) stays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from etl.data.schema import FEATURE_COLUMNS

#: A value above this many times the largest training value of its feature is implausible.
RANGE_FACTOR = 10.0
#: Folds of the out-of-fold novelty scores the p-values are computed against.
FOLDS = 5
#: At most this many of them are kept (a random subset of the training rows' scores: the p-values
#: stay valid, exchangeability holding for any subset drawn independently of the scores; their
#: resolution, 1 / 2001, is far below any useful ``alpha``), so a release trained on 200k rows
#: keeps a manifest of the same size.
CALIBRATION = 2000
#: The novelty model is fitted on at most this many training rows (a random subset): its median,
#: IQR and covariance are as good from them, and a 200k-row training split costs no more.
FIT_ROWS = 20_000
#: The call of a case outside the scope.
OUT_OF_SCOPE = "out of scope"


def _standardise(x: np.ndarray, location: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (x - location) / scale


def _fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.covariance import LedoitWolf

    location = np.median(x, axis=0)
    q75, q25 = np.percentile(x, [75, 25], axis=0)
    scale = np.where(q75 - q25 > 0, q75 - q25, 1.0)
    precision = LedoitWolf().fit(_standardise(x, location, scale)).precision_
    return location, scale, precision


def _scores(x: np.ndarray, location: np.ndarray, scale: np.ndarray, precision: np.ndarray) -> np.ndarray:
    z = _standardise(x, location, scale)
    return np.einsum("ij,jk,ik->i", z, precision, z)


def _filled(rows: pd.DataFrame, medians: np.ndarray) -> np.ndarray:
    x = rows[list(FEATURE_COLUMNS)].to_numpy(dtype=float)
    return np.where(np.isnan(x), medians, x)


def _subset(scores: np.ndarray, random_state: int) -> np.ndarray:
    if len(scores) <= CALIBRATION:
        return scores
    return scores[np.random.default_rng(random_state + 1).choice(len(scores), CALIBRATION, replace=False)]


def fit_scope(rows: pd.DataFrame, random_state: int = 0) -> dict[str, Any]:
    """The scope of raw training ``rows``: each feature's plausible range, the novelty model and
    the training rows' out-of-fold novelty scores (sorted), JSON-ready."""
    raw = rows[list(FEATURE_COLUMNS)].to_numpy(dtype=float)
    medians = np.nanmedian(raw, axis=0)
    x = np.where(np.isnan(raw), medians, raw)
    if len(x) > FIT_ROWS:
        x = x[np.random.default_rng(random_state + 2).choice(len(x), FIT_ROWS, replace=False)]
    folds = np.random.default_rng(random_state).permutation(len(x)) % FOLDS
    calibration = np.empty(len(x))
    for k in range(FOLDS):
        calibration[folds == k] = _scores(x[folds == k], *_fit(x[folds != k]))
    location, scale, precision = _fit(x)
    return {
        "method": f"robust Mahalanobis distance (median, IQR, Ledoit-Wolf), conformal p-value against "
                  f"{FOLDS}-fold out-of-fold training scores; ranges [0, {RANGE_FACTOR:g} x training max]",
        "features": list(FEATURE_COLUMNS),
        "ranges": {c: [0.0, float(RANGE_FACTOR * np.nanmax(raw[:, i]))] for i, c in enumerate(FEATURE_COLUMNS)},
        "medians": medians.tolist(),
        "location": location.tolist(), "scale": scale.tolist(), "precision": precision.tolist(),
        "calibration": np.sort(_subset(calibration, random_state)).tolist(),
        # The training quantiles 0, 1, ..., 100 of every feature: where a case's value sits among
        # the training rows (etl.modeling.reasons.percentiles).
        "quantiles": np.nanquantile(raw, np.linspace(0.0, 1.0, 101), axis=0).tolist(),
    }


def check_scope(rows: pd.DataFrame, scope: dict[str, Any], alpha: float) -> pd.DataFrame:
    """Each row's novelty p-value and, when it is out of scope, why (one line; empty otherwise)."""
    x = _filled(rows, np.asarray(scope["medians"]))
    reasons = np.full(len(x), "", dtype=object)
    for i, column in enumerate(scope["features"]):
        low, high = scope["ranges"][column]
        values = x[:, i]
        for bad, word in ((values < low, "below"), (values > high, "above")):
            for row in np.flatnonzero(bad & (reasons == "")):
                reasons[row] = (f"{column} {values[row]:g} is {word} its plausible range [{low:g}, {high:g}] "
                                "(a negative size, or a value in another unit)")
    scores = _scores(x, np.asarray(scope["location"]), np.asarray(scope["scale"]), np.asarray(scope["precision"]))
    calibration = np.asarray(scope["calibration"])
    above = len(calibration) - np.searchsorted(calibration, scores, side="left")  # training scores >= each
    p = (above + 1) / (len(calibration) + 1)
    for row in np.flatnonzero((p <= alpha) & (reasons == "")):
        reasons[row] = (f"unlike the training rows: novelty p-value {p[row]:.4f} <= {alpha:g} "
                        f"(at most {alpha:.0%} of cases like the training rows are refused)")
    return pd.DataFrame({"novelty_p": p, "reason": reasons})
