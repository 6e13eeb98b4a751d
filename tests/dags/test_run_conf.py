"""A run's conf may name only the DAG's parameters (checked by every task before any work)."""

import pytest

from etl.catalog import ParameterError, refuse_unknown

PARAMS = ["C", "data_path", "max_iter", "random_state", "test_size"]


@pytest.mark.parametrize("conf", [None, {}, {"C": 0.5, "test_size": 0.3}])
def test_known_parameters_pass(conf):
    refuse_unknown(conf or {}, PARAMS)


@pytest.mark.parametrize(("conf", "message"), [
    ({"bogus": 1}, "unknown run parameter(s) 'bogus'; valid parameters: C, data_path, max_iter, random_state, test_size"),
    ({"c": 1}, "unknown run parameter(s) 'c' (did you mean 'C'?); valid parameters: "),
    ({"max_iters": 5, "C": 1}, "unknown run parameter(s) 'max_iters' (did you mean 'max_iter'?); "),
    ({"seed": 1, "bogus": 2}, "unknown run parameter(s) 'bogus', 'seed'; "),
])
def test_unknown_parameters_are_refused_in_one_line(conf, message):
    with pytest.raises(ParameterError) as error:
        refuse_unknown(conf or {}, PARAMS)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
