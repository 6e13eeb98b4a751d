"""What each release really does: confirmed diagnoses joined to the predictions that scored
them, counted per release, per batch and per calendar month, and the alarm when a release's
promise is shown broken. Pure: tables in, records out (``etl.outcomes`` reads and writes).

The rules:

- an outcome joins **every prediction of its id** (an id scored in two batches counts in both
  batches, for the release that scored each): so an outcome for a release that is no longer
  current still counts for that release;
- the same outcome (id and diagnosis) sent twice counts once;
- two different outcomes for one id are a **conflict**: counted nowhere, listed with the files
  they came from, until the wrong one is withdrawn;
- an outcome for an id never scored is kept aside (``unmatched``) and reported.

Counts: cases confirmed, caught / malignant (sensitivity) and cleared / benign (specificity)
with exact Clopper-Pearson 95 % intervals, PPV, the Brier score, and the calibration table of
``etl.modeling.stats`` (predicted risk bands against the observed share).

**The alarm** (``[outcomes]``), per release on all its confirmed cases:

- *sensitivity*: at least ``alarm_min_malignant`` confirmed malignant cases, and the exact
  one-sided upper bound of the realized sensitivity at ``alarm_confidence`` is below the
  release's target: the promise is broken beyond noise;
- *calibration*: at least ``alarm_min_cases`` confirmed cases, and Spiegelhalter's z test
  rejects calibration at ``1 - alarm_confidence``.
- *malignant calls* (the three-way call's second promise, ``etl.modeling.thresholds``): at
  least ``alarm_min_cases`` confirmed benign cases, and the exact one-sided lower bound of the
  share of them called malignant at ``alarm_confidence`` is above ``1 -
  target_malignant_specificity``.

Cases out of scope (no probability, no call) are counted apart (``out_of_scope``); the realized
figures per call are in ``calls`` (malignant among the benign calls, benign among the malignant
calls, the referral share).

The minimum counts are there because the exact bound alone would alarm on a handful: two
malignant cases, both missed (0 of 2 caught: the 99 % upper bound is 0.90), a chance that a
model with 97 % sensitivity meets once in a thousand pairs, and among the first few cases of
every release. With 20 malignant cases and the default 0.99, the alarm needs at least 4 of the
20 missed (16 of 20 caught: upper bound 0.956 < 0.97; 17 of 20: 0.977). Each recomputation is one look at the same growing counts; the confidence is
per look, so over many batches false alarms are likelier than 1 %: read a raised alarm as "look
now", not as proof.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from etl.modeling.stats import calibration_table, lower_bound, proportions, spiegelhalter, upper_bound
from etl.modeling.thresholds import CALLS

#: The columns of the confirmed-outcome ledger (``etl.outcomes``).
LEDGER_COLUMNS = ("id", "diagnosis", "date", "file")
#: The columns of the predictions table: every scored batch's ``predictions.csv`` with its batch.
PREDICTION_COLUMNS = ("id", "malignant_probability", "predicted", "release", "batch")


def resolve(ledger: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """One confirmed diagnosis per id, and the conflicts.

    Returns:
        the resolved outcomes (``id``, ``diagnosis``, ``date``: the earliest given, ``received``:
        the earliest arrival, ``files``) and, for every id with two different diagnoses,
        ``{"id", "diagnoses", "files"}``.
    """
    columns = ["id", "diagnosis", "date", "received", "files"]
    if ledger.empty:
        return pd.DataFrame(columns=columns), []
    resolved, conflicts = [], []
    for ident, rows in ledger.groupby("id", sort=True):
        diagnoses = sorted(set(rows["diagnosis"]))
        files = sorted(set(rows["file"]))
        if len(diagnoses) > 1:
            conflicts.append({"id": str(ident), "diagnoses": {d: sorted(set(rows.loc[rows["diagnosis"] == d, "file"]))
                                                              for d in diagnoses}, "files": files})
            continue
        dates = sorted(d for d in rows["date"] if isinstance(d, str) and d)
        received = sorted(rows["received"]) if "received" in rows else []
        resolved.append({"id": str(ident), "diagnosis": diagnoses[0], "date": dates[0] if dates else "",
                         "received": received[0] if received else "", "files": files})
    return pd.DataFrame(resolved, columns=columns), conflicts


def join(resolved: pd.DataFrame, predictions: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Each resolved outcome with every prediction of its id; the ids never scored."""
    scored = set(predictions["id"].astype(str))
    unmatched = sorted(set(resolved["id"]) - scored)
    matched = predictions.assign(id=predictions["id"].astype(str)).merge(resolved, on="id", how="inner")
    return matched, unmatched


def counts(y: np.ndarray, p: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """The realized figures of confirmed cases ``y`` (1 malignant) predicted ``p`` /
    ``predicted`` (1 flagged malignant)."""
    y, p, predicted = (np.asarray(a) for a in (y, p, predicted))
    tp = int(np.sum((y == 1) & (predicted == 1)))
    fn = int(np.sum((y == 1) & (predicted == 0)))
    tn = int(np.sum((y == 0) & (predicted == 0)))
    fp = int(np.sum((y == 0) & (predicted == 1)))
    out: dict[str, Any] = {"confirmed": len(y), "malignant": tp + fn, "caught": tp, "benign": tn + fp, "cleared": tn,
                           "flagged": tp + fp}
    out.update(proportions((("sensitivity", tp, tp + fn), ("specificity", tn, tn + fp), ("ppv", tp, tp + fp)),
                           none_when_empty=True))
    out["brier"] = float(np.mean((p - y) ** 2)) if len(y) else None
    return out


def call_figures(y: np.ndarray, calls: np.ndarray) -> dict[str, Any] | None:
    """The realized figures per three-way call (``etl.modeling.thresholds``) of confirmed cases
    ``y`` (1 malignant): each call's cases, how many malignant and benign; malignant among the
    *benign* calls, benign among the *malignant* calls, the referral share (exact 95 %
    intervals); and the two promises' rates: the share of malignant cases called benign, of
    benign cases called malignant. None for predictions made before the call existed."""
    calls = np.asarray(calls, dtype=object)
    known = np.isin(calls, CALLS)
    if not known.any():
        return None
    y, calls = np.asarray(y)[known], calls[known]
    out: dict[str, Any] = {c: {"cases": int(np.sum(calls == c)), "malignant": int(np.sum((calls == c) & (y == 1))),
                               "benign": int(np.sum((calls == c) & (y == 0)))} for c in CALLS}
    return {**out, **proportions((
        ("malignant_among_benign_calls", out["benign"]["malignant"], out["benign"]["cases"]),
        ("benign_among_malignant_calls", out["malignant"]["benign"], out["malignant"]["cases"]),
        ("referred", out["refer"]["cases"], len(calls)),
        ("malignant_called_benign", out["benign"]["malignant"], int(np.sum(y == 1))),
        ("benign_called_malignant", out["malignant"]["benign"], int(np.sum(y == 0)))), none_when_empty=True)}


def alarm(figures: Mapping[str, Any], y: np.ndarray, p: np.ndarray, target: float | None,
          confidence: float, min_malignant: int, min_cases: int,
          calls: Mapping[str, Any] | None = None, target_malignant_specificity: float | None = None) -> dict[str, Any]:
    """The alarm rule (module docstring) on one release's confirmed cases; with the three-way
    ``calls`` (``call_figures``) and the release's second promise, that one too: benign cases
    called malignant, whose exact ``confidence`` lower bound is above ``1 -
    target_malignant_specificity`` on at least ``min_cases`` benign cases."""
    reasons, checks = [], {}
    if calls is not None and target_malignant_specificity is not None:
        k, n = calls["malignant"]["benign"], sum(calls[c]["benign"] for c in CALLS)
        limit = 1 - target_malignant_specificity
        low = lower_bound(k, n, confidence) if n else 0.0
        enough = n >= min_cases
        checks["malignant_calls"] = {"lower_bound": low, "confidence": confidence, "limit": limit, "benign": n,
                                     "called_malignant": k, "needs_benign": min_cases, "decided": enough,
                                     "broken": enough and low > limit}
        if checks["malignant_calls"]["broken"]:
            reasons.append(f"benign called malignant {k} of {n} ({k / n:.3f}): its {confidence:.0%} lower bound "
                           f"{low:.3f} is above the promised {limit:.3f}")
    if target is not None:
        bound = upper_bound(figures["caught"], figures["malignant"], confidence)
        enough = figures["malignant"] >= min_malignant
        checks["sensitivity"] = {"upper_bound": bound, "confidence": confidence, "target": target,
                                 "malignant": figures["malignant"], "needs_malignant": min_malignant,
                                 "decided": enough, "broken": enough and bound < target}
        if checks["sensitivity"]["broken"]:
            reasons.append(f"realized sensitivity {figures['caught']} of {figures['malignant']} "
                           f"({figures['sensitivity']:.3f}): its {confidence:.0%} upper bound {bound:.3f} "
                           f"is below the target {target:.3f}")
    test = spiegelhalter(y, p)
    enough = figures["confirmed"] >= min_cases
    checks["calibration"] = {**test, "alpha": 1 - confidence, "needs_cases": min_cases, "decided": enough,
                             "broken": enough and test["p_value"] < 1 - confidence}
    if checks["calibration"]["broken"]:
        reasons.append(f"calibration moved: Spiegelhalter z = {test['z']:.2f}, p = {test['p_value']:.2g} "
                       f"on {figures['confirmed']} cases")
    return {"raised": bool(reasons), "reasons": reasons, "checks": checks}


def _month(row: Mapping[str, Any]) -> str:
    return str(row.get("date") or row.get("received") or "")[:7] or "unknown"


def release_records(matched: pd.DataFrame, promises: Mapping[str, Mapping[str, Any]],
                    confidence: float, min_malignant: int, min_cases: int) -> dict[str, dict[str, Any]]:
    """Per release: the totals, per batch, per month, the calibration table and the alarm.
    ``promises``: per release, its ``target_sensitivity`` and ``expected`` performance."""
    records = {}
    for release, scored in matched.groupby("release", sort=True):
        outside = scored["malignant_probability"].isna()  # out of scope: no probability, counted apart
        rows = scored[~outside]
        y = (rows["diagnosis"] == "M").to_numpy(int)
        p = rows["malignant_probability"].to_numpy(float)
        predicted = (rows["predicted"] == "M").to_numpy(int)
        figures = counts(y, p, predicted)
        calls = call_figures(y, rows["call"].to_numpy() if "call" in rows else np.full(len(rows), None))
        promise = promises.get(str(release), {})
        by = {}
        for key, column in (("by_batch", rows["batch"]), ("by_month", rows.apply(_month, axis=1))):
            by[key] = {}
            for value in sorted(set(column)):
                inside = (column == value).to_numpy()
                by[key][str(value)] = counts(y[inside], p[inside], predicted[inside])
        records[str(release)] = {
            "release": str(release),
            "target_sensitivity": promise.get("target_sensitivity"),
            "expected": promise.get("expected"),
            "realized": {**figures, "calibration": calibration_table(y, p)},
            "calls": calls,  # per three-way call (None: predictions from before the call)
            "out_of_scope": int(outside.sum()),  # confirmed cases the release gave no answer for (etl.data.scope)
            **by,
            "alarm": alarm(figures, y, p, promise.get("target_sensitivity"), confidence, min_malignant, min_cases,
                           calls, promise.get("target_malignant_specificity")),
        }
    return records
