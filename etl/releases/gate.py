"""The quality gate: what a new model must clear before ``save_results`` publishes it.

Every check is made on rows the judged model never trained on:

1. **Floors** on the run's own test split: ROC AUC at least ``min_roc_auc``, and a sensitivity
   at the operating point whose exact one-sided upper bound at ``floor_confidence`` reaches
   ``target_sensitivity`` (with 42 malignant test rows and the defaults, 40 caught pass and 39
   do not: the floor follows the target).
2. **Against the published model**, when there is one: both models scored on the run's test
   rows that the published model did not train on either (its manifest lists its training rows'
   ids; the hash split keeps the test rows the same across seeds, so that is nearly all of
   them). The new model must be *shown non-inferior* at ``alpha``: its sensitivity and its
   specificity at the two models' own operating points no worse than the published model's by
   ``sensitivity_margin`` / ``specificity_margin`` or more (exact paired tests on the rows where
   they disagree, ``etl.modeling.stats.noninferior_paired``), its ROC AUC no worse by ``roc_auc_margin``
   (DeLong). All three must hold (an intersection-union test: no correction for three tests).
   When fewer than ``min_unseen_positives`` malignant or ``min_unseen_negatives`` benign such
   rows remain, the gate does not decide on noise: it says so and the floors alone decide.

The decision, every check, and the rows compared go to the run's ``gate.json``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from etl import storage
from etl.catalog import MissingInputError, StepInputs
from etl.data.schema import ID_COLUMN, LABEL_CODES, TARGET_COLUMN
from etl.releases.reader import current_release, open_release
from etl.settings import GateSettings
from etl.storage import Location, Target
from etl.storage.layout import ReleasePaths

logger = logging.getLogger(__name__)


def _check(name: str, value: float, limit: float, passed: bool, passes_if: str = ">=", **detail: Any) -> dict[str, Any]:
    """One check's record: it passes when ``value`` ``passes_if`` ``limit`` (``>=``, or ``<`` for a p-value)."""
    return {"check": name, "value": float(value), "limit": float(limit), "passed": bool(passed),
            "passes_if": passes_if, **detail}


def floors(metrics: dict[str, Any], gate: GateSettings) -> list[dict[str, Any]]:
    """The checks of the run's test metrics alone. The sensitivity floor is the target the
    model's threshold was chosen for (its ``operating_point``): the floor follows the target."""
    from etl.modeling.stats import clopper_pearson

    cm, target = metrics["confusion_matrix"], metrics["operating_point"]["target_sensitivity"]
    # The one-sided upper bound at floor_confidence: the upper end of the two-sided interval at
    # 2 * confidence - 1. floor_confidence 0 turns the floor off.
    level = 2 * gate.floor_confidence - 1
    if gate.floor_confidence <= 0:
        upper = 1.0
    else:
        upper = clopper_pearson(cm["tp"], cm["tp"] + cm["fn"], level)[1] if level > 0 else cm["tp"] / max(1, cm["tp"] + cm["fn"])
    return [
        _check("roc_auc >= min_roc_auc", metrics["roc_auc"], gate.min_roc_auc,
               metrics["roc_auc"] >= gate.min_roc_auc),
        _check(f"sensitivity's upper {100 * gate.floor_confidence:g} % bound >= target_sensitivity", upper,
               target, upper >= target - 1e-12,
               sensitivity=metrics["recall"], caught=cm["tp"], malignant=cm["tp"] + cm["fn"]),
    ]


def unseen_rows(test_ids: Iterable[str], trained_on: Iterable[str]) -> list[str]:
    """The test rows (ids, in order) that the published model did not train on."""
    seen = set(map(str, trained_on))
    return [i for i in map(str, test_ids) if i not in seen]


def compare_with_published(run: StepInputs, release: Target, gate: GateSettings) -> dict[str, Any]:
    """Both models on the run's test rows that neither trained on; ``decided`` is False, with the
    reason, when the published release does not list its training rows or too few remain."""
    from etl.modeling.stats import delong, noninferior_paired

    published = open_release(release)  # verified before anything of it is used
    trained_on = published.manifest.get("data", {}).get("train_ids")
    if trained_on is None:
        return {"decided": False, "reason": "the published release does not list the rows it trained on"}
    test = storage.read_frame(run.test)  # ids and labels, in predictions' order
    predictions = storage.read_frame(run.predictions)
    ours = test[[ID_COLUMN, TARGET_COLUMN]].assign(
        malignant_probability=predictions["malignant_probability"].to_numpy()).set_index(ID_COLUMN)
    ids = unseen_rows(ours.index, trained_on)
    ours = ours.loc[ids]
    y = ours[TARGET_COLUMN].map(LABEL_CODES).to_numpy(dtype=int)
    record: dict[str, Any] = {"rows": len(ids), "malignant": int(y.sum()), "benign": int(len(y) - y.sum()),
                              "excluded_trained_on_by_published": len(test) - len(ids), "ids": ids}
    if record["malignant"] < gate.min_unseen_positives or record["benign"] < gate.min_unseen_negatives:
        return {"decided": False, **record,
                "reason": f"only {record['malignant']} malignant and {record['benign']} benign test rows that "
                          f"neither model trained on (need {gate.min_unseen_positives} and "
                          f"{gate.min_unseen_negatives}): too few to tell the two models apart"}
    data = storage.read_frame(run.data)
    theirs_p = published.probabilities(data.set_index(ID_COLUMN).loc[ids])
    theirs_t = published.threshold
    ours_p = ours["malignant_probability"].to_numpy()
    ours_t = storage.read_json(run.metrics)["threshold"]
    level = gate.alpha  # all three must be shown (intersection-union): each at alpha; 0 turns them off

    def shown(p_value: float) -> bool:
        return p_value < level if level > 0 else True
    auc = delong(y, theirs_p, ours_p, gate.roc_auc_margin)
    pos, neg = y == 1, y == 0
    sens = noninferior_paired(theirs_p[pos] >= theirs_t, ours_p[pos] >= ours_t, gate.sensitivity_margin)
    spec = noninferior_paired(theirs_p[neg] < theirs_t, ours_p[neg] < ours_t, gate.specificity_margin)
    # A check passes when its p-value is below the level: the new model is shown no worse than
    # the published one by the margin (value: p, limit: alpha).
    checks = [
        _check(f"roc_auc not worse than published by {gate.roc_auc_margin:g} (DeLong non-inferiority, p < alpha)",
               auc["p_value"], level, shown(auc["p_value"]), "<", published=auc["auc_a"], new=auc["auc_b"],
               margin=gate.roc_auc_margin),
        _check(f"sensitivity not worse than published by {gate.sensitivity_margin:g} (exact paired "
               "non-inferiority, p < alpha)", sens["p_value"], level, shown(sens["p_value"]), "<",
               published=float(np.mean(theirs_p[pos] >= theirs_t)), new=float(np.mean(ours_p[pos] >= ours_t)),
               missed_only_by_new=sens["only_old"], missed_only_by_published=sens["only_new"],
               margin=gate.sensitivity_margin),
        _check(f"specificity not worse than published by {gate.specificity_margin:g} (exact paired "
               "non-inferiority, p < alpha)", spec["p_value"], level, shown(spec["p_value"]), "<",
               published=float(np.mean(theirs_p[neg] < theirs_t)), new=float(np.mean(ours_p[neg] < ours_t)),
               false_alarms_only_by_new=spec["only_old"], false_alarms_only_by_published=spec["only_new"],
               margin=gate.specificity_margin),
    ]
    return {"decided": True, **record, "checks": checks}


def quality_gate(run: StepInputs, results_dir: Location, gate: GateSettings) -> dict[str, Any]:
    """Check the run against the floors and, on rows neither trained on, the published model.

    Returns:
        The record written to ``gate.json``: ``passed``, every check made, ``published_release``
        and ``comparison`` (what was compared with the published model, on which rows, or why
        nothing was).
    """
    metrics = storage.read_json(run.metrics)
    checks = floors(metrics, gate)
    record: dict[str, Any] = {"gate": dataclasses.asdict(gate), "published_release": None, "comparison": None}
    try:
        published = current_release(results_dir)
    except MissingInputError:
        published = None
    if published is None:
        record["comparison"] = {"decided": False, "reason": "nothing is published yet"}
    elif ReleasePaths(published).run_key == run.run_key:
        record["comparison"] = {"decided": False, "reason": "the published release is this run's"}
    else:
        record["published_release"] = published.name
        record["comparison"] = compare_with_published(run, published, gate)
        checks += record["comparison"].pop("checks", [])  # recorded once, with the floors
        if not record["comparison"]["decided"]:
            logger.info("not compared with the published model: %s", record["comparison"]["reason"])
    record.update(passed=all(c["passed"] for c in checks), checks=checks)
    return record


def check_run(inputs: StepInputs, gate_path: Location, results_dir: Location, gate: GateSettings) -> dict[str, Any]:
    """The ``quality_gate`` step: decide on the run's model and write the decision to
    ``gate_path`` (``gate.json``). The only place the decision is made: ``save_results``
    publishes by it, or not at all.

    Returns:
        ``{"gate": gate_path, "passed": ...}``
    """
    gate_path = storage.location(gate_path)
    if storage.exists(gate_path) and _published_run_key(results_dir) == inputs.run_key:
        # This run's model was published on this decision: a rerun keeps it (idempotent).
        verdict = storage.read_json(gate_path)
        logger.info("this run's model is the published one: its gate decision stands")
        return {"gate": str(gate_path), "passed": verdict["passed"]}
    verdict = quality_gate(inputs, storage.location(results_dir), gate)
    storage.write_json(verdict, gate_path)
    logger.info("quality gate %s: %s", "passed" if verdict["passed"] else "refused",
                "; ".join(f"{c['check']}: {c['value']:.4f} (limit {c['limit']:.4f})" for c in verdict["checks"]))
    return {"gate": str(gate_path), "passed": verdict["passed"]}


def _published_run_key(results_dir: Location) -> str | None:
    try:
        return ReleasePaths(current_release(results_dir)).run_key
    except MissingInputError:
        return None
