"""The drift check: a batch from the training distribution passes, a shifted one is flagged,
naming the features that moved."""

import numpy as np
import pandas as pd
import pytest

from etl.config import load_settings
from etl.drift import drift_report, feature_reference, summary
from etl.schema import FEATURE_COLUMNS

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
