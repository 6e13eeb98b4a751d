"""The candidate models: what each is, how to build it, how simple it is (``REGISTRY``).

How they are cross-validated, compared and given an operating point is ``etl.modeling.procedure``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sklearn.base import ClassifierMixin

from etl.catalog import ParameterError


@dataclass(frozen=True)
class Candidate:
    """One candidate model: how to build it, and how simple it is.

    Attributes:
        name: the key in ``[candidates]`` of ``pipeline.toml`` and the mapped task's label.
        title: the name shown in the report.
        complexity: 1 for the simplest; among candidates whose CV scores differ by noise, the
            selection takes the simplest (``select_candidate``).
        build: ``(params, random_state) -> unfitted scikit-learn classifier``.
        run_params: run parameters of the DAG (trigger form, ``--conf``, the steps' flags) that
            set this candidate's parameters of the same name, over ``pipeline.toml``'s.
        check: refuses parameter values the estimator would accept but that make no sense
            (scikit-learn's own validation runs after it).
    """

    name: str
    title: str
    complexity: int
    build: Callable[[Mapping[str, Any], int], ClassifierMixin]
    run_params: tuple[str, ...] = ()
    check: Callable[[Mapping[str, Any]], None] | None = None


def _check_logistic(params: Mapping[str, Any]) -> None:
    if "C" in params and not params["C"] > 0:
        raise ParameterError(f"C must be > 0, got {params['C']}")
    if "max_iter" in params and params["max_iter"] < 1:
        raise ParameterError(f"max_iter must be >= 1, got {params['max_iter']}")


def _logistic_regression(params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(random_state=random_state, **params)


def _svm(params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    # Platt scaling (sigmoid calibration on internal folds) gives the probabilities the
    # threshold needs; scikit-learn's replacement for SVC(probability=True).
    return CalibratedClassifierCV(SVC(random_state=random_state, **params), method="sigmoid", ensemble=False)


def _soft_vote(params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    from sklearn.ensemble import VotingClassifier

    # The mean of the two simplest candidates' probabilities: the logistic regression (taking the
    # run's C and max_iter) and the calibrated SVM with its defaults.
    return VotingClassifier([("logistic_regression", _logistic_regression(params, random_state)),
                             ("svm", _svm({}, random_state))], voting="soft")


def _random_forest(params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(random_state=random_state, n_jobs=1, **params)


def _extra_trees(params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(random_state=random_state, n_jobs=1, **params)


def _hist_gradient_boosting(params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=random_state, **params)


#: Every candidate the pipeline knows, simplest first. ``[candidates] enabled`` picks from these;
#: ``[candidates] <name> = {...}`` gives each its parameters. Adding a candidate: a builder and a
#: line here, and its name in ``enabled`` (see docs/model.md).
REGISTRY: dict[str, Candidate] = {c.name: c for c in (
    Candidate("logistic_regression", "Logistic regression", 1, _logistic_regression,
              run_params=("C", "max_iter"), check=_check_logistic),
    Candidate("svm", "SVM (RBF kernel, calibrated)", 2, _svm),
    Candidate("soft_vote", "Soft vote of the logistic regression and the SVM", 3, _soft_vote,
              run_params=("C", "max_iter"), check=_check_logistic),
    Candidate("random_forest", "Random forest", 4, _random_forest),
    Candidate("extra_trees", "Extremely randomised trees", 5, _extra_trees),
    Candidate("hist_gradient_boosting", "Gradient boosting (histogram)", 6, _hist_gradient_boosting),
)}
CANDIDATES = tuple(REGISTRY)


def candidate_params(configured: Mapping[str, Mapping[str, Any]],
                     run_params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each enabled candidate's parameters: ``pipeline.toml``'s (``configured``), with the run
    parameters it takes (``Candidate.run_params``) set from ``run_params``.

    Raises:
        ParameterError: a candidate the registry does not know.
    """
    params = {}
    for name, values in configured.items():
        if name not in REGISTRY:
            raise ParameterError(f"unknown candidate model {name!r} (known: {', '.join(CANDIDATES)})")
        params[name] = {**values, **{key: run_params[key] for key in REGISTRY[name].run_params}}
    return params


def make_estimator(name: str, params: Mapping[str, Any], random_state: int) -> ClassifierMixin:
    """A fresh, unfitted scikit-learn classifier for candidate ``name`` with ``params``.

    Raises:
        ParameterError: an unknown candidate or a parameter the estimator does not accept.
    """
    if name not in REGISTRY:
        raise ParameterError(f"unknown candidate model {name!r} (known: {', '.join(CANDIDATES)})")
    if REGISTRY[name].check is not None:
        REGISTRY[name].check(params)
    try:
        estimator = REGISTRY[name].build(params, random_state)
        for part in (estimator, getattr(estimator, "estimator", None)):
            if part is not None:
                part._validate_params()
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"candidate {name}: {str(exc).splitlines()[0]}") from None
    return estimator
