"""The drift check: a batch from the training distribution passes, a shifted one is flagged,
naming the features that moved."""

import numpy as np
import pandas as pd
import pytest

from etl.data.drift import drift_report, feature_reference, summary
from etl.data.schema import FEATURE_COLUMNS
from etl.settings import load_settings

#: The shipped [scoring] drift settings.
SCORING = load_settings().scoring


@pytest.fixture(scope="module")
def split(shipped_csv):
    data = pd.read_csv(shipped_csv)
    rng = np.random.default_rng(0)
    test = rng.random(len(data)) < 0.2
    return data[~test], data[test]


def test_rows_from_the_training_distribution_do_not_drift(split):
    train, test = split
    report = drift_report(test, feature_reference(train), SCORING)
    assert report["drifted"] is False and report["moved"] == []
    assert len(report["features"]) == 30 and report["rows"] == len(test)


def test_a_few_held_out_seeds_stay_quiet(shipped_csv):
    """The false alarm rate: 20 random 20 % splits of the same data, no batch flagged."""
    data = pd.read_csv(shipped_csv)
    flagged = 0
    for seed in range(20):
        test = np.random.default_rng(seed).random(len(data)) < 0.2
        flagged += bool(drift_report(data[test], feature_reference(data[~test]), SCORING)["drifted"])
    assert flagged == 0


def test_scaled_features_are_flagged_and_named(split):
    train, test = split
    scaled = test.assign(**{c: test[c] * 1.5 for c in ("radius_mean", "area_mean", "perimeter_worst")})
    report = drift_report(scaled, feature_reference(train), SCORING)
    assert report["drifted"] is True
    assert set(report["moved"]) == {"radius_mean", "area_mean", "perimeter_worst"}
    moved = [f for f in report["features"] if f["moved"]]
    assert all(f["mean_shift_sd"] > 0.5 and f["p_adjusted"] < 0.01 for f in moved)
    assert summary(report).startswith("drift: 3 of 30 features moved: ")


def test_every_feature_scaled(split):
    train, test = split
    scaled = test.assign(**{c: test[c] * 1.5 for c in FEATURE_COLUMNS})
    assert len(drift_report(scaled, feature_reference(train), SCORING)["moved"]) >= 20


def test_small_batches_and_old_releases_are_not_tested(split):
    train, test = split
    small = drift_report(test.head(5), feature_reference(train), SCORING)
    assert small["drifted"] is None and "too few to test" in small["reason"]
    old = drift_report(test, None, SCORING)
    assert old["drifted"] is None and "no training reference" in old["reason"]
    assert summary(old).startswith("drift not tested: ")


def test_the_reference_is_small_and_exact_at_its_ends(split):
    train, _ = split
    ref = feature_reference(train)
    assert ref["radius_mean"]["quantiles"][0] == pytest.approx(train["radius_mean"].min())
    assert ref["radius_mean"]["quantiles"][-1] == pytest.approx(train["radius_mean"].max())
    assert all(len(r["quantiles"]) == 101 for r in ref.values())


def test_large_batches_get_the_same_decisions_as_with_exact_p_values(split):
    """Above ``EXACT_UP_TO`` rows the p-values are the limiting distribution's (seconds saved on
    a large batch): the decisions are those the exact p-values give, on an undrifted and a
    drifted batch of 20,000 rows (the held-out rows resampled, 2 % jitter)."""
    from scipy import stats

    from etl.data.drift import EXACT_UP_TO, _cdf

    train, test = split
    rng = np.random.default_rng(1)
    big = test.iloc[rng.integers(0, len(test), 20_000)].reset_index(drop=True)
    big = big.assign(**{c: big[c] * (1 + rng.normal(0, 0.02, len(big))) for c in FEATURE_COLUMNS})
    assert len(big) > EXACT_UP_TO
    reference = feature_reference(train)
    for batch in (big, big.assign(**{c: big[c] * 1.5 for c in ("radius_mean", "area_mean", "texture_se")})):
        report = drift_report(batch, reference, SCORING)
        exact = [stats.ks_1samp(batch[c].to_numpy(dtype=float), _cdf(reference[c]["quantiles"]), method="exact").pvalue
                 for c in FEATURE_COLUMNS]
        adjusted = dict(zip(FEATURE_COLUMNS, stats.false_discovery_control(exact, method="bh"), strict=True))
        by_name = {f["feature"]: f for f in report["features"]}
        expected = sorted(c for c in FEATURE_COLUMNS
                          if adjusted[c] < SCORING.drift_alpha and by_name[c]["statistic"] >= SCORING.drift_min_statistic)
        assert sorted(report["moved"]) == expected
    assert report["drifted"] is True and set(report["moved"]) == {"radius_mean", "area_mean", "texture_se"}
