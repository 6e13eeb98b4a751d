"""Write data/wdbc.csv from the copy of the WDBC data that scikit-learn ships.

The output has the layout most users have (the widely shared CSV): ``id``, ``diagnosis``
(``M``/``B``), then the 30 features ``<measurement>_mean``, ``_se``, ``_worst``. Values are
copied as text from scikit-learn's file, so nothing is re-rounded. scikit-learn's copy has no
patient ids: ``id`` is the 1-based row number.

Usage: python scripts/make_dataset.py [OUTPUT]   (default data/wdbc.csv)
"""

from __future__ import annotations

import csv
import sys
from importlib import resources
from pathlib import Path

from etl.data.schema import BENIGN, FEATURE_COLUMNS, ID_COLUMN, MALIGNANT, TARGET_COLUMN
from etl.settings import PROJECT_ROOT

#: scikit-learn codes the target 0 = malignant, 1 = benign (see its load_breast_cancer docs).
SKLEARN_TARGET = {"0": MALIGNANT, "1": BENIGN}


def build_rows() -> list[list[str]]:
    """The CSV rows, header first."""
    text = resources.files("sklearn.datasets.data").joinpath("breast_cancer.csv").read_text()
    lines = text.splitlines()
    n_rows, n_features = (int(v) for v in lines[0].split(",")[:2])
    assert n_features == len(FEATURE_COLUMNS), "unexpected scikit-learn file layout"
    rows = [[ID_COLUMN, TARGET_COLUMN, *FEATURE_COLUMNS]]
    for number, line in enumerate(lines[1 : n_rows + 1], start=1):
        *features, target = line.split(",")
        rows.append([str(number), SKLEARN_TARGET[target], *features])
    return rows


def main(argv: list[str]) -> int:
    output = Path(argv[0]) if argv else PROJECT_ROOT / "data" / "wdbc.csv"
    with open(output, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(build_rows())
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
