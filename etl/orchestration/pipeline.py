"""The training pipeline's wiring, written once: for each task, which step it calls with which of
the run's files, settings and run parameters.

``etl.orchestration.tasks`` runs these for Airflow (inputs from the producers' XComs), the tests' run builder
and ``bench`` run them on a folder (inputs from the folder). What a task may read is the
catalog's (``etl.catalog``): ``Run.input`` and ``StepInputs`` refuse any other file, and a
missing one names the task that writes it. No Airflow import here; the step modules (pandas,
scikit-learn) are imported inside each function.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from etl import catalog
from etl.catalog import ParameterError, Skipped, StepInputs
from etl.runner import Resolver, input_path, no_xcom, resolve_inputs
from etl.settings import Settings
from etl.storage import Target
from etl.storage.layout import CLI_RUN_KEY, RunPaths

logger = logging.getLogger(__name__)

Outputs = dict[str, Any]


@dataclass(frozen=True)
class Run:
    """What a step gets of its run: the run's settings (the config's, with the run's parameters
    in their sections: ``Settings.with_run_params``), the run folder (where it writes), how to
    find its inputs, and what identifies the run in a manifest."""

    settings: Settings
    folder: RunPaths
    resolve: Resolver = no_xcom
    info: Mapping[str, Any] = field(default_factory=lambda: {"run_id": CLI_RUN_KEY})

    @classmethod
    def of_folder(cls, settings: Settings, folder: RunPaths, params: Mapping[str, Any] | None = None,
                  info: Mapping[str, Any] | None = None) -> Run:
        """A run whose inputs are its folder's files (the CLI, the tests, the benchmark), with
        the run parameters ``params``."""
        return cls(settings.with_run_params(params or {}), folder, info=info or {"run_id": folder.root.name})

    @property
    def random_state(self) -> int:
        return self.settings.split.random_state

    def input(self, task: str, name: str, **fields: Any) -> Target:
        """File ``name`` for ``task`` (``etl.runner.input_path``)."""
        return input_path(task, name, self.folder, self.resolve, **fields)

    def inputs(self, task: str) -> StepInputs:
        """Every file ``task`` reads, resolved and checked now (``etl.runner.resolve_inputs``)."""
        return resolve_inputs(task, self.folder, self.settings.nested_cv.count, self.resolve)


def expand(task: str, settings: Settings) -> list[dict[str, Any]] | None:
    """The mapped task instances of ``task`` (their keyword arguments), or None for a task that
    is not mapped: the DAG's ``expand`` and the run builders both take them from here."""
    if task == "train_model":
        return [{"candidate": name} for name in settings.candidates]
    if task == "nested_cv":
        return [{"fold": i} for i in range(settings.nested_cv.count)]
    return None


# -- the steps ------------------------------------------------------------------------------------


def ensure_results_dir(run: Run) -> Outputs:
    """Create the results folder and this run's folder."""
    from etl.releases.registry import ensure_results_dir as ensure
    from etl.storage import remove_interrupted_writes, write_json

    ensure(run.settings.results_dir, run.folder.root)
    for leftover in remove_interrupted_writes(run.folder.root):
        logger.info("removed %s, left by an interrupted write", leftover)
    write_json(dict(run.info), run.folder.run_record)  # which Airflow run the folder is (the UI views)
    return {"run_dir": str(run.folder.root)}


def load_data(run: Run) -> Outputs:
    """Validate the input CSV (``[paths] data_path``, or the run's ``data_path``)."""
    from etl.load_data import load_data as step

    v = run.settings.validation
    return step(run.settings.paths.data_path, run.folder.data, run.folder.profile, v.max_missing_share,
                v.min_rows_per_class)


def preprocess_data(run: Run) -> Outputs:
    """Split and scale the validated data."""
    from etl.preprocess_data import preprocess_data as step

    f, split = run.folder, run.settings.split
    return step(run.input("preprocess_data", "data"), f.train, f.test, f.scaler, f.preprocessing,
                split.test_size, split.random_state, split.method, split.salt)


def candidate_params(run: Run) -> dict[str, dict[str, Any]]:
    """Each enabled candidate's parameters, the run parameters it takes set from the run."""
    from etl.modeling.models import candidate_params as params

    return params(run.settings.candidates, run.settings.run_params)


def train_model(run: Run, candidate: str) -> Outputs:
    """Cross-validate one candidate on the training split and fit it."""
    from etl.train_model import train_candidate

    if candidate not in run.settings.candidates:
        raise ParameterError(f"candidate {candidate!r} is not enabled in [candidates]")
    sel = run.settings.selection
    return train_candidate(run.input("train_model", "data"), run.input("train_model", "train"), candidate,
                           candidate_params(run)[candidate], run.folder.candidate(candidate),
                           sel.cv_folds, sel.cv_repeats, run.random_state)


def select_model(run: Run) -> Outputs:
    """Give each candidate its operating point and choose one."""
    from etl.storage.layout import CandidatePaths
    from etl.train_model import select_model as step

    candidates = {name: CandidatePaths(run.input("select_model", "cv", candidate=name).parent)
                  for name in run.settings.candidates}
    return step(candidates, run.folder.model, run.folder.training, run.settings.selection)


def nested_cv(run: Run, fold: int) -> Outputs:
    """Run the whole procedure on all but outer fold ``fold`` and score it on that fold."""
    from etl.modeling.procedure import Procedure
    from etl.nested_cv import nested_cv as step

    n = run.settings.nested_cv
    return step(run.input("nested_cv", "data"), fold, run.folder.outer_fold(fold), candidate_params(run),
                Procedure.of(run.settings.selection, run.random_state), n.outer_folds, n.outer_repeats)


def evaluate_model(run: Run) -> Outputs:
    """Score the selected model on the test split, with the nested folds' expected performance."""
    from etl.evaluate_model import evaluate_model as step

    i = run.inputs("evaluate_model")
    return step(i.model, i.test, i.training, run.folder.metrics, run.folder.predictions,
                run.settings.evaluation.bootstrap_resamples, run.random_state, i.outer_fold)


def quality_gate(run: Run) -> Outputs:
    """Decide, once, whether the model may be published (``gate.json``)."""
    from etl.releases.gate import check_run

    return check_run(run.inputs("quality_gate"), run.folder.gate, run.settings.results_dir, run.settings.gate)


def make_report(run: Run) -> Outputs:
    """Write the run's HTML report and its model card."""
    from etl.releases.model_card import AUTO, write_card
    from etl.report import make_report as step

    inputs, release = run.inputs("make_report"), run.settings.release
    signoff = {"decision": "pending", "approvers": list(release.approvers)} if release.required else AUTO
    return {**step(inputs, run.folder.report, run.random_state),
            **write_card(inputs, run.folder.model_card, run.info, signoff)}


def save_results(run: Run) -> Outputs:
    """Publish the run if its gate decision (and, with ``[release] approval = "required"``, a
    person) allows it; prune old runs (``Skipped`` when not)."""
    from etl.save_results import save_results as step

    r = run.settings.retention
    outcome = step(run.inputs("save_results"), run.folder.release_record, run.settings.results_dir, run.info,
                   r.keep_runs, timedelta(hours=r.prune_min_age_hours), run.settings.release.required)
    if not outcome.get("published", True):
        raise Skipped(outcome["reason"])
    return outcome


def upload_results(run: Run) -> Outputs:
    """Upload the release this run published."""
    from etl.releases.registry import recorded_release
    from etl.upload_results import upload_results as step

    s = run.settings
    release = recorded_release(run.inputs("upload_results").release_record, s.results_dir)
    if release is None:
        raise Skipped("nothing to upload: the quality gate kept this run's model unpublished")
    return step(release, s.paths.upload_uri, run.folder.root.name, s.upload.conn_id, s.upload.drive_credentials)


#: Each task's step, by task id (``catalog.TASKS``).
STEPS: dict[str, Callable[..., Outputs]] = {task: globals()[task] for task in catalog.TASKS}


def run_step(task: str, run: Run, **mapped: Any) -> Outputs:
    """Run ``task``'s step on ``run`` (a mapped task: the instance of ``candidate`` or
    ``fold``), after removing what an interrupted attempt of it left half-written in the run
    folder: a retry after a lost worker, a task cleared and run again (a whole run's start
    clears them all: ``ensure_results_dir``)."""
    from etl.storage import remove_interrupted_writes

    for f in catalog.outputs(task):
        target = run.folder.root / catalog.path_of(f.name, **mapped)
        for leftover in remove_interrupted_writes(target.parent, [target.name]):
            logger.info("removed %s, left by an interrupted attempt of %s", leftover, task)
    return STEPS[task](run, **mapped)


def run_tasks(run: Run, tasks: Iterable[str] = catalog.TASKS) -> dict[str, Any]:
    """Run ``tasks`` (in the catalog's order) on ``run``, each mapped task over every instance,
    the way the DAG runs them; a step that skips ends the run there. Returns each task's outputs
    (a list for a mapped task)."""
    wanted, done = set(tasks), {}
    for task in catalog.TASKS:
        if task not in wanted:
            continue
        instances = expand(task, run.settings)
        try:
            done[task] = ([run_step(task, run, **kw) for kw in instances] if instances is not None
                          else run_step(task, run))
        except Skipped as skipped:
            logger.info("%s skipped: %s", task, skipped)
            done[task] = {"skipped": str(skipped)}
            break
    return done
