"""The model card of a run and of its release (Mitchell et al., "Model Cards for Model Reporting",
2019): what the model is, what it is for and not for, how it performs on patients it never saw,
what the quality gate decided, its limitations, and who signed it off.

The prose is one template in the repo (``etl/templates/model_card.md.j2``, through
``etl.releases.wording``); every number comes
from the run's own records (``metrics.json``, ``gate.json``, ``training.json``,
``profile.json``), none is written by hand. ``make_report`` writes the run's card before the
decision (``model_card.md`` in the run folder); ``save_results`` writes the release's, with the
sign-off, into the release folder; the UI shows either as HTML (``to_html``).

The sign-off record (``signoff.json``, written by ``etl.orchestration.approval`` when ``[release] approval =
"required"``): ``decision`` (``pending``, ``approved``, ``rejected``, ``timed_out`` or
``not_asked``), ``by`` (the Airflow user), ``at``, ``comment``, ``approvers``. With approval
``auto`` there is none, and the card says no person signed the release off.

Rendering to HTML needs only markdown-it-py: the UI plugin imports this module and stays light.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from etl import catalog
from etl.releases.wording import TEMPLATES, guarantee_line, interval, num, pct
from etl.releases.wording import render as render_template

#: The card's template (its prose, written once; the sign-off's sentence is ``wording.j2``'s).
TEMPLATE = TEMPLATES / "model_card.md.j2"
#: The card's file name, in the run folder and in the release (the catalog's ``model_card``).
CARD = catalog.BY_NAME["model_card"].path

#: The sign-off of a release published with ``[release] approval = "auto"``.
AUTO = {"decision": "auto"}


def flags(metrics: Mapping[str, Any], gate: Mapping[str, Any], profile: Mapping[str, Any]) -> list[str]:
    """What the run flagged, in words (the card's limitations)."""
    out = []
    if profile.get("duplicate_rows_dropped"):
        out.append(f"{profile['duplicate_rows_dropped']} duplicate rows of the input were dropped before training.")
    if profile.get("missing_total"):
        out.append(f"{profile['missing_total']} missing feature values were imputed (the training split's medians).")
    for key, what in (("empty_columns_dropped", "empty columns dropped"), ("ignored_columns", "columns ignored")):
        if profile.get(key):
            out.append(f"Input {what}: {', '.join(map(str, profile[key]))}.")
    point = metrics.get("operating_point") or {}
    if point and not point.get("reachable", True):
        out.append("The target sensitivity could not be reached on the out-of-fold rows: the threshold catches "
                   "every malignant case it can and promises less than the target.")
    expected = metrics.get("expected_performance") or {}
    if expected.get("share_below_target_sensitivity"):
        out.append(f"In {pct(expected['share_below_target_sensitivity'])} of the outer folds the sensitivity was "
                   "below the target: the promise is about new patients on average, not about every batch.")
    for check in gate.get("checks", []):
        if not check.get("passed"):
            out.append(f"The quality gate refused it: {check['check']} ({num(check.get('value'), 4)}, "
                       f"limit {num(check.get('limit'), 4)}).")
    return out


def card_facts(metrics: Mapping[str, Any], training: Mapping[str, Any], gate: Mapping[str, Any],
               profile: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """What the card says, from the run's records; ``run``: ``run_id`` and ``run_key``."""
    from etl.releases.manifest import code_revision, library_versions

    expected = metrics.get("expected_performance") or None
    balance = profile.get("class_balance") or {}
    return {
        "run": dict(run),
        "promise": guarantee_line(metrics) or "(no guarantee recorded)",
        "model": {"candidate": training["candidate"], "estimator": training["estimator"],
                  "params": training.get("params", {}), "threshold": training["threshold"]["threshold"],
                  "malignant_threshold": (training.get("triage") or {}).get("threshold"), "rows": training.get("rows")},
        "versions": library_versions(),
        "code": code_revision(),
        "data": {"source": profile.get("source"), "sha256": profile.get("source_sha256"), "rows": profile.get("rows"),
                 "malignant": balance.get("M", 0), "benign": balance.get("B", 0)},
        "expected": expected,
        "calibration": (expected or {}).get("calibration"),
        "decision_curve": (expected or {}).get("decision_curve"),
        "test": metrics,
        "point": metrics.get("operating_point") or training["threshold"],
        "gate": {"passed": gate.get("passed"), "published_release": gate.get("published_release"),
                 "comparison": {"reason": None, **(gate.get("comparison") or {})}, "checks": gate.get("checks", [])},
        "flags": flags(metrics, gate, profile),
    }


def render(facts: Mapping[str, Any], signoff: Mapping[str, Any] | None = None, release: str | None = None,
           signer: str | None = None) -> str:
    """The card as Markdown: ``facts`` (``card_facts``) with the sign-off and, once published,
    the release's name and the fingerprint of the key that signs it."""
    return render_template(TEMPLATE.name, html=False, **facts, release=release, signoff=dict(signoff or AUTO),
                           signer=signer)


def summary(metrics: Mapping[str, Any], gate: Mapping[str, Any]) -> str:
    """The few lines a person reads before approving (the approval request's body, Markdown)."""
    lines = [f"**Promise:** {metrics.get('guarantee') or '(none recorded)'}"]
    pooled = (metrics.get("expected_performance") or {}).get("pooled")
    if pooled:
        cm = pooled["confusion_matrix"]
        lines.append(f"**Expected on unseen patients** (nested CV, pooled): sensitivity {pct(pooled['sensitivity'])} "
                     f"{interval(pooled['sensitivity_ci95'])} ({cm['tp']} of {pooled['malignant']} malignant "
                     f"caught), specificity {pct(pooled['specificity'])} {interval(pooled['specificity_ci95'])} "
                     f"({cm['tn']} of {pooled['benign']} benign cleared).")
    cm = metrics["confusion_matrix"]
    lines.append(f"**Test split** ({metrics['n_test']} rows): sensitivity {pct(metrics['recall'])} "
                 f"({cm['tp']} caught, {cm['fn']} missed), specificity {pct(metrics['specificity'])}, "
                 f"ROC AUC {num(metrics['roc_auc'])}; threshold {num(metrics['threshold'], 4)}.")
    comparison = gate.get("comparison") or {}
    compared = (f"compared with release `{gate.get('published_release')}` on {comparison.get('rows')} rows neither "
                "trained on" if comparison.get("decided") else f"not compared ({comparison.get('reason')})")
    lines.append(f"**Quality gate:** {'passed' if gate.get('passed') else 'refused'}, "
                 f"{len(gate.get('checks', []))} checks; {compared}.")
    return "\n\n".join(lines)


def to_html(markdown: str, title: str = "Model card") -> str:
    """The card as a self-contained HTML page (markdown-it-py, CommonMark with tables; raw HTML
    in the Markdown is escaped, not passed through)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;"
            "line-height:1.45;color:#222}table{border-collapse:collapse;margin:.5rem 0}"
            "td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}code{font-size:.9em}"
            f"</style></head><body>{body}</body></html>")


def facts_of(inputs: Any, run_info: Mapping[str, Any]) -> dict[str, Any]:
    """``card_facts`` from a step's inputs (``etl.catalog.StepInputs`` of ``make_report`` or
    ``save_results``: metrics, training, gate, profile)."""
    from etl import storage

    metrics, training, gate, profile = (storage.read_json(p) for p in
                                        (inputs.metrics, inputs.training, inputs.gate, inputs.profile))
    return card_facts(metrics, training, gate, profile,
                      {"run_id": run_info.get("run_id") or inputs.run_key, "run_key": inputs.run_key})


def write_card(inputs: Any, card_path: Any, run_info: Mapping[str, Any],
               signoff: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Write the run's card (before the decision) to ``card_path``.

    Returns:
        ``{"model_card": card_path}``
    """
    from etl import storage

    storage.write_bytes(render(facts_of(inputs, run_info), signoff).encode("utf-8"), card_path)
    return {"model_card": str(card_path)}
