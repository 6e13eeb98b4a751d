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
from pathlib import Path
from typing import Any

from etl import catalog
from etl.catalog import MissingInputError, PipelineError
from etl.settings import Settings, load_settings
from etl.storage import Target, location, require
from etl.storage.layout import CLI_RUN_KEY, RunPaths

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


def run(
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


def path_arg(value: str) -> Path:
    """argparse type for paths: resolved against the current directory."""
    return Path(value).expanduser().resolve()


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


def resolve_inputs(task: str, folder: RunPaths, outer_folds: int, resolve: Resolver = no_xcom
                   ) -> catalog.StepInputs:
    """Every file ``task`` reads (``input_path``), the ``outer_folds`` nested folds as a list,
    None for an optional file the run has not written; the candidates' files are read through
    ``input_path`` by the task itself."""
    files: dict[str, Any] = {}
    for entry in catalog.inputs(task):
        if entry.name == "outer_fold":
            files[entry.name] = [input_path(task, entry.name, folder, resolve, fold=i) for i in range(outer_folds)]
        elif entry.optional:
            try:
                files[entry.name] = input_path(task, entry.name, folder, resolve)
            except MissingInputError:
                files[entry.name] = None
        elif not entry.mapped:
            files[entry.name] = input_path(task, entry.name, folder, resolve)
    return catalog.StepInputs(task, folder.root.name, files)


def of_folder(task: str, run_dir: Any, outer_folds: int | None = None) -> catalog.StepInputs:
    """``task``'s inputs from the run folder ``run_dir`` (the command line, the tests);
    ``outer_folds`` by default from the settings."""
    if outer_folds is None:
        outer_folds = load_settings().nested_cv.count
    return resolve_inputs(task, RunPaths(location(run_dir)), outer_folds)
