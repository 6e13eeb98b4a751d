"""A self-contained HTML report of a run (``report.html``): images embedded, no network needed.

Sections: the data profile and class balance, the expected performance on unseen patients
(nested cross-validation), the candidates' cross-validation scores and the selection rule, the
chosen threshold and its price in specificity, the test metrics with their confidence
intervals, the quality gate's decision (what was compared, on which rows), ROC and precision-recall
curves, the confusion matrix, the calibration curve, and what drives the model (the logistic
regression's coefficients, a forest's feature importances, or permutation importance).
"""

from __future__ import annotations

import base64
import html
import io
import logging
from typing import Any

import numpy as np
import pandas as pd

from etl import runner, storage
from etl.catalog import StepInputs
from etl.data.schema import FEATURE_COLUMNS, LABEL_CODES, SCORES, TARGET_COLUMN
from etl.releases.wording import expected_line, guarantee_line
from etl.runner import Outputs, Run, Step

logger = logging.getLogger(__name__)

#: Section ids, in order (a test checks each is present).
SECTIONS = ("data", "expected", "cross-validation", "threshold", "metrics", "gate", "curves", "confusion",
            "calibration", "features")


def _figure() -> tuple[Any, Any]:
    """A figure and its axes, drawn off-screen (matplotlib's object API: no pyplot, no GUI
    backend, no global state; cheaper to import)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 4.0), dpi=100)
    fig.subplots_adjust(left=0.14, right=0.96, bottom=0.13, top=0.91)
    return fig, fig.subplots()


def _png(fig: Any) -> str:
    """An ``<img>`` with the figure as an embedded PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _drivers(model: Any, X: pd.DataFrame, y: np.ndarray, random_state: int) -> tuple[str, pd.Series]:
    """What the model relies on: coefficients, impurity importances or permutation importance."""
    if hasattr(model, "coef_"):
        return "Logistic regression coefficients (scaled features; > 0 pushes towards malignant)", \
            pd.Series(model.coef_[0], index=FEATURE_COLUMNS)
    if hasattr(model, "feature_importances_"):
        return "Feature importances (mean impurity decrease)", pd.Series(model.feature_importances_, index=FEATURE_COLUMNS)
    import warnings

    from sklearn.inspection import permutation_importance

    # On the array, not the frame: the same numbers in a third less time (each of the 151
    # predictions would check the frame's 30 columns again). The model, fitted on named
    # columns, warns that the array has no names: they are the same columns, in order.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
        result = permutation_importance(model, X.to_numpy(), y, scoring="roc_auc", n_repeats=5,
                                        random_state=random_state)
    return "Permutation importance on the test split (drop in ROC AUC)", \
        pd.Series(result.importances_mean, index=FEATURE_COLUMNS)


def _gate_section(run: StepInputs) -> str:
    """The quality gate's decision (``gate.json``)."""
    verdict = storage.read_json(run.gate)
    comparison = verdict.get("comparison") or {}
    if comparison.get("decided"):
        compared = (f"Compared with the published release {html.escape(str(verdict['published_release']))} on the "
                    f"{comparison['rows']} test rows neither model trained on ({comparison['malignant']} malignant, "
                    f"{comparison['benign']} benign; {comparison['excluded_trained_on_by_published']} test rows left "
                    "out because the published model trained on them).")
    else:
        compared = f"Not compared with a published model: {html.escape(comparison.get('reason', 'no comparison'))}."
    rows = [[c["check"], f"{c['value']:.4f}", f"{c['limit']:.4f}", "passed" if c["passed"] else "FAILED"]
            for c in verdict["checks"]]
    decision = "passed: published" if verdict["passed"] else "refused: the published model stays"
    return f"<p>Decision: <b>{decision}</b>. {compared}</p>" + _table(rows, ["check", "value", "limit", "result"])


def build_report(run: StepInputs, random_state: int) -> str:
    """The report of the evaluated run whose files are ``run`` (``make_report``'s inputs), as one
    HTML document."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    profile = storage.read_json(run.profile)
    training = storage.read_json(run.training)
    metrics = storage.read_json(run.metrics)
    predictions = storage.read_frame(run.predictions)
    test = storage.read_frame(run.test)
    model = storage.load_object(run.model)
    y = predictions[TARGET_COLUMN].map(LABEL_CODES).to_numpy(dtype=int)
    p = predictions["malignant_probability"].to_numpy()
    threshold = metrics["threshold"]
    parts = []

    balance = profile["class_balance"]
    fig, ax = _figure()
    ax.bar(["malignant (M)", "benign (B)"], [balance.get("M", 0), balance.get("B", 0)], color=["#c0392b", "#2980b9"])
    ax.set_ylabel("rows")
    ax.set_title("Class balance")
    parts.append(("data", "Data", _table(
        [["source", profile["source"]], ["SHA-256", profile["source_sha256"]], ["rows", profile["rows"]],
         ["rows read", profile["rows_read"]], ["duplicates dropped", profile["duplicate_rows_dropped"]],
         ["missing values (imputed)", profile["missing_total"]], ["malignant / benign", f"{balance.get('M', 0)} / {balance.get('B', 0)}"]],
        ["", ""]) + _png(fig)))

    expected = metrics.get("expected_performance")
    if expected:
        e = expected["scores"]
        pooled = expected.get("pooled")
        body = (f"<p>The whole procedure (every candidate's cross-validation with its preprocessing, the "
                f"selection, the threshold) run {expected['outer_folds']} times by nested cross-validation, each "
                f"time on all rows but one outer fold and scored on that fold, which it never saw "
                f"({expected['rows_scored']} rows scored in all). This is what to expect on new patients; the "
                f"test split below checks the one model published.</p>"
                + (f"<p><b>Pooled over every row scored: {html.escape(expected_line(expected))}</b> (exact 95 % "
                   f"intervals, at the number of patients).</p>" + _table(
                       [[f"repeat {r['repeat']}", f"{r['confusion_matrix']['tp']} / {r['malignant']}",
                         f"{r['sensitivity']:.3f} [{r['sensitivity_ci95'][0]:.3f}, {r['sensitivity_ci95'][1]:.3f}]",
                         f"{r['confusion_matrix']['tn']} / {r['benign']}",
                         f"{r['specificity']:.3f} [{r['specificity_ci95'][0]:.3f}, {r['specificity_ci95'][1]:.3f}]"]
                        for r in expected.get("per_repeat", [])],
                       ["outer repeat", "caught / malignant", "sensitivity", "cleared / benign", "specificity"])
                   if pooled else "")
                + f"<p>Per fold (spread; sensitivity below the target {expected['target_sensitivity']:.0%} in "
                f"{expected['share_below_target_sensitivity']:.0%} of the folds). Chosen: "
                f"{html.escape(', '.join(f'{k} x{v}' for k, v in expected['candidates_chosen'].items()))}.</p>"
                + _table([[m, f"{e[m]['mean']:.4f}", f"{e[m]['sd']:.4f}", f"{e[m]['min']:.4f}", f"{e[m]['max']:.4f}"]
                          for m in SCORES], ["metric", "mean", "sd", "min", "max"]))
    else:
        body = "<p>Not computed for this run (no nested cross-validation folds).</p>"
    parts.append(("expected", "Expected performance on unseen patients", body))

    cv = training["selection"]["cross_validation"]
    sel = training["selection"]
    means, margins = sel.get("means", {}), sel.get("margins", {})
    parts.append(("cross-validation", "Candidates (cross-validation on the training split)",
                  f"<p>{sel['repeats']} x {sel['folds']}-fold stratified cross-validation, the imputer and scaler "
                  f"refitted in every fold. Rule: {html.escape(sel.get('rule', 'best mean'))} by "
                  f"<b>{html.escape(sel['metric'])}</b>"
                  f"{' at each candidate&#39;s own threshold' if sel['metric'] == 'specificity' else ''}; best "
                  f"{html.escape(sel.get('best', training['candidate']))}, within its margin: "
                  f"{html.escape(', '.join(sel.get('within_margin', [])))}; "
                  f"selected <b>{html.escape(training['candidate'])}</b>.</p>"
                  + _table([[name, f"{means[name]:.4f}" if name in means else "", f"{margins[name]:.4f}" if name in margins
                             else "", *(f"{s[m]['mean']:.4f} ± {s[m]['sd']:.4f}" for m in ("roc_auc", "pr_auc", "brier"))]
                            for name, s in cv.items()],
                           ["candidate", f"mean {sel['metric']}", "paired SE", "ROC AUC", "PR AUC", "Brier"])))

    t = training["threshold"]
    alternatives = t.get("alternatives", {})
    parts.append(("threshold", "Operating point",
                  f"<p><b>{html.escape(t.get('guarantee', ''))}</b></p>"
                  f"<p>Threshold <b>{threshold:.4f}</b> ({html.escape(t.get('rule', ''))}): it may miss "
                  f"{t.get('allowed_misses', 0)} of the {t.get('malignant', 0)} malignant out-of-fold rows of the "
                  f"training split (out of fold: sensitivity {t['sensitivity']:.3f}, specificity "
                  f"{t['specificity']:.3f}). A tumour is called malignant when its probability is at or above the "
                  "threshold. The price of each promise in specificity, out of fold:</p>"
                  + _table([[html.escape(name), f"{a['threshold']:.4f}", a["allowed_misses"], f"{a['sensitivity']:.3f}",
                             f"{a['specificity']:.3f}"]
                            for name, a in {t.get("rule", "chosen"): t, **alternatives}.items()],
                           ["rule", "threshold", "misses allowed", "sensitivity", "specificity"])))

    methods = metrics.get("ci_method", {})
    parts.append(("metrics", f"Test split ({metrics['n_test']} rows)", _table(
        [[m, f"{metrics['at_threshold'].get(m, metrics.get(m)):.4f}",
          f"[{metrics['ci95'][m][0]:.3f}, {metrics['ci95'][m][1]:.3f}]", methods.get(m, "bootstrap"),
          f"{metrics['at_0.5'].get(m, metrics.get(m)):.4f}"] for m in SCORES],
        ["metric", f"at {threshold:.4f}", "95 % CI", "method", "at 0.5"])))

    parts.append(("gate", "Quality gate", _gate_section(run)))

    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = _figure()
    ax.plot(fpr, tpr, label=f"ROC AUC {metrics['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.scatter([1 - metrics["specificity"]], [metrics["recall"]], color="black", zorder=3, label="chosen threshold")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC curve (test)")
    ax.legend(loc="lower right")
    roc = _png(fig)
    precision, recall, _ = precision_recall_curve(y, p)
    fig, ax = _figure()
    ax.plot(recall, precision, label=f"PR AUC {metrics['pr_auc']:.3f}")
    ax.scatter([metrics["recall"]], [metrics["precision"]], color="black", zorder=3, label="chosen threshold")
    ax.set(xlabel="recall (sensitivity)", ylabel="precision", title="Precision-recall curve (test)")
    ax.legend(loc="lower left")
    parts.append(("curves", "ROC and precision-recall curves", roc + _png(fig)))

    cm = metrics["confusion_matrix"]
    fig, ax = _figure()
    grid = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
    ax.imshow(grid, cmap="Blues")
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=16,
                color="white" if value > grid.max() / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["B", "M"], yticklabels=["B", "M"],
           xlabel="predicted", ylabel="true", title=f"Confusion matrix at {threshold:.3f}")
    parts.append(("confusion", "Confusion matrix", _png(fig)))

    observed, predicted = calibration_curve(y, p, n_bins=8, strategy="quantile")
    fig, ax = _figure()
    ax.plot(predicted, observed, marker="o", label=f"model (Brier {metrics['brier']:.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    ax.set(xlabel="predicted probability of malignancy", ylabel="observed share malignant", title="Calibration (test)")
    ax.legend(loc="upper left")
    parts.append(("calibration", "Calibration", _png(fig)))

    title, values = _drivers(model, test[list(FEATURE_COLUMNS)], y, random_state)
    top = values.reindex(values.abs().sort_values(ascending=False).index)[:15][::-1]
    fig, ax = _figure()
    ax.barh(top.index, top.to_numpy(), color=["#c0392b" if v > 0 else "#2980b9" for v in top])
    ax.set_title(f"Top {len(top)} features", fontsize=10)
    ax.tick_params(axis="y", labelsize=7)
    fig.subplots_adjust(left=0.34)  # room for the feature names
    parts.append(("features", "What the model relies on", f"<p>{html.escape(title)}.</p>" + _png(fig)))

    sections = "".join(f'<section id="{sid}"><h2>{html.escape(h)}</h2>{body}</section>' for sid, h, body in parts)
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Breast cancer model report: {html.escape(run.run_key)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
        "img{max-width:100%}</style></head><body>"
        f"<h1>Run {html.escape(run.run_key)}: {html.escape(training['candidate'])}</h1>"
        f"<p>Malignant is the positive class. {_headline(metrics)}Sensitivity {metrics['recall']:.3f}, specificity "
        f"{metrics['specificity']:.3f}, ROC AUC {metrics['roc_auc']:.3f} on {metrics['n_test']} held-out rows.</p>"
        f"{sections}</body></html>\n"
    )


def _headline(metrics: dict[str, Any]) -> str:
    expected = metrics.get("expected_performance")
    if not expected:
        return ""
    line = expected_line(expected)
    if not line:
        e = expected["scores"]
        line = f"sensitivity {e['recall']['mean']:.3f}, specificity {e['specificity']['mean']:.3f} (mean of the folds)"
    return (f"{html.escape(guarantee_line(metrics))} Expected on unseen patients (nested CV, pooled): "
            f"{html.escape(line)}. This model on its test split: ")


def make_report(run: StepInputs, report_path: storage.Location, random_state: int) -> dict[str, str]:
    """Write the run's ``report.html`` from its files ``run`` (``make_report``'s inputs).

    Returns:
        ``{"report": report_path}``
    """
    text = build_report(run, random_state)
    storage.write_bytes(text.encode("utf-8"), report_path)
    logger.info("wrote %s (%d KiB)", report_path, len(text) // 1024)
    return {"report": str(report_path)}


def _make_report(run: Run) -> Outputs:
    """``make_report`` and the run's model card (its sign-off pending or automatic)."""
    from etl.releases.model_card import AUTO, write_card

    inputs, release = run.inputs("make_report"), run.settings.release
    signoff = {"decision": "pending", "approvers": list(release.approvers)} if release.required else AUTO
    return {**make_report(inputs, run.folder.report, run.random_state),
            **write_card(inputs, run.folder.model_card, run.info, signoff)}


STEPS = runner.steps(Step("make_report", _make_report))
main = runner.entry_point(STEPS, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
