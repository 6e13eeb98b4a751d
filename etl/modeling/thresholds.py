"""The operating point: the threshold a model's probability is read at, chosen by a stated rule
(``RULES``) on out-of-fold probabilities, and the one sentence of what it promises.

- ``risk_control`` (default): *expected sensitivity on new patients >= target*. Conformal risk
  control (Angelopoulos et al., 2022) for the miss rate: with ``n`` malignant out-of-fold rows,
  the threshold may miss ``k`` of them when ``(k + 1) / (n + 1) <= 1 - target``.
- ``exact_bound``: *sensitivity on new patients >= target with probability ``confidence``*: the
  exact one-sided lower bound of the out-of-fold sensitivity reaches the target.

The second, higher threshold of the three-way call (``malignant_threshold``): a case is called
*malignant* only at or above it, with the same conformal risk control on the benign
out-of-fold rows: with ``n`` of them, it may flag ``k`` when ``(k + 1) / (n + 1) <= 1 -
target_malignant_specificity``, so that the expected share of benign patients called malignant
is at most ``1 - target_malignant_specificity``. Between the two thresholds: *refer*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from etl.catalog import ParameterError

RULES = ("risk_control", "exact_bound")


# -- operating point -------------------------------------------------------------------------

def allowed_misses(malignant: int, target_sensitivity: float, rule: str, confidence: float = 0.0) -> int | None:
    """How many of ``malignant`` out-of-fold malignant rows a threshold may miss under ``rule``;
    None when even missing none does not give the guarantee (too few rows)."""
    from etl.modeling.stats import lower_bound

    n, alpha = malignant, 1 - target_sensitivity
    if rule == "risk_control":
        k = math.floor(alpha * (n + 1) - 1 + 1e-9)
        return k if k >= 0 else None
    if rule == "exact_bound":
        # The fewest caught whose exact lower bound reaches the target: the bound grows with the
        # count caught, so a bisection finds it (17 bounds at 64k malignant rows, not 60k).
        def reaches(caught: int) -> bool:
            return lower_bound(caught, n, confidence) >= target_sensitivity - 1e-12

        if not reaches(n):
            return None
        low, high = 0, n
        while low < high:
            mid = (low + high) // 2
            low, high = (low, mid) if reaches(mid) else (mid + 1, high)
        return n - low
    if rule == "none":
        return math.floor(alpha * n + 1e-9)
    raise ParameterError(f"threshold rule {rule!r} is not one of {', '.join(RULES)}")


def guarantee(rule: str, target_sensitivity: float, confidence: float = 0.0) -> str:
    """The one sentence that says what the operating point promises."""
    if rule == "risk_control":
        return (f"Expected sensitivity on new patients of at least {target_sensitivity:.0%} "
                "(conformal risk control on the out-of-fold malignant cases).")
    if rule == "exact_bound":
        return (f"Sensitivity on new patients of at least {target_sensitivity:.0%} with probability "
                f"{confidence:.0%} (exact one-sided bound on the out-of-fold malignant cases).")
    raise ParameterError(f"threshold rule {rule!r} is not one of {', '.join(RULES)}")


def _threshold_at(scores: np.ndarray, y: np.ndarray, misses: int) -> float:
    """The threshold that misses ``misses`` malignant rows of ``scores``: halfway between the
    highest score it may miss and the lowest it must catch (every threshold in that gap misses
    the same rows; the midpoint leaves room on both sides)."""
    malignant = np.sort(scores[y == 1])
    return float((malignant[misses - 1] + malignant[misses]) / 2 if misses else malignant[0])


def _rates(oof: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    oof = np.atleast_2d(oof)
    return {"sensitivity": float(np.mean(oof[:, y == 1] >= threshold)),
            "specificity": float(np.mean(oof[:, y == 0] < threshold))}


def choose_threshold(y: np.ndarray, oof: np.ndarray, target_sensitivity: float, rule: str = "risk_control",
                     confidence: float = 0.0) -> dict[str, Any]:
    """The operating point of ``rule`` on out-of-fold probabilities ``oof`` (one row per repeat,
    averaged per row before the threshold is read).

    Returns:
        ``threshold``, ``rule``, ``guarantee`` (the sentence), ``target_sensitivity``,
        ``confidence``, ``malignant`` (out-of-fold malignant rows per repeat), ``allowed_misses``,
        the out-of-fold ``sensitivity`` / ``specificity`` at the threshold (over the repeats),
        ``reachable`` (False: too few malignant rows for the guarantee; the threshold then
        catches every one), ``threshold_per_repeat`` (each repeat's own, for the record); and
        ``alternatives``: the threshold and
        out-of-fold rates of the other rule and of no margin at all (``none``: the target
        met exactly on these rows), the price of each guarantee in specificity.
    """
    if not 0 < target_sensitivity < 1:
        raise ParameterError(f"target_sensitivity must be in (0, 1), got {target_sensitivity}")
    if not 0 <= confidence < 1:
        raise ParameterError(f"threshold_confidence must be in [0, 1), got {confidence}")
    oof = np.atleast_2d(np.asarray(oof, dtype=float))
    mean = oof.mean(axis=0)  # each row's out-of-fold probability, averaged over the repeats
    n = int(np.sum(y == 1))
    if n == 0:
        raise ParameterError("no malignant rows to choose a threshold on")

    def point(r: str) -> dict[str, Any]:
        k = allowed_misses(n, target_sensitivity, r, confidence)
        t = _threshold_at(mean, y, k if k is not None else 0)
        return {"threshold": t, "allowed_misses": k if k is not None else 0, "reachable": k is not None,
                **_rates(mean, y, t)}

    chosen = point(rule)
    k = chosen["allowed_misses"]
    return {
        **chosen, "rule": rule, "guarantee": guarantee(rule, target_sensitivity, confidence),
        "target_sensitivity": target_sensitivity, "confidence": confidence if rule == "exact_bound" else None,
        "malignant": n,
        "threshold_per_repeat": [_threshold_at(row, y, k) for row in oof],
        "alternatives": {r: point(r) for r in (*RULES, "none") if r != rule},
    }


# -- the three-way call ------------------------------------------------------------------------


def malignant_threshold(y: np.ndarray, oof: np.ndarray, target_specificity: float, lower: float) -> dict[str, Any]:
    """The threshold at or above which a case is called *malignant* (module docstring), on the
    out-of-fold probabilities ``oof`` (averaged per row over the repeats), never below ``lower``
    (the sensitivity threshold: below it a case is called benign).

    Returns:
        ``threshold``, ``allowed_false_alarms`` (benign out-of-fold rows at or above it the rule
        allows), ``benign``, ``target_specificity``, ``reachable`` (False: too few benign rows for
        the guarantee; no case is then called malignant by this rule: every threshold above the
        highest benign row), and ``guarantee`` (the sentence).
    """
    if not 0 < target_specificity < 1:
        raise ParameterError(f"target_malignant_specificity must be in (0, 1), got {target_specificity}")
    mean = np.atleast_2d(np.asarray(oof, dtype=float)).mean(axis=0)
    benign = np.sort(mean[y == 0])[::-1]  # highest first
    n = len(benign)
    if n == 0:
        raise ParameterError("no benign rows to choose the malignant threshold on")
    k = math.floor((1 - target_specificity) * (n + 1) - 1 + 1e-9)
    reachable = k >= 0
    k = max(k, 0)
    # Above the (k + 1)-th highest benign score: at most k benign rows at or above it. Halfway to
    # the next score above (the k-th highest), as the sensitivity threshold is read.
    threshold = float((benign[k] + benign[k - 1]) / 2) if k else float(np.nextafter(benign[0], np.inf))
    return {"threshold": max(threshold, lower), "allowed_false_alarms": k if reachable else 0, "benign": n,
            "target_specificity": target_specificity, "reachable": reachable,
            "guarantee": triage_guarantee(target_specificity)}


def triage_guarantee(target_specificity: float) -> str:
    """The one sentence that says what a *malignant* call promises."""
    return (f"Expected share of benign patients called malignant of at most {1 - target_specificity:.0%} "
            "(conformal risk control on the out-of-fold benign cases); cases between the two thresholds are referred.")


#: The three calls, in order of probability.
CALLS = ("benign", "refer", "malignant")


def call(probabilities: Any, benign_below: float, malignant_from: float) -> np.ndarray:
    """The three-way call of each probability: ``benign`` below ``benign_below``, ``malignant``
    at or above ``malignant_from``, ``refer`` between."""
    p = np.asarray(probabilities, dtype=float)
    return np.where(p < benign_below, "benign", np.where(p >= malignant_from, "malignant", "refer"))


def triage_counts(y: np.ndarray, probabilities: Any, benign_below: float, malignant_from: float) -> dict[str, Any]:
    """How many of the malignant and of the benign rows (``y``: 1 malignant) get each call."""
    calls = call(probabilities, benign_below, malignant_from)
    y = np.asarray(y)
    return {cls: {c: int(np.sum((calls == c) & (y == v))) for c in CALLS} for cls, v in (("malignant", 1), ("benign", 0))}


def triage_shares(counts: Mapping[str, Mapping[str, int]], repeats: int = 1) -> dict[str, Any]:
    """What each call contains, from ``triage_counts`` (summed over folds): malignant cleared as
    benign (the first promise), benign called malignant (the second), the share of each class
    and of all rows referred; each with its exact 95 % interval, taken at the number of distinct
    patients when ``repeats`` rescored them (as ``etl.modeling.nested.pooled_counts``)."""
    from etl.modeling.stats import proportions

    m, b = counts["malignant"], counts["benign"]
    n_m, n_b = sum(m.values()), sum(b.values())
    return {"counts": {k: dict(v) for k, v in counts.items()}, "malignant": n_m, "benign": n_b,
            **proportions((("malignant_called_benign", m["benign"], n_m), ("benign_called_malignant", b["malignant"], n_b),
                           ("malignant_referred", m["refer"], n_m), ("benign_referred", b["refer"], n_b),
                           ("referred", m["refer"] + b["refer"], n_m + n_b)), repeats)}
