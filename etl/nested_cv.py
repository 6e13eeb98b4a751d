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
from etl.modeling.models import candidate_params
from etl.modeling.nested import run_outer_fold
from etl.modeling.procedure import Procedure


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


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: run outer folds (default: all of them, one after another)."""
    p, settings, run = runner.parser(__doc__)
    p.add_argument("--data", type=runner.path_arg, default=run.data, help="validated table (load_data)")
    p.add_argument("--fold", type=int, action="append",
                   help=f"outer fold to run (repeatable; default: all {settings.nested_cv.count})")
    p.add_argument("--C", dest="C", type=float, default=settings.model.C, help="logistic regression C")
    p.add_argument("--max-iter", type=int, default=settings.model.max_iter, help="logistic regression iterations")
    p.add_argument("--random-state", type=int, default=settings.split.random_state)

    def action(a):
        candidates = candidate_params(settings.candidates, vars(a))
        folds = a.fold if a.fold is not None else range(settings.nested_cv.count)
        written = [nested_cv(a.data, i, run.outer_fold(i), candidates, Procedure.of(settings.selection, a.random_state),
                             settings.nested_cv.outer_folds, settings.nested_cv.outer_repeats)["outer_fold"] for i in folds]
        return {"folds": written}

    return runner.run(p, action, argv)


if __name__ == "__main__":
    raise SystemExit(main())
