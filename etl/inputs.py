"""A step's inputs: the run's files the catalog (``etl.catalog``) says a task reads, resolved and
checked before the step runs, and nothing else.

``etl.steps`` resolves them for the DAG's tasks (a producer's XCom first) and the run builders;
the late steps' command lines resolve them from a run folder (``of_folder``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from etl import catalog
from etl.config import RunPaths
from etl.errors import MissingInputError
from etl.storage import Target, location, require

#: The path a producer handed on for a file (``catalog.File``, its fields), or None.
Resolver = Callable[[catalog.File, Mapping[str, Any]], "str | None"]


def no_xcom(_file: catalog.File, _fields: Mapping[str, Any]) -> None:
    """A resolver for runs without XComs (the command line, the tests): the run folder's files."""
    return None


@dataclass(frozen=True)
class StepInputs:
    """The files a step reads, and nothing else: ``inputs.metrics`` is the path of the run's
    metrics for a step the catalog lets read them; any other name raises ``AttributeError``.

    Attributes:
        task: the task whose inputs these are.
        run_key: the run's folder name (a release is named after it).
    """

    task: str
    run_key: str
    files: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        files = self.__dict__.get("files", {})
        if name in files:
            return files[name]
        raise AttributeError(f"task {self.__dict__.get('task')!r} does not read {name!r} (etl.catalog)")


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


def resolve_inputs(task: str, folder: RunPaths, outer_folds: int, resolve: Resolver = no_xcom) -> StepInputs:
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
    return StepInputs(task, folder.root.name, files)


def of_folder(task: str, run_dir: Any, outer_folds: int | None = None) -> StepInputs:
    """``task``'s inputs from the run folder ``run_dir`` (the command line, the tests);
    ``outer_folds`` by default from the settings."""
    if outer_folds is None:
        from etl.config import load_settings

        outer_folds = load_settings().nested_cv.count
    return resolve_inputs(task, RunPaths(location(run_dir)), outer_folds)
