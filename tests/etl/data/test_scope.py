"""Whether the model may answer at all (etl.data.scope): each case checked against the training
rows' plausible ranges and novelty scores, before any call."""

import numpy as np
import pandas as pd
import pytest

from etl.data.scope import check_scope, fit_scope


@pytest.fixture(scope="module")
def shipped(shipped_csv) -> pd.DataFrame:
    return pd.read_csv(shipped_csv)


def test_of_unseen_rows_like_the_training_rows_at_most_the_stated_share_is_refused(shipped):
    """Conformal: over 20 random training / unseen splits of the shipped data, the share of unseen
    rows refused averages at most alpha (0.7 % measured at alpha = 1 %)."""
    rng = np.random.default_rng(0)
    refused = []
    for seed in range(20):
        order = rng.permutation(len(shipped))
        train, unseen = shipped.iloc[order[:455]], shipped.iloc[order[455:]]
        refused.append((check_scope(unseen, fit_scope(train, seed), 0.01)["reason"] != "").mean())
    assert np.mean(refused) <= 0.01
    assert np.mean(refused) > 0  # the check does refuse: unseen rows far from the rest exist


def test_areas_in_another_unit_and_negative_sizes_are_each_refused_with_the_reason(shipped):
    scope = fit_scope(shipped.iloc[:455])
    batch = shipped.iloc[455:].copy()
    batch["area_mean"] *= 100  # square micrometres instead of pixels, say
    checked = check_scope(batch, scope, 0.01)
    high = scope["ranges"]["area_mean"][1]
    above = batch["area_mean"] > high
    assert above.mean() > 0.9  # most: the range names the feature; the rest are unlike any training row
    assert all(r.startswith("area_mean ") and f"is above its plausible range [0, {high:g}]" in r
               for r in checked["reason"][above.to_numpy()])
    assert all(r.startswith("unlike the training rows") for r in checked["reason"][~above.to_numpy()])
    one = shipped.iloc[[460]].assign(radius_mean=-1.0)
    assert check_scope(one, scope, 0.01)["reason"].iloc[0].startswith(
        "radius_mean -1 is below its plausible range [0, ")


def test_a_row_far_from_every_training_row_is_unlike_them(shipped):
    scope = fit_scope(shipped.iloc[:455])
    odd = shipped.iloc[[500]].copy()
    odd["smoothness_mean"], odd["radius_mean"] = odd["smoothness_mean"] * 3, odd["radius_mean"] / 3  # in range, odd mix
    checked = check_scope(odd, scope, 0.01)
    assert checked["reason"].iloc[0].startswith("unlike the training rows: novelty p-value ")
    assert checked["novelty_p"].iloc[0] == pytest.approx(1 / 456)  # beyond every training row's score


def test_a_large_training_set_keeps_a_bounded_calibration_and_its_guarantee(shipped):
    """Trained on 10k rows, the release keeps 2000 of their out-of-fold scores (a random subset:
    the p-values stay valid), and rows drawn like them are refused at about the stated share."""
    from etl.data.scope import CALIBRATION

    rng = np.random.default_rng(3)
    features = [c for c in shipped.columns if c not in ("id", "diagnosis")]
    rows = shipped.iloc[rng.integers(0, len(shipped), 14_000)].reset_index(drop=True)
    rows[features] = rows[features].to_numpy() * (1 + rng.normal(0, 0.02, (len(rows), len(features))))
    scope = fit_scope(rows.iloc[:10_000])
    assert len(scope["calibration"]) == CALIBRATION
    refused = (check_scope(rows.iloc[10_000:], scope, 0.01)["reason"] != "").mean()
    assert refused <= 0.02, refused  # 4000 fresh rows: 1 % expected, binomial sd 0.16 points
