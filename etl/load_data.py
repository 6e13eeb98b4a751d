"""Load the input CSV, check it against the data contract and profile it.

What is accepted and what is refused, each in one line naming the file, is ``etl.data.contract``'s
(the README's "Input data" section); this step applies it to the run's input.

Writes the validated table (exactly ``id``, ``diagnosis``, the 30 features) and a data profile.
"""

from __future__ import annotations

import logging

from etl import runner, storage
from etl.data.contract import RawTable, profile, read_input, validate
from etl.runner import Outputs, Run, Step

logger = logging.getLogger(__name__)

#: The contract's readers, here for the step's callers (``etl.data.contract`` holds them).
__all__ = ["RawTable", "load_data", "main", "profile", "read_input", "validate"]


def load_data(
    data_path: storage.Location,
    output_path: storage.Location,
    profile_path: storage.Location,
    max_missing_share: float,
    min_rows_per_class: int,
) -> dict[str, str]:
    """Read and validate ``data_path``; write the validated table and its profile.

    Returns:
        ``{"data": output_path, "profile": profile_path}``
    """
    source = str(data_path)
    df, notes = validate(read_input(data_path), source, max_missing_share, min_rows_per_class)
    report = profile(df, notes, source)
    report["source_sha256"], report["source_bytes"] = storage.sha256(data_path), storage.size(data_path)
    report["contract"] = {"max_missing_share": max_missing_share, "min_rows_per_class": min_rows_per_class}
    logger.info(
        "loaded %s: %d rows (%d read, %d duplicates dropped), %d malignant, %d benign, "
        "%d missing value(s) to impute",
        source, report["rows"], report["rows_read"], report["duplicate_rows_dropped"],
        report["class_balance"].get("M", 0), report["class_balance"].get("B", 0),
        report["missing_total"],
    )
    storage.write_frame(df, output_path)
    storage.write_json(report, profile_path)
    return {"data": str(output_path), "profile": str(profile_path)}


def _load_data(run: Run) -> Outputs:
    """``load_data`` on the configured CSV (or the run's ``data_path``) and ``[validation]``."""
    v = run.settings.validation
    return load_data(run.settings.paths.data_path, run.folder.data, run.folder.profile, v.max_missing_share,
                     v.min_rows_per_class)


STEPS = runner.steps(Step("load_data", _load_data))
main = runner.entry_point(STEPS, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
