"""The data contract: column names, label coding and class names, defined once."""

from __future__ import annotations

ID_COLUMN = "id"
TARGET_COLUMN = "diagnosis"

#: The ten nucleus measurements, in the order of UCI's ``wdbc.names``.
MEASUREMENTS: tuple[str, ...] = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave points",
    "symmetry",
    "fractal_dimension",
)

#: Each measurement is summarised three ways; this is the column order of the widely shared CSV.
STATISTICS: tuple[str, ...] = ("mean", "se", "worst")

#: The 30 feature columns, e.g. ``radius_mean`` ... ``fractal_dimension_worst``.
FEATURE_COLUMNS: tuple[str, ...] = tuple(f"{m}_{s}" for s in STATISTICS for m in MEASUREMENTS)

MALIGNANT = "M"
BENIGN = "B"
#: Malignant is the positive class: recall is the sensitivity for malignant tumours.
LABEL_CODES: dict[str, int] = {MALIGNANT: 1, BENIGN: 0}

#: The scores of a model on rows it never saw, in the order reports show them.
SCORES: tuple[str, ...] = ("recall", "specificity", "precision", "accuracy", "f1", "roc_auc", "pr_auc", "brier")
