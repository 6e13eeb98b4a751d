"""Score new rows with the published model: ``python -m etl.predict --input new.csv --output out.csv``.

The input may have any layout ``load_data`` accepts (header or UCI's headerless ``wdbc.data``,
columns in any order, extra columns); ``diagnosis`` is optional and ignored. Every input row
gives one output row: ``id``, ``malignant_probability``, ``predicted`` (``M`` or ``B`` at the
decision threshold the published model was selected with), ``release`` (which scored it), ``call``
(``benign``, ``refer``, ``malignant`` or ``out of scope``), ``out_of_scope`` (why, when it is) and
``reason_1`` to ``reason_3`` (the features that moved the case's score most:
``etl.modeling.reasons``). The model and its preprocessing are taken from the published release
and used only after the release verifies against its signature.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from etl import runner, storage
from etl.data.contract import read_rows
from etl.modeling.procedure import score_rows
from etl.releases.reader import open_release

logger = logging.getLogger(__name__)


def predict(
    input_path: storage.Location,
    output_path: storage.Location,
    results_dir: str | os.PathLike[str],
    release: str | os.PathLike[str] | None = None,
    novelty_alpha: float = 0.01,
) -> dict[str, Any]:
    """Score every row of ``input_path`` with the published model; write ``output_path``.

    Args:
        release: a release folder to use instead of the published one.
        novelty_alpha: ``[scoring] novelty_alpha``, the scope check's level (``etl.data.scope``).

    Returns:
        ``{"predictions": output_path, "rows": n, "release": name, "threshold": t}``
    """
    loaded = open_release(release, results_dir)
    out = score_rows(loaded, read_rows(input_path), novelty_alpha)
    storage.write_frame(out, output_path)
    logger.info("scored %d row(s) of %s with release %s (%s, threshold %.4f): %d predicted malignant, %d out of scope",
                len(out), input_path, loaded.name, loaded.manifest["model"]["candidate"], loaded.threshold,
                int((out["predicted"] == "M").sum()), int((out["out_of_scope"] != "").sum()))
    return {"predictions": str(output_path), "rows": len(out), "release": loaded.name,
            "threshold": loaded.threshold}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, settings, _ = runner.parser(__doc__)
    p.add_argument("--input", type=runner.path_arg, required=True, help="CSV of rows to score")
    p.add_argument("--output", type=runner.path_arg, required=True, help="predictions CSV to write")
    p.add_argument("--release", type=runner.path_arg, default=None,
                   help="release folder (default: the published one, results/current)")
    return runner.command(p, lambda a: predict(a.input, a.output, settings.results_dir, a.release,
                                                 settings.scoring.novelty_alpha), argv)


if __name__ == "__main__":
    raise SystemExit(main())
