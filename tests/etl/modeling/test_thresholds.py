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
