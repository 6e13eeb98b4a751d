"""The three-way call's malignant threshold (etl.modeling.thresholds): conformal risk control on
the benign out-of-fold rows, checked by a brute-force count and on fresh draws."""

import numpy as np
import pytest

from etl.catalog import ParameterError
from etl.modeling.thresholds import call, malignant_threshold


def test_at_most_the_allowed_benign_rows_are_called_malignant():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(300, int), np.ones(100, int)]
    oof = np.r_[rng.beta(2, 8, 300), rng.beta(8, 2, 100)]
    point = malignant_threshold(y, oof, 0.99, lower=0.2)
    k = point["allowed_false_alarms"]
    assert k == 2 and point["reachable"]  # (k + 1) / 301 <= 0.01
    flagged = np.sum(oof[y == 0] >= point["threshold"])
    assert flagged == k
    assert np.sum(oof[y == 0] >= np.sort(oof[y == 0])[::-1][k]) == k + 1  # the next benign row is not allowed


def test_the_guarantee_holds_on_new_patients_drawn_alike():
    """Conformal risk control: averaged over calibration draws, the share of new benign cases
    called malignant is at most 1 - target."""
    rng = np.random.default_rng(1)
    rates = []
    for _ in range(400):
        y = np.r_[np.zeros(150, int), np.ones(50, int)]
        oof = np.r_[rng.beta(2, 8, 150), rng.beta(8, 2, 50)]
        t = malignant_threshold(y, oof, 0.95, lower=0.0)["threshold"]
        rates.append(np.mean(rng.beta(2, 8, 2000) >= t))
    assert np.mean(rates) <= 0.05


def test_never_below_the_sensitivity_threshold_and_too_few_rows_flag_none():
    y = np.array([0, 0, 0, 1, 1])
    oof = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    few = malignant_threshold(y, oof, 0.99, lower=0.05)
    assert not few["reachable"] and few["threshold"] > 0.3  # above every benign row
    assert malignant_threshold(y, oof, 0.5, lower=0.95)["threshold"] == 0.95
    with pytest.raises(ParameterError, match="target_malignant_specificity must be in"):
        malignant_threshold(y, oof, 1.0, lower=0.1)


def test_the_call_has_three_ways():
    assert list(call([0.05, 0.2, 0.5, 0.9], 0.2, 0.9)) == ["benign", "refer", "refer", "malignant"]


@pytest.mark.parametrize("seed", range(5))
def test_both_thresholds_agree_with_a_conformal_classifier_of_crepes(seed):
    """The two rules, checked against crepes' conformal classifier (non-smoothed p-values, one
    class's out-of-fold rows as calibration): a new case is cleared as benign exactly when the
    conformal set at confidence target_sensitivity leaves *malignant* out, and called malignant
    exactly when the set at target_malignant_specificity leaves *benign* out. The one place they
    differ is the gap between two calibration scores where the threshold sits: there the project
    reads the threshold halfway (thresholds.py), so it clears and calls fewer: never more."""
    from crepes import ConformalClassifier

    from etl.modeling.thresholds import choose_threshold

    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(357, int), np.ones(212, int)]
    oof = np.r_[rng.beta(2, 9, 357), rng.beta(9, 2, 212)]
    new = rng.uniform(0, 1, 20_000)

    low = choose_threshold(y, oof[None, :], 0.97, "risk_control")["threshold"]
    malignant = ConformalClassifier().fit(1 - oof[y == 1])  # nonconformity to "malignant": 1 - p
    p_malignant = malignant.predict_p((1 - new)[:, None], smoothing=False)[:, 0]
    conformal_clears = p_malignant <= 1 - 0.97
    ours_clears = new < low
    m = np.sort(oof[y == 1])
    k = int(np.sum(m < low))
    gap = (new > m[k - 1]) & (new < m[k]) if k else np.zeros(len(new), bool)
    assert (ours_clears == conformal_clears)[~gap].all()
    assert not (ours_clears & ~conformal_clears).any()  # never clears a case the conformal set keeps

    high = malignant_threshold(y, oof, 0.99, lower=low)["threshold"]
    benign = ConformalClassifier().fit(oof[y == 0])  # nonconformity to "benign": p
    p_benign = benign.predict_p(new[:, None], smoothing=False)[:, 0]
    conformal_calls = (p_benign <= 1 - 0.99) & (new >= low)
    ours_calls = new >= high
    b = np.sort(oof[y == 0])[::-1]
    j = int(np.sum(b >= high))
    gap = (new < b[j - 1]) & (new > b[j]) if j else np.zeros(len(new), bool)
    assert (ours_calls == conformal_calls)[~gap].all()
    assert not (ours_calls & ~conformal_calls).any()  # never calls malignant a case the set calls benign too
    assert ours_calls.sum() > 1000 and ours_clears.sum() > 1000
