"""The training procedure (etl.modeling.procedure): leak-free cross-validation, the operating-point rules
and what each promises, the paired selection, the pooled nested estimate."""

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer

from etl.catalog import ParameterError
from etl.data.schema import FEATURE_COLUMNS
from etl.modeling import procedure
from etl.modeling.nested import pooled_counts
from etl.modeling.procedure import CrossValidation, cross_validate, make_pipeline, select_candidate
from etl.modeling.thresholds import allowed_misses, choose_threshold


def _frame(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (np.arange(rows) % 3 == 0).astype(int)
    X = pd.DataFrame(rng.normal(size=(rows, len(FEATURE_COLUMNS))) + y[:, None], columns=list(FEATURE_COLUMNS))
    return X, y


class _SpyImputer(SimpleImputer):
    """A median imputer that records which rows (by index label) every fit saw."""

    fitted_on: ClassVar[list[set]] = []

    def fit(self, X, y=None):
        _SpyImputer.fitted_on.append(set(X.index))
        return super().fit(X, y)


def test_every_out_of_fold_score_comes_from_preprocessing_that_never_saw_its_row(monkeypatch):
    """The imputer and scaler are refitted inside each CV fit, on that fit's rows only."""
    spy = procedure.make_preprocessor()
    spy.steps[0] = ("impute", _SpyImputer(strategy="median"))
    monkeypatch.setattr(procedure, "make_preprocessor", lambda: spy)
    _SpyImputer.fitted_on = []
    X, y = _frame(60)
    cv = cross_validate(make_pipeline("logistic_regression", {}, 0), X, y, folds=3, repeats=2, random_state=0)
    assert len(_SpyImputer.fitted_on) == 6  # one preprocessing fit per CV fit, none on all rows
    for i, fitted in enumerate(_SpyImputer.fitted_on):
        held_out = set(X.index[cv.fold[i // 3] == i % 3])
        assert held_out and not fitted & held_out
        assert fitted | held_out == set(X.index)
    assert not np.isnan(cv.oof).any() and cv.oof.shape == (2, 60)


def test_the_risk_control_rule_allows_the_misses_the_target_and_the_count_give():
    # (k + 1) / (n + 1) <= 1 - target: 4 of 170 at 0.97, 5 of 212, none of 32, too few below 33.
    assert allowed_misses(170, 0.97, "risk_control") == 4
    assert allowed_misses(212, 0.97, "risk_control") == 5
    assert allowed_misses(33, 0.97, "risk_control") == 0
    assert allowed_misses(30, 0.97, "risk_control") is None
    # The exact bound at 0.7 allows fewer: P(sensitivity >= 0.97) >= 0.7 with 170 rows is 3 misses.
    assert allowed_misses(170, 0.97, "exact_bound", 0.7) == 3
    assert allowed_misses(170, 0.97, "none") == 5
    with pytest.raises(ParameterError, match="threshold rule 'quantile'"):
        allowed_misses(170, 0.97, "quantile")


def test_the_threshold_sits_between_the_last_miss_and_the_first_catch_and_states_its_guarantee():
    y = np.r_[np.ones(100), np.zeros(100)].astype(int)
    malignant = np.linspace(0.3, 0.99, 100)
    p = np.r_[malignant, np.linspace(0.0, 0.5, 100)]
    point = choose_threshold(y, p[None, :], 0.97, "risk_control")
    k = point["allowed_misses"]
    assert k == allowed_misses(100, 0.97, "risk_control") == 2  # (2 + 1) / 101 <= 0.03
    assert point["threshold"] == pytest.approx((malignant[1] + malignant[2]) / 2)
    assert point["sensitivity"] == pytest.approx(0.98) and point["malignant"] == 100
    assert point["guarantee"].startswith("Expected sensitivity on new patients of at least 97%")
    assert set(point["alternatives"]) == {"exact_bound", "none"}
    # The price of each rule in specificity is recorded beside it.
    assert point["alternatives"]["none"]["specificity"] >= point["specificity"]
    strict = choose_threshold(y, p[None, :], 0.97, "exact_bound", 0.7)
    assert strict["threshold"] <= point["threshold"] and "with probability 70%" in strict["guarantee"]
    few = choose_threshold(np.r_[np.ones(5), np.zeros(5)].astype(int), np.linspace(1, 0, 10)[None, :], 0.97)
    assert few["reachable"] is False and few["sensitivity"] == 1.0  # catches all it can


def test_the_threshold_of_several_repeats_is_read_from_their_averaged_probabilities():
    y = np.r_[np.ones(40), np.zeros(40)].astype(int)
    rng = np.random.default_rng(1)
    oof = np.clip(np.r_[rng.normal(0.8, 0.15, 40), rng.normal(0.2, 0.15, 40)][None, :]
                  + rng.normal(0, 0.05, (3, 80)), 0, 1)
    point = choose_threshold(y, oof, 0.95, "risk_control")
    assert point["threshold"] == pytest.approx(choose_threshold(y, oof.mean(axis=0)[None, :], 0.95)["threshold"])
    singles = [choose_threshold(y, row[None, :], 0.95, "risk_control")["threshold"] for row in oof]
    assert point["threshold_per_repeat"] == pytest.approx(singles)
    assert point["sensitivity"] == pytest.approx(np.mean(oof.mean(axis=0)[y == 1] >= point["threshold"]))


def _cv(spec_by_fold: list[float], y: np.ndarray) -> CrossValidation:
    """A CrossValidation whose benign rows are cleared at threshold 0.5 with the given per-fold
    specificities (5 folds, one repeat, 20 benign rows per fold)."""
    fold = np.repeat(np.arange(5), len(y) // 5)
    oof = np.where(y == 1, 0.9, 0.0)
    for f, spec in enumerate(spec_by_fold):
        benign = np.flatnonzero((fold == f) & (y == 0))
        oof[benign[round(spec * len(benign)):]] = 0.6  # these are false alarms at 0.5
    return CrossValidation(oof[None, :], fold[None, :], [{"roc_auc": 0.99, "pr_auc": 0.99, "brier": 0.05}] * 5)


def test_selection_compares_fold_by_fold_and_prefers_the_simplest_within_the_paired_noise():
    y = np.tile(np.r_[np.ones(4), np.zeros(20)], 5).astype(int)
    best = [0.95, 0.90, 1.00, 0.85, 0.95]
    cvs = {"soft_vote": _cv(best, y),
           "svm": _cv([s - 0.05 for s in best], y),              # 5 points worse in every fold
           "logistic_regression": _cv([0.95, 0.95, 0.95, 0.85, 0.90], y)}  # about as good, noisily
    thresholds = dict.fromkeys(cvs, 0.5)
    choice = select_candidate(cvs, y, thresholds, "specificity")
    assert choice["best"] == "soft_vote"
    # Paired: the SVM's differences have no spread, so 5 points is far outside its margin,
    # though unpaired its folds overlap the best's.
    assert choice["margins"]["svm"] == pytest.approx(0.0, abs=1e-9) and "svm" not in choice["within_margin"]
    assert choice["within_margin"] == ["soft_vote", "logistic_regression"]
    assert choice["winner"] == "logistic_regression"  # the simpler of the two
    with pytest.raises(ParameterError, match="selection metric 'accuracy'"):
        select_candidate(cvs, y, thresholds, "accuracy")


def test_selection_by_referral_counts_the_rows_between_each_candidates_two_thresholds():
    """``referral``: the share of each fold's rows (both classes) at or above the candidate's
    threshold and below its malignant threshold; lower is better."""
    y = np.tile(np.r_[np.ones(4), np.zeros(20)], 5).astype(int)
    cvs = {"svm": _cv([0.95, 0.90, 1.00, 0.85, 0.95], y), "logistic_regression": _cv([0.8] * 5, y)}
    # the false alarms sit at 0.6: referred between 0.5 and 0.7, called malignant from 0.55
    values = cvs["svm"].fold_values(y, "referral", 0.5, 0.7)
    assert values == pytest.approx([1 / 24, 2 / 24, 0.0, 3 / 24, 1 / 24])
    assert cvs["svm"].fold_values(y, "referral", 0.5, 0.55) == pytest.approx([0.0] * 5)
    choice = select_candidate(cvs, y, dict.fromkeys(cvs, 0.5), "referral", dict.fromkeys(cvs, 0.7))
    assert choice["best"] == choice["winner"] == "svm"  # refers fewer in every fold
    assert choice["means"]["logistic_regression"] == pytest.approx(4 / 24)
    choice = select_candidate(cvs, y, dict.fromkeys(cvs, 0.5), "referral", {"svm": 0.7, "logistic_regression": 0.55})
    assert choice["winner"] == "logistic_regression"  # its own second threshold calls them malignant


def test_the_pooled_counts_add_up_the_folds_with_intervals_at_the_patients_count():
    fold = {"scores": {"confusion_matrix": {"tp": 40, "fn": 2, "tn": 70, "fp": 2}}}
    one = pooled_counts([fold])
    assert (one["malignant"], one["sensitivity"]) == (42, 40 / 42)
    twice = pooled_counts([fold, fold], repeats=2)  # the same 114 patients scored twice
    assert twice["confusion_matrix"]["tp"] == 80 and twice["sensitivity"] == one["sensitivity"]
    assert twice["sensitivity_ci95"] == pytest.approx(one["sensitivity_ci95"])  # not narrowed
    assert pooled_counts([fold, fold])["sensitivity_ci95"][0] > one["sensitivity_ci95"][0]


def test_the_exact_bound_rule_finds_the_same_count_as_a_scan_of_every_count():
    """``allowed_misses`` bisects over the count caught (the exact lower bound grows with it):
    the same answer as trying every count from none up, for any size, target and confidence."""
    from etl.modeling.stats import lower_bound
    from etl.modeling.thresholds import allowed_misses

    def scan(n, target, confidence):
        return next((n - k for k in range(n + 1) if lower_bound(k, n, confidence) >= target - 1e-12), None)

    for n in [*range(1, 61), 119, 170, 424]:
        for target in (0.5, 0.9, 0.97, 0.99):
            for confidence in (0.0, 0.7, 0.95):
                assert allowed_misses(n, target, "exact_bound", confidence) == scan(n, target, confidence), (n, target)


def test_a_soft_vote_of_other_candidates_is_cross_validated_from_their_fits_bit_for_bit(monkeypatch):
    """The nested CV's procedure (``cross_validate_candidates``) derives the soft vote's
    out-of-fold probabilities from its members' fits: the same numbers as fitting the vote."""
    from sklearn.ensemble import VotingClassifier

    from etl.modeling.procedure import cross_validate_candidates

    X, y = _frame(80)
    X.iloc[::7, 3] = np.nan  # imputed inside every fit, as in real data
    params = {"logistic_regression": {"C": 0.5}, "svm": {"C": 1.0, "kernel": "rbf", "gamma": "scale"},
              "soft_vote": {"C": 0.5}}
    pipelines = {name: make_pipeline(name, p, 0) for name, p in params.items()}
    direct = {name: cross_validate(pipe, X, y, folds=3, repeats=2, random_state=1) for name, pipe in pipelines.items()}

    def not_fitted(self, *args, **kwargs):
        raise AssertionError("the soft vote was fitted again")

    with monkeypatch.context() as patched:
        patched.setattr(VotingClassifier, "fit", not_fitted)
        shared = cross_validate_candidates(pipelines, X, y, folds=3, repeats=2, random_state=1)
    assert list(shared) == list(params)
    for name in params:
        assert np.array_equal(shared[name].oof, direct[name].oof), name
        assert np.array_equal(shared[name].fold, direct[name].fold) and shared[name].scores == direct[name].scores

    # A vote whose members differ from every candidate (C=0.1 here, 0.5 alone) is fitted itself.
    pipelines["soft_vote"] = make_pipeline("soft_vote", {"C": 0.1}, 0)
    again = cross_validate_candidates(pipelines, X, y, folds=3, repeats=2, random_state=1)
    alone = cross_validate(pipelines["soft_vote"], X, y, folds=3, repeats=2, random_state=1)
    assert np.array_equal(again["soft_vote"].oof, alone.oof)
    assert not np.array_equal(again["soft_vote"].oof, shared["soft_vote"].oof)
