"""The headline numbers in words, written once for the report, ``make run``'s summary and the
Model page: what the procedure is expected to do on new patients (the pooled nested estimate)
and what the operating point promises. Standard library only (the UI plugin imports it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def expected_line(expected: Mapping[str, Any] | None) -> str:
    """``caught 413 of 424 malignant (sensitivity 0.974 [0.943, 0.991]), cleared ...``: the pooled
    counts of the nested cross-validation (every outer repeat scores each patient once), or an
    empty string when a run has none (or is older than the pooled counts)."""
    pooled = (expected or {}).get("pooled")
    if not pooled:
        return ""
    cm = pooled["confusion_matrix"]
    return (f"caught {cm['tp']} of {pooled['malignant']} malignant (sensitivity {pooled['sensitivity']:.3f} "
            f"[{pooled['sensitivity_ci95'][0]:.3f}, {pooled['sensitivity_ci95'][1]:.3f}]), cleared {cm['tn']} of "
            f"{pooled['benign']} benign (specificity {pooled['specificity']:.3f} [{pooled['specificity_ci95'][0]:.3f}, "
            f"{pooled['specificity_ci95'][1]:.3f}])")


def guarantee_line(metrics: Mapping[str, Any] | None) -> str:
    """The operating point's guarantee sentence of ``metrics.json`` (empty for older runs)."""
    return str((metrics or {}).get("guarantee") or "")
