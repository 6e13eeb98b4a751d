"""The runner: what every step gets of its run and how it is run.

A step's inputs are the run's files the catalog (``etl.catalog``) says its task reads, resolved
and checked before the step runs, and nothing else: from the path its producer handed on (an
Airflow XCom) or from the run folder. A step's command line (``python -m etl.<step>``) parses
its flags here and prints what it wrote, or one line for a ``PipelineError``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from etl import catalog
from etl.catalog import MissingInputError, PipelineError, Skipped
from etl.settings import RUN_PARAMS, Settings, load_settings
from etl.storage import Target, exists, location, remove_interrupted_writes, require, write_json
from etl.storage.layout import CLI_RUN_KEY, RunPaths

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

logger = logging.getLogger(__name__)

Outputs = dict[str, Any]


# -- a step's inputs -----------------------------------------------------------------------------

#: The path a producer handed on for a file (``catalog.File``, its fields), or None.
Resolver = Callable[[catalog.File, Mapping[str, Any]], "str | None"]


def no_xcom(_file: catalog.File, _fields: Mapping[str, Any]) -> None:
    """A resolver for runs without XComs (the command line, the tests): the run folder's files."""
    return None


def input_path(task: str, name: str, folder: RunPaths, resolve: Resolver = no_xcom, **fields: Any) -> Target:
    """File ``name`` for ``task``: the path its producer handed on (``resolve``), else the run
    folder's; it must exist (``MissingInputError`` names the producer).

    Raises:
        KeyError: ``task`` does not read ``name`` in the catalog (a wiring error).
    """
    entry = catalog.BY_NAME[name]
    if task not in entry.readers:
        raise KeyError(f"task {task!r} does not read {name!r} (etl.catalog.FILES declares what each task reads)")
    handed = resolve(entry, fields)
    return require(location(handed) if handed else folder.root / catalog.path_of(name, **fields))


def resolve_inputs(task: str, folder: RunPaths, outer_folds: int, resolve: Resolver = no_xcom,
                   found_folds: bool = False) -> catalog.StepInputs:
    """Every file ``task`` reads (``input_path``), the ``outer_folds`` nested folds as a list
    (``found_folds``: those the run folder has, for a command line run after some folds),
    None for an optional file the run has not written; the candidates' files are read through
    ``input_path`` by the task itself."""
    files: dict[str, Any] = {}
    for entry in catalog.inputs(task):
        if entry.name == "outer_fold":
            folds = [i for i in range(outer_folds) if not found_folds or exists(folder.outer_fold(i))]
            files[entry.name] = [input_path(task, entry.name, folder, resolve, fold=i) for i in folds]
        elif entry.optional:
            try:
                files[entry.name] = input_path(task, entry.name, folder, resolve)
            except MissingInputError:
                files[entry.name] = None
        elif not entry.mapped:
            files[entry.name] = input_path(task, entry.name, folder, resolve)
    return catalog.StepInputs(task, folder.root.name, files)


# -- a run and its steps -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What a step gets of its run: the run's settings (the config's, with the run's parameters
    in their sections: ``Settings.with_run_params``), the run folder (where it writes), how to
    find its inputs, and what identifies the run in a manifest."""

    settings: Settings
    folder: RunPaths
    resolve: Resolver = no_xcom
    info: Mapping[str, Any] = field(default_factory=lambda: {"run_id": CLI_RUN_KEY})
    found_folds: bool = False  # read the nested folds the folder has (a command line)

    @classmethod
    def of_folder(cls, settings: Settings, folder: RunPaths, params: Mapping[str, Any] | None = None,
                  info: Mapping[str, Any] | None = None) -> Run:
        """A run whose inputs are its folder's files (the tests, the benchmark), with the run
        parameters ``params``."""
        return cls(settings.with_run_params(params or {}), folder, info=info or {"run_id": folder.root.name})

    @property
    def random_state(self) -> int:
        return self.settings.model.random_state

    def candidate_params(self) -> dict[str, dict[str, Any]]:
        """Each enabled candidate's parameters, the run parameters it takes set from the run."""
        from etl.modeling.models import candidate_params

        return candidate_params(self.settings.candidates, self.settings.run_params)

    def input(self, task: str, name: str, **fields: Any) -> Target:
        """File ``name`` for ``task`` (``input_path``)."""
        return input_path(task, name, self.folder, self.resolve, **fields)

    def inputs(self, task: str) -> catalog.StepInputs:
        """Every file ``task`` reads, resolved and checked now (``resolve_inputs``)."""
        return resolve_inputs(task, self.folder, self.settings.nested_cv.count, self.resolve, self.found_folds)


@dataclass(frozen=True)
class Step:
    """One task of the training DAG and its step's wiring: ``func(run, **instance)`` calls the
    step's pure core with the run's files, settings and run parameters it needs."""

    task: str
    func: Callable[..., Outputs]


def expand(task: str, settings: Settings) -> list[dict[str, Any]] | None:
    """The mapped task instances of ``task`` (their keyword arguments), or None for a task that
    is not mapped: the DAG's ``expand``, the command lines and the run builders take them here."""
    if task == "train_model":
        return [{"candidate": name} for name in settings.candidates]
    if task == "nested_cv":
        return [{"fold": i} for i in range(settings.nested_cv.count)]
    return None


def run_step(step: Step, run: Run, **instance: Any) -> Outputs:
    """Run ``step`` on ``run`` (a mapped task: the instance of ``candidate`` or ``fold``), after
    removing what an interrupted attempt of it left half-written in the run folder: a retry after
    a lost worker, a task cleared and run again (a whole run's start clears them all:
    ``ensure_results_dir``)."""
    for f in catalog.outputs(step.task):
        target = run.folder.root / catalog.path_of(f.name, **instance)
        for leftover in remove_interrupted_writes(target.parent, [target.name]):
            logger.info("removed %s, left by an interrupted attempt of %s", leftover, step.task)
    return step.func(run, **instance)


def _ensure_results_dir(run: Run) -> Outputs:
    """The results folder and the run's, which records the run (``run.json``)."""
    from etl.releases.registry import ensure_results_dir as ensure

    ensure(run.settings.results_dir, run.folder.root)
    for leftover in remove_interrupted_writes(run.folder.root):
        logger.info("removed %s, left by an interrupted write", leftover)
    write_json(dict(run.info), run.folder.run_record)  # which Airflow run the folder is (the UI views)
    return {"run_dir": str(run.folder.root)}


STEPS = {"ensure_results_dir": Step("ensure_results_dir", _ensure_results_dir)}


# -- the command line -----------------------------------------------------------------------------


def steps(*declared: Step) -> dict[str, Step]:
    """A step module's ``STEPS``: its steps by task, in the order its command line runs them."""
    return {step.task: step for step in declared}


def entry_point(declared: Mapping[str, Step], doc: str | None) -> Callable[[Sequence[str] | None], int]:
    """A step module's ``main``: its command line (``main``) over its ``STEPS``."""
    def main_(argv: Sequence[str] | None = None) -> int:
        return main(declared, doc, argv)

    main_.__doc__ = f"``python -m`` this step: ``etl.runner.main`` over {', '.join(declared)}."
    return main_


def main(steps: Mapping[str, Step], doc: str | None, argv: Sequence[str] | None = None) -> int:
    """``python -m etl.<step>``: run ``steps`` (in order, each mapped one over its instances) on
    a run folder, as the DAG's tasks do. The flags: ``--run-dir`` (default ``results/runs/cli``,
    so the steps run one after another chain like the DAG), the run parameters the steps take,
    a path for each file they read (default: the run folder's), their settings flags
    (``etl.catalog.FLAGS``), and
    ``--candidate`` / ``--fold`` for a mapped step. Prints what was written as JSON; a
    ``PipelineError`` is one line on stderr and exit status 1."""
    p, settings, cli_run = parser(doc)
    p.formatter_class = argparse.HelpFormatter  # each flag's help says its default
    tasks = [step.task for step in steps.values()]
    p.add_argument("--run-dir", type=path_arg, default=cli_run.root, help="the run's folder")
    for param in RUN_PARAMS.values():
        if set(tasks) & set(param.steps):
            default = getattr(getattr(settings, param.section), param.name)
            p.add_argument(param.flag, dest=param.name, type=location_arg if param.convert else param.type,
                           default=None, help=_help(f"{param.description} (default: {default})"))
    written = {f.name for task in tasks for f in catalog.outputs(task)}
    for f in {f.name: f for task in tasks for f in catalog.inputs(task) if not f.mapped and f.name not in written}.values():
        p.add_argument("--" + f.name.replace("_", "-"), dest=f"input_{f.name}", type=path_arg, default=None,
                       metavar="PATH", help=_help(f"{f.about} (default: the run folder's, written by {f.producer})"))
    flags = {flag: (section, key) for task in tasks for flag, section, key, _ in catalog.FLAGS.get(task, ())}
    for flag, section, key, about in {o[0]: o for task in tasks for o in catalog.FLAGS.get(task, ())}.values():
        value = getattr(getattr(settings, section), key)
        where = isinstance(value, (str, Path)) and (str(value).startswith("/") or "://" in str(value))
        p.add_argument(flag, dest=f"option_{key}", type=location_arg if where else type(value), default=None,
                       metavar="VALUE", help=_help(f"{about} (default: {value})"))
    if "train_model" in tasks:
        p.add_argument("--candidate", action="append", choices=list(settings.candidates),
                       help="this candidate only (repeatable; default: every enabled one)")
    if "nested_cv" in tasks:
        p.add_argument("--fold", action="append", type=int, help="this outer fold only (repeatable; default: all)")

    def action(a: argparse.Namespace) -> Any:
        given = vars(a)
        s = settings
        for section, key in flags.values():
            if given[f"option_{key}"] is not None:
                s = s.override(section, key, given[f"option_{key}"])
        if given.get("candidate"):  # train (and select among) these only
            s = replace(s, candidates={name: s.candidates[name] for name in given["candidate"]})
        handed = {k.removeprefix("input_"): str(v) for k, v in given.items() if k.startswith("input_") and v}
        run = Run(s.with_run_params({name: given.get(name) for name in RUN_PARAMS if name in given}),
                  RunPaths(location(a.run_dir)), lambda f, _fields: handed.get(f.name),
                  {"run_id": location(a.run_dir).name}, found_folds=True)
        folds = given.get("fold")
        outputs: Any = {}
        for step in steps.values():
            instances = expand(step.task, run.settings)
            try:
                if instances is None:
                    outputs = run_step(step, run)
                else:
                    outputs = [run_step(step, run, **kw) for kw in instances if not folds or kw.get("fold") in folds]
            except Skipped as skipped:
                return {"skipped": str(skipped)}
        return outputs

    return command(p, action, argv)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parser(description: str | None) -> tuple[argparse.ArgumentParser, Settings, RunPaths]:
    """An argument parser for a step, with the settings and the CLI run folder for its defaults.

    The CLI run folder is ``<results_dir>/runs/cli``, so running the steps one after another with
    no arguments chains them, like the DAG does.
    """
    settings = load_settings()
    run = settings.layout.run(CLI_RUN_KEY)
    p = argparse.ArgumentParser(
        description=(description or "").strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p, settings, run


def command(
    p: argparse.ArgumentParser,
    action: Callable[[argparse.Namespace], dict[str, Any]],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv``, run ``action`` and print what it wrote as JSON on stdout.

    A ``PipelineError`` (bad data, missing input, bad parameter) is printed as one line on
    stderr, without a traceback, and gives exit status 1.
    """
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
    try:
        outputs = action(args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(outputs, indent=2, default=str))
    return 0


def _help(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help with %


def path_arg(value: str) -> Path:
    """argparse type for paths: resolved against the current directory."""
    return Path(value).expanduser().resolve()


def location_arg(value: str) -> str:
    """argparse type for a path or a URI (``s3://...``): a path resolved against the current
    directory, as a command line's paths are (the settings resolve theirs against the project)."""
    return value if "://" in value else str(path_arg(value))
