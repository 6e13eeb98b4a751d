"""The training pipeline as one declaration: each task of the catalog (``etl.catalog.TASKS``)
and the step that runs it, declared in its module (``etl.catalog.MODULES``: ``STEPS``), which
the Airflow callables (``etl.orchestration.tasks``), the tests' run builders and the benchmark
run through the runner (``etl.runner``) as the command lines do. The step modules (pandas,
scikit-learn) are imported when a step is first asked for, never when a DAG file is parsed.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from typing import Any

from etl import catalog
from etl.catalog import Skipped
from etl.runner import Outputs, Run, Step, expand
from etl.runner import run_step as run_one

logger = logging.getLogger(__name__)

__all__ = ["Run", "expand", "run_step", "run_tasks", "step"]


def step(task: str) -> Step:
    """The step of ``task``, from the module the catalog names."""
    return importlib.import_module(catalog.MODULES[task]).STEPS[task]


def run_step(task: str, run: Run, **instance: Any) -> Outputs:
    """Run ``task``'s step on ``run`` (``etl.runner.run_step``)."""
    return run_one(step(task), run, **instance)


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
