import numpy as np
import pytest

from etl.errors import ParameterError
from etl.models import CANDIDATES, REGISTRY, choose_threshold, make_estimator, rank, select_candidate


def test_threshold_is_the_highest_that_reaches_the_target_sensitivity():
    y = np.array([1] * 10 + [0] * 10)
    p = np.array([0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.2, 0.5, 0.45, 0.4, 0.3, 0.25, 0.15, 0.1, 0.05, 0.02, 0.01])
    t = choose_threshold(y, p, 0.9)  # 9 of 10 malignant: down to 0.55; specificity 10/10
    assert (t["threshold"], t["sensitivity"], t["specificity"]) == (0.55, 0.9, 1.0)
    t = choose_threshold(y, p, 0.97)  # all 10: down to 0.2, which calls 5 benign malignant
    assert (t["threshold"], t["sensitivity"], t["specificity"]) == (0.2, 1.0, 0.5)
    with pytest.raises(ParameterError):
        choose_threshold(y, p, 0)


def test_rank_by_mean_with_lower_is_better_for_brier():
    s = {"svm": {"roc_auc": {"mean": 0.99}, "brier": {"mean": 0.03}},
         "logistic_regression": {"roc_auc": {"mean": 0.99}, "brier": {"mean": 0.02}},
         "random_forest": {"roc_auc": {"mean": 0.98}, "brier": {"mean": 0.01}}}
    assert rank(s, "roc_auc") == ["logistic_regression", "svm", "random_forest"]  # tie: the simpler first
    assert rank(s, "brier") == ["random_forest", "logistic_regression", "svm"]
    with pytest.raises(ParameterError, match="selection metric 'accuracy'"):
        rank(s, "accuracy")


@pytest.mark.parametrize("name", CANDIDATES)
def test_every_candidate_gives_probabilities(name):
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    model = make_estimator(name, {}, 0).fit(X, y)
    assert model.predict_proba(X).shape == (60, 2)


def test_the_threshold_margin_keeps_the_promise_and_reports_its_price():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(170), np.zeros(285)].astype(int)
    p = np.clip(np.r_[rng.normal(0.8, 0.2, 170), rng.normal(0.2, 0.2, 285)], 0, 1)
    plain = choose_threshold(y, p, 0.97)
    margin = choose_threshold(y, p, 0.97, confidence=0.7)
    assert plain["sensitivity"] >= 0.97 and plain["lower_bound"] == plain["sensitivity"]
    assert margin["lower_bound"] >= 0.97 and margin["sensitivity"] > plain["sensitivity"]
    assert margin["threshold"] < plain["threshold"] and margin["specificity"] <= plain["specificity"]
    assert margin["without_margin"] == {k: plain[k] for k in ("threshold", "sensitivity", "specificity")}
    assert margin["reachable"] is True
    few = choose_threshold(np.array([1] * 5 + [0] * 5), np.linspace(1, 0, 10), 0.97, confidence=0.7)
    assert few["reachable"] is False and few["sensitivity"] == 1.0  # catches all it can


def test_one_standard_error_rule_prefers_the_simplest_candidate_within_the_noise():
    s = {"hist_gradient_boosting": {"roc_auc": {"mean": 0.9960, "sd": 0.010}},
         "svm": {"roc_auc": {"mean": 0.9955, "sd": 0.010}},
         "logistic_regression": {"roc_auc": {"mean": 0.9930, "sd": 0.010}},
         "random_forest": {"roc_auc": {"mean": 0.9800, "sd": 0.010}}}
    choice = select_candidate(s, "roc_auc", folds=5)
    assert choice["best"] == "hist_gradient_boosting" and choice["margin"] == pytest.approx(0.010 / 5 ** 0.5)
    assert choice["within_margin"] == ["hist_gradient_boosting", "svm", "logistic_regression"]
    assert choice["winner"] == "logistic_regression"  # the simplest of the three
    s["logistic_regression"]["roc_auc"]["mean"] = 0.9900  # now clearly worse: the SVM
    assert select_candidate(s, "roc_auc", folds=5)["winner"] == "svm"


def test_the_registry_declares_every_candidate_with_a_complexity_order():
    assert list(CANDIDATES) == sorted(CANDIDATES, key=lambda n: REGISTRY[n].complexity)
    assert len({c.complexity for c in REGISTRY.values()}) == len(REGISTRY)
