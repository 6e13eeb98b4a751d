"""Expected performance of the whole procedure on patients it has never seen: nested
cross-validation.

The single test split answers "how good is *this* model on 114 rows"; its numbers move by 2.4
points per missed tumour and by more with the split's seed. This step answers "how good is what
the pipeline does": all rows are cut into stratified outer folds; for each, the procedure runs
on the other folds exactly as the DAG runs it on the training split (preprocessing fitted there,
every enabled candidate cross-validated, ``train_model.choose_model``'s selection rule and
operating point, the winner refitted), and the result is scored on the held-out fold, which
nothing in the procedure saw. The DAG runs one mapped ``nested_cv`` task per outer fold, in
parallel on a real scheduler; ``evaluate_model`` summarises them (``summarize_folds``) as the
``expected_performance`` of ``metrics.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from etl import cli, storage
from etl.errors import ParameterError
from etl.models import candidate_params, malignant_probability, ranking_scores, summarize
from etl.preprocess_data import fit_and_scale
from etl.train_model import choose_model, features_and_labels, fit_candidate

logger = logging.getLogger(__name__)

#: The scores summarised over the outer folds, in the order they are shown.
SCORES = ("recall", "specificity", "precision", "accuracy", "f1", "roc_auc", "pr_auc", "brier")


def outer_split(y: np.ndarray, folds: int, repeats: int, random_state: int, index: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(train, test)`` of outer fold ``index`` (repeat ``index // folds``)."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    if folds < 2 or repeats < 1:
        raise ParameterError(f"nested_cv needs outer_folds >= 2 and outer_repeats >= 1, got {folds}, {repeats}")
    if not 0 <= index < folds * repeats:
        raise ParameterError(f"outer fold {index} does not exist: {folds} x {repeats} folds")
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=random_state)
    for i, split in enumerate(splitter.split(np.zeros(len(y)), y)):
        if i == index:
            return split
    raise AssertionError("unreachable")


def run_outer_fold(
    data: Any,
    index: int,
    candidates: Mapping[str, Mapping[str, Any]],
    *,
    outer_folds: int,
    outer_repeats: int,
    cv_folds: int,
    cv_repeats: int,
    metric: str,
    target_sensitivity: float,
    threshold_confidence: float,
    random_state: int,
) -> dict[str, Any]:
    """Run the training procedure on all but outer fold ``index`` of ``data`` (validated rows,
    ``load_data``'s table) and score what it picks on that fold.

    Returns:
        The fold's record: its rows, the candidate chosen and why, the threshold, and the scores
        on the held-out rows (``threshold_metrics`` and ``ranking_scores`` of ``evaluate_model``).
    """
    from etl.evaluate_model import threshold_metrics

    _, labels = features_and_labels(data)
    fit_rows, held_out = outer_split(labels, outer_folds, outer_repeats, random_state, index)
    train, test, _ = fit_and_scale(data.iloc[fit_rows], data.iloc[held_out])
    X, y = features_and_labels(train)
    X_test, y_test = features_and_labels(test)
    models, summaries, oofs = {}, {}, {}
    for name, params in candidates.items():
        models[name], scores, oofs[name] = fit_candidate(X, y, name, params, cv_folds, cv_repeats, random_state)
        summaries[name] = summarize(scores)
    choice = choose_model(summaries, lambda name: (y, oofs[name]), metric, cv_folds,
                          target_sensitivity, threshold_confidence)
    winner, threshold = choice["selection"]["winner"], choice["threshold"]["threshold"]
    p = malignant_probability(models[winner], X_test)
    scores = {**threshold_metrics(y_test, p, threshold), **ranking_scores(y_test, p)}
    logger.info("outer fold %d: %s at threshold %.4f on %d unseen rows: sensitivity %.4f, specificity %.4f, "
                "roc_auc %.4f", index, winner, threshold, len(y_test), scores["recall"],
                scores["specificity"], scores["roc_auc"])
    return {
        "fold": index,
        "repeat": index // outer_folds,
        "rows": {"train": len(y), "test": len(y_test), "test_malignant": int(y_test.sum())},
        "candidate": winner,
        "selection": choice["selection"],
        "cross_validation": summaries,
        "threshold": choice["threshold"],
        "scores": scores,
    }


def summarize_folds(folds: Iterable[Mapping[str, Any]], target_sensitivity: float) -> dict[str, Any]:
    """Per score: mean, sd, min and max over the outer folds; the share of folds whose
    sensitivity fell below ``target_sensitivity``; how often each candidate was chosen."""
    folds = sorted(folds, key=lambda f: f["fold"])
    if not folds:
        raise ParameterError("no outer fold results to summarise")
    summary: dict[str, Any] = {}
    for name in SCORES:
        values = np.array([f["scores"][name] for f in folds])
        summary[name] = {"mean": float(values.mean()),
                         "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                         "min": float(values.min()), "max": float(values.max())}
    recall = np.array([f["scores"]["recall"] for f in folds])
    chosen: dict[str, int] = {}
    for f in folds:
        chosen[f["candidate"]] = chosen.get(f["candidate"], 0) + 1
    return {
        "method": "nested cross-validation: the whole procedure (preprocessing, candidate CV, "
                  "selection, threshold) fitted on the other outer folds, scored on the held-out one",
        "outer_folds": len(folds),
        "rows_scored": int(sum(f["rows"]["test"] for f in folds)),
        "target_sensitivity": target_sensitivity,
        "share_below_target_sensitivity": float(np.mean(recall < target_sensitivity - 1e-12)),
        "candidates_chosen": chosen,
        "thresholds": [f["threshold"]["threshold"] for f in folds],
        "scores": summary,
    }


def nested_cv(
    data_path: storage.Location,
    index: int,
    out_path: storage.Location,
    candidates: Mapping[str, Mapping[str, Any]],
    **settings: Any,
) -> dict[str, str]:
    """Read the validated data, run outer fold ``index`` (``run_outer_fold``; ``settings`` are
    its keyword arguments) and write its record to ``out_path``.

    Returns:
        ``{"fold": out_path}``
    """
    data = storage.read_frame(data_path, "load_data")
    storage.write_json(run_outer_fold(data, index, candidates, **settings), out_path)
    return {"fold": str(out_path)}


def procedure_settings(settings: Any, random_state: int) -> dict[str, Any]:
    """``run_outer_fold``'s keyword arguments from the pipeline settings."""
    return {"outer_folds": settings.outer_folds, "outer_repeats": settings.outer_repeats,
            "cv_folds": settings.cv_folds, "cv_repeats": settings.cv_repeats,
            "metric": settings.selection_metric, "target_sensitivity": settings.target_sensitivity,
            "threshold_confidence": settings.threshold_confidence, "random_state": random_state}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: run outer folds (default: all of them, one after another)."""
    p, settings, run = cli.parser(__doc__)
    p.add_argument("--data", type=cli.path_arg, default=run.data, help="validated table (load_data)")
    p.add_argument("--fold", type=int, action="append",
                   help=f"outer fold to run (repeatable; default: all {settings.outer_fold_count})")
    p.add_argument("--C", dest="C", type=float, default=settings.C, help="logistic regression C")
    p.add_argument("--max-iter", type=int, default=settings.max_iter, help="logistic regression iterations")
    p.add_argument("--random-state", type=int, default=settings.random_state)

    def action(a):
        candidates = candidate_params(settings.candidates, vars(a))
        folds = a.fold if a.fold is not None else range(settings.outer_fold_count)
        written = [nested_cv(a.data, i, run.outer_fold(i), candidates,
                             **procedure_settings(settings, a.random_state))["fold"] for i in folds]
        return {"folds": written}

    return cli.run(p, action, argv)


if __name__ == "__main__":
    raise SystemExit(main())
