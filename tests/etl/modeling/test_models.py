import numpy as np
import pytest

from etl.modeling.models import CANDIDATES, REGISTRY, make_estimator


@pytest.mark.parametrize("name", CANDIDATES)
def test_every_candidate_gives_probabilities(name):
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    model = make_estimator(name, {}, 0).fit(X, y)
    assert model.predict_proba(X).shape == (60, 2)


def test_the_registry_declares_every_candidate_with_a_complexity_order():
    assert list(CANDIDATES) == sorted(CANDIDATES, key=lambda n: REGISTRY[n].complexity)
    assert len({c.complexity for c in REGISTRY.values()}) == len(REGISTRY)
