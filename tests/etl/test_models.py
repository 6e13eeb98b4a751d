import numpy as np
import pytest

from etl.errors import ParameterError
from etl.models import CANDIDATES, choose_threshold, make_estimator, rank


def test_threshold_is_the_highest_that_reaches_the_target_sensitivity():
    y = np.array([1] * 10 + [0] * 10)
    p = np.array([0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.2] + [0.5, 0.45, 0.4, 0.3, 0.25, 0.15, 0.1, 0.05, 0.02, 0.01])
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
    assert rank(s, "roc_auc") == ["logistic_regression", "svm", "random_forest"]  # tie: config order
    assert rank(s, "brier") == ["random_forest", "logistic_regression", "svm"]
    with pytest.raises(ParameterError, match="selection metric 'accuracy'"):
        rank(s, "accuracy")


@pytest.mark.parametrize("name", CANDIDATES)
def test_every_candidate_gives_probabilities(name):
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    model = make_estimator(name, {}, 0).fit(X, y)
    assert model.predict_proba(X).shape == (60, 2)
