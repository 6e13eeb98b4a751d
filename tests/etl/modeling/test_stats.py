"""The small-sample statistics: intervals that cover, tests that match known answers."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from etl.evaluate_model import RankedScores, confidence_intervals
from etl.modeling.stats import clopper_pearson, delong, lower_bound, noninferior_paired


def test_the_sensitivity_interval_covers_at_least_93_percent_of_simulated_test_sets():
    """2,000 test sets of 42 malignant rows with a true sensitivity of 0.965 (the percentile
    bootstrap covered about 78 % here)."""
    caught = np.random.default_rng(0).binomial(42, 0.965, size=2000)
    bounds = np.array([clopper_pearson(int(k), 42) for k in caught])
    coverage = np.mean((bounds[:, 0] <= 0.965) & (0.965 <= bounds[:, 1]))
    assert coverage >= 0.93, coverage
    assert np.all(bounds[:, 1] > bounds[:, 0])  # never zero-width


def test_catching_every_tumour_gives_an_interval_not_a_point():
    y = np.array([1] * 42 + [0] * 72)
    p = np.r_[np.linspace(0.6, 1, 42), np.linspace(0, 0.4, 72)]  # perfectly separated
    ci, methods = confidence_intervals(y, p, 0.5, 200, 0)
    assert ci["recall"][0] == pytest.approx(0.916, abs=1e-3) and ci["recall"][1] == 1.0
    assert methods["recall"] == "clopper-pearson"
    for metric in ("roc_auc", "pr_auc", "f1"):  # the bootstrap is degenerate at 1: an exact bound
        assert ci[metric][1] - ci[metric][0] > 0.05 and methods[metric].startswith("exact bound")
    assert all(hi > lo for lo, hi in ci.values())


def test_exact_bounds_match_their_closed_forms():
    assert clopper_pearson(0, 10)[1] == pytest.approx(1 - 0.025 ** (1 / 10))
    assert lower_bound(20, 20, 0.9) == pytest.approx(0.1 ** (1 / 20))
    assert lower_bound(9, 10, 0.0) == 0.9


def test_delong_gives_the_aucs_and_a_small_p_only_for_a_real_difference():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(60), np.zeros(90)].astype(int)
    good, bad = y + rng.normal(0, 0.5, 150), y + rng.normal(0, 2.5, 150)
    result = delong(y, good, bad)
    assert result["auc_a"] == pytest.approx(roc_auc_score(y, good))
    assert result["auc_b"] == pytest.approx(roc_auc_score(y, bad))
    assert result["p_value"] < 0.001  # B is clearly worse
    assert delong(y, bad, good)["p_value"] > 0.99  # and A is not worse than B
    assert delong(y, good, good)["p_value"] == 1.0  # no variance: never "worse"


def test_delong_standard_error_agrees_with_a_paired_bootstrap():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(40), np.zeros(70)].astype(int)
    a, b = y + rng.normal(0, 1, 110), y + rng.normal(0, 1.3, 110)
    # A resample is each row's count (the evaluation's weighted scores, equal to scikit-learn's
    # on the repeated rows: tests/etl/test_evaluate_model.py), in linear time per resample.
    ranked_a, ranked_b = RankedScores(y, a), RankedScores(y, b)
    diffs = []
    for _ in range(1500):
        counts = np.bincount(rng.integers(0, 110, 110), minlength=110)
        if counts[y == 1].sum() and counts[y == 0].sum():
            diffs.append(ranked_b.scores(0.5, counts)["roc_auc"] - ranked_a.scores(0.5, counts)["roc_auc"])
    assert delong(y, a, b)["se"] == pytest.approx(np.std(diffs), rel=0.15)
    assert ranked_a.scores(0.5)["roc_auc"] == pytest.approx(roc_auc_score(y, a))


def test_non_inferiority_reads_only_the_disagreements_and_their_margin():
    old = np.array([True] * 40 + [False] * 2)
    same = noninferior_paired(old, old.copy(), margin=0.05)
    assert (same["only_old"], same["only_new"], same["p_value"]) == (0, 0, 0.0)
    two_more = old.copy()
    two_more[:2] = False  # 2 of 42 = 4.8 points worse: cannot be 5 points worse on these rows
    assert noninferior_paired(old, two_more, 0.05)["p_value"] == 0.0
    four_more = old.copy()
    four_more[:4] = False  # 4 disagreements, all the old model's way: not shown non-inferior
    result = noninferior_paired(old, four_more, 0.05)
    assert (result["only_old"], result["only_new"]) == (4, 0)
    assert result["p_value"] == pytest.approx(1.0) and result["difference"] == pytest.approx(-4 / 42)
    mixed = np.array([True] * 36 + [False] * 6)
    mixed_new = mixed.copy()
    mixed_new[:2], mixed_new[36:38] = False, True  # 2 each way: m = 4, pi0 = (1 + 2.1 / 4) / 2
    assert noninferior_paired(mixed, mixed_new, 0.05)["p_value"] == pytest.approx(stats.binom.cdf(2, 4, 0.7625))
