"""The reasons behind each call (etl.modeling.reasons), checked against the models themselves:
the logistic regression's exact linear contributions, every candidate's score and reference, and
for every listed reason the direction the score moves when that feature goes back to its
reference value."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit

from etl.data.schema import FEATURE_COLUMNS
from etl.modeling.procedure import features_and_labels, make_pipeline, malignant_probability
from etl.modeling.reasons import REASON_COLUMNS, TOP, attribute, listed, percentiles, reasons

CANDIDATES = ("logistic_regression", "svm", "soft_vote", "random_forest")


@pytest.fixture(scope="module")
def fitted(shipped_csv):
    """Every candidate (and a tree model, through the generic path) fitted on 455 shipped rows,
    with the other 114 as the cases to explain (as the model sees them, and raw)."""
    X, y = features_and_labels(pd.read_csv(shipped_csv))
    out = {}
    for name in CANDIDATES:
        pipe = make_pipeline(name, {"n_estimators": 30} if name == "random_forest" else {}, 0)
        pipe.fit(X.iloc[:455], y[:455])
        out[name] = (pipe.named_steps["model"], pipe.named_steps["preprocess"].transform(X.iloc[455:]))
    return out, X.iloc[455:].to_numpy(), np.quantile(X.iloc[:455].to_numpy(), np.linspace(0, 1, 101), axis=0)


def test_the_logistic_regression_gets_its_exact_linear_contributions(fitted):
    models, _, _ = fitted
    model, z = models["logistic_regression"]
    a = attribute(model, z)
    w, b = model.coef_.ravel(), model.intercept_[0]
    assert a.contributions == pytest.approx(z.to_numpy() * w, abs=1e-12)  # coefficient x distance from the mean
    assert a.reference == pytest.approx(b) and a.score == pytest.approx(model.decision_function(z), abs=1e-9)


@pytest.mark.parametrize("name", CANDIDATES)
def test_the_contributions_account_for_the_distance_from_the_reference_case(fitted, name):
    """The score is the model's own log-odds; the reference's is the model's at the training
    means (z = 0); the contributions add up to the difference, case by case."""
    models, _, _ = fitted
    model, z = models[name]
    a = attribute(model, z)
    p = malignant_probability(model, z)
    fine = (p > 1e-9) & (p < 1 - 1e-9)  # where the probability still resolves the log-odds
    assert fine.sum() > 50
    assert a.score[fine] == pytest.approx(logit(p[fine]), abs=1e-6)
    zero = pd.DataFrame(np.zeros((1, z.shape[1])), columns=z.columns)
    assert a.reference == pytest.approx(logit(malignant_probability(model, zero))[0], abs=1e-6)
    assert a.contributions.sum(axis=1) == pytest.approx(a.score - a.reference, abs=1e-8)


@pytest.mark.parametrize("name", CANDIDATES)
def test_a_listed_feature_set_to_its_reference_value_moves_the_score_against_its_contribution(fitted, name):
    """For every case and every reason listed: the model's own probability with that one feature
    at the training mean is lower when the reason pushed towards malignant, higher when it pushed
    towards benign (strictly, where the probability resolves it)."""
    models, _, _ = fitted
    model, z = models[name]
    a = attribute(model, z)
    chosen = listed(a)
    assert (chosen[:, 0] >= 0).all() and (chosen >= 0).mean() > 0.95
    before = malignant_probability(model, z)
    checked = 0
    for k in range(TOP):
        rows = np.flatnonzero(chosen[:, k] >= 0)
        moved = z.to_numpy()[rows].copy()
        moved[np.arange(len(rows)), chosen[rows, k]] = 0.0
        after = malignant_probability(model, pd.DataFrame(moved, columns=z.columns))
        sign = np.sign(a.contributions[rows, chosen[rows, k]])
        change = after - before[rows]
        resolved = (np.minimum(before[rows], after) > 1e-12) & (np.maximum(before[rows], after) < 1 - 1e-12)
        assert (np.sign(change[resolved]) == -sign[resolved]).all()
        assert (change[~resolved] * sign[~resolved] <= 0).all()
        checked += resolved.sum()
    assert checked > 150  # (the forest: many cases at probability 0 or 1)


def test_the_largest_contributions_come_first_and_interactions_are_passed_over(fitted):
    models, _, _ = fitted
    a = attribute(*models["soft_vote"])
    chosen = listed(a)
    size = np.abs(a.contributions[np.arange(len(chosen))[:, None], chosen])
    assert (np.diff(size, axis=1) <= 0).all()
    # a listed feature is the largest unless a larger one turned over on its own
    top = np.argmax(np.abs(a.contributions), axis=1)
    assert (chosen[:, 0] == top).mean() > 0.9


def test_reasons_read_feature_value_percentile_and_contribution(fitted):
    models, raw, quantiles = fitted
    model, z = models["svm"]
    a = attribute(model, z)
    text = reasons(a, raw, FEATURE_COLUMNS, quantiles)
    assert list(text.columns) == list(REASON_COLUMNS)
    first = text.iloc[0, 0]
    feature, rest = first.split("=")
    j = FEATURE_COLUMNS.index(feature)
    value, pct, part = rest.split(" ")
    assert float(value) == pytest.approx(raw[0, j], rel=1e-3)
    assert int(pct[2:-1]) == pytest.approx(100 * np.mean(quantiles[1:-1, j] < raw[0, j]), abs=2)
    assert float(part) == pytest.approx(a.contributions[0, j], abs=0.006)
    assert "(p?)" in reasons(a, raw, FEATURE_COLUMNS, None).iloc[0, 0]
    gap = raw.copy()
    gap[0, j] = np.nan  # a missing value: the model saw the training median
    assert reasons(a, gap, FEATURE_COLUMNS, quantiles).iloc[0, 0].startswith(f"{feature}=missing (p?) ")


def test_percentiles_place_values_among_the_training_rows():
    q = np.linspace(0, 1, 101)[:, None] * np.array([[10.0, 1.0]])  # two uniform features
    j = np.array([0, 0, 0, 1, 1])
    got = percentiles(q, j, np.array([-1.0, 2.5, 20.0, 0.5, 1.0]))
    assert got == pytest.approx([0, 25, 100, 50, 100])
    tied = np.zeros((101, 1))
    tied[60:, 0] = np.linspace(0.1, 1, 41)  # 60 % of the training rows are 0
    assert percentiles(tied, np.array([0]), np.array([0.0]))[0] == pytest.approx(30, abs=1)
