"""Models as files that cannot run code (etl.storage.objects): skops, trusted types only."""

import io
import pickle
import zipfile

import joblib
import numpy as np
import pytest
import skops.io

from etl.catalog import IntegrityError
from etl.modeling.models import REGISTRY, make_estimator
from etl.storage.objects import TRUSTED_TYPES, dumps, loads, pickle_bytes


class _Exploit:
    """Unpickling this runs code: it creates the file named in its argument."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class _Untrusted:
    """A type of no library: restoring it would run its ``__setstate__``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __setstate__(self, state):
        open(state["marker"], "w").close()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5))
    return X, (X[:, 0] + rng.normal(scale=0.5, size=80) > 0).astype(int)


def test_every_candidate_and_the_scaler_load_with_exactly_the_trusted_types(data):
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data
    needed = set()
    for name in REGISTRY:
        model = make_estimator(name, {}, 0).fit(X, y)
        blob = dumps(model)
        needed |= set(skops.io.get_untrusted_types(data=blob))
        np.testing.assert_array_equal(loads(blob, name).predict_proba(X), model.predict_proba(X))
    scaler = make_pipeline(SimpleImputer(), StandardScaler()).fit(X)
    blob = dumps(scaler)
    needed |= set(skops.io.get_untrusted_types(data=blob))
    np.testing.assert_array_equal(loads(blob, "scaler").transform(X), scaler.transform(X))
    assert needed == set(TRUSTED_TYPES)  # none missing, none trusted without need


def test_the_same_object_gives_the_same_bytes(data):
    X, y = data
    model = make_estimator("soft_vote", {}, 0).fit(X, y)
    first = dumps(model)
    _ = [str(i) * 3 for i in range(1000)]  # other objects at other addresses meanwhile
    assert dumps(make_estimator("soft_vote", {}, 0).fit(X, y)) == first
    with zipfile.ZipFile(io.BytesIO(first)) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert sorted(z.namelist()) == z.namelist()
    # the pickle for users holds the same model, and is the same for the same file
    assert pickle_bytes(loads(first, "m")) == pickle_bytes(loads(first, "m"))
    np.testing.assert_array_equal(joblib.load(io.BytesIO(pickle_bytes(loads(first, "m")))).predict_proba(X),
                                  model.predict_proba(X))


def test_a_pickle_in_place_of_a_model_is_refused_without_running(tmp_path):
    marker = tmp_path / "exploit-ran"
    with pytest.raises(IntegrityError, match=r"^model.skops: not a model file the pipeline can load safely"):
        loads(pickle.dumps(_Exploit(marker)), "model.skops")
    assert not marker.exists()


def test_a_skops_file_naming_an_untrusted_type_is_refused(tmp_path):
    marker = tmp_path / "setstate-ran"
    blob = skops.io.dumps({"model": _Untrusted(marker)})
    with pytest.raises(IntegrityError, match=r"names types the pipeline does not trust \(.*_Untrusted\)"):
        loads(blob, "model.skops")
    assert not marker.exists()
