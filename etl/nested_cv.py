"""Expected performance of the whole procedure on patients it has never seen: nested
cross-validation.

The single test split answers "how good is *this* model on 114 rows"; its numbers move by 2.4
points per missed tumour. This step answers "how good is what the pipeline does": all rows are
cut into stratified outer folds (``[nested_cv] outer_folds`` x ``outer_repeats``); for each,
``etl.modeling.nested.run_outer_fold`` runs the procedure on the other folds exactly as the DAG runs
it on the training split (every enabled candidate cross-validated with its preprocessing
refitted in each fit, the selection, the operating point, the winner refitted) and scores the
result on the held-out fold, which nothing in the procedure saw. The DAG runs one mapped
``nested_cv`` task per outer fold; ``evaluate_model`` pools them
(``etl.modeling.nested.summarize_folds``) into the ``expected_performance`` of ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from etl import runner, storage
from etl.modeling.nested import run_outer_fold
from etl.modeling.procedure import Procedure
from etl.runner import Outputs, Run, Step


def nested_cv(
    data_path: storage.Location,
    index: int,
    out_path: storage.Location,
    candidates: Mapping[str, Mapping[str, Any]],
    procedure: Procedure,
    outer_folds: int,
    outer_repeats: int,
) -> dict[str, str]:
    """Read the validated data, run outer fold ``index`` (``run_outer_fold``) and write its
    record to ``out_path``.

    Returns:
        ``{"fold": index, "outer_fold": out_path}``
    """
    data = storage.read_frame(data_path)
    storage.write_json(run_outer_fold(data, index, candidates, procedure, outer_folds, outer_repeats), out_path)
    return {"fold": index, "outer_fold": str(out_path)}


def _nested_cv(run: Run, fold: int) -> Outputs:
    """``nested_cv`` of outer fold ``fold`` with the candidates and the procedure of the run."""
    n = run.settings.nested_cv
    return nested_cv(run.input("nested_cv", "data"), fold, run.folder.outer_fold(fold), run.candidate_params(),
                     Procedure.of(run.settings.selection, run.random_state), n.outer_folds, n.outer_repeats)


STEPS = runner.steps(Step("nested_cv", _nested_cv))
main = runner.entry_point(STEPS, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
