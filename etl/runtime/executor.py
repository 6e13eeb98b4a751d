"""The local stack's executor (``make airflow``): Airflow's LocalExecutor whose workers start with
the libraries the pipeline's tasks import (pandas, NumPy, SciPy, scikit-learn, pyarrow,
matplotlib) already imported.

Under the LocalExecutor each task instance is a process forked from one of the executor's
worker processes, which are forked from the scheduler. A fork shares its parent's imported
modules, so a task whose worker already has scikit-learn does not import it again: that import
was about 0.5 s of every modelling task (``docs/benchmark.md``, "through the scheduler").

Only third-party modules stay imported. The project's own modules (``etl.*``) are imported to
find what they need and then dropped again, so each task imports the project's code afresh, as
it does without this executor: editing ``etl/`` takes effect on the next task, not on the next
restart of the stack. The cluster and the containers run Airflow's own executors.

Selected by ``scripts/airflow-stack.sh`` (``AIRFLOW__CORE__EXECUTOR``). No pandas or
scikit-learn is imported by importing this module: only by the scheduler's ``start``.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time

from airflow.executors.local_executor import LocalExecutor

logger = logging.getLogger(__name__)

#: What the tasks of the project's DAGs import to do their work (their heavy imports are inside
#: these modules' functions too; ``etl.orchestration.pipeline`` and ``etl.orchestration.tasks`` import them lazily).
TASK_MODULES = ("etl.load_data", "etl.preprocess_data", "etl.train_model", "etl.nested_cv",
                "etl.evaluate_model", "etl.quality_gate", "etl.report", "etl.save_results",
                "etl.upload_results", "etl.score", "etl.outcomes", "etl.monitoring.datasets", "etl.releases.model_card")
#: And the libraries those modules import inside their functions (the candidates' estimators,
#: the report's plots, the model card's templates). ``tests/etl/runtime/test_executor.py`` checks that a
#: whole run imports no module of these libraries that the preload left out.
LIBRARIES = ("sklearn.linear_model", "sklearn.svm", "sklearn.ensemble", "sklearn.calibration",
             "sklearn.inspection", "sklearn.metrics", "scipy.stats", "joblib", "matplotlib.figure",
             "matplotlib.backends.backend_agg", "jinja2", "markdown_it", "skops.io")
#: The project's packages, whose modules are dropped again after the preload.
PROJECT_PACKAGES = ("etl",)


def _is_project(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in PROJECT_PACKAGES)


def preload(modules: tuple[str, ...] = TASK_MODULES + LIBRARIES) -> list[str]:
    """Import ``modules`` and keep only the third-party modules they brought in: every project
    module that was not imported before is removed from ``sys.modules`` and from its package's
    attributes (so that ``from etl import x`` imports ``x`` again too). Returns the third-party
    top-level packages that are now imported."""
    before = set(sys.modules)
    for name in modules:
        importlib.import_module(name)
    added = set(sys.modules) - before
    for name in sorted(n for n in added if _is_project(n)):
        module = sys.modules.pop(name)
        parent_name, _, child = name.rpartition(".")
        parent = sys.modules.get(parent_name)
        if parent is not None and getattr(parent, child, None) is module:
            delattr(parent, child)
    return sorted({n.split(".")[0] for n in added if not _is_project(n)})


class PreloadingLocalExecutor(LocalExecutor):
    """``LocalExecutor`` whose worker processes are forked after ``preload``."""

    def start(self) -> None:
        """Preload, then fork the workers. The preload only saves time: if it fails (a broken
        install, an import error in a step), the scheduler starts anyway, each task imports
        what it needs, and the error shows where it belongs, in the task that hits it."""
        started = time.perf_counter()
        try:
            packages = preload()
        except Exception as exc:  # any import error: the preload is an optimisation
            logger.warning("preload for the task processes failed, tasks import their libraries "
                           "themselves: %s: %s", type(exc).__name__, exc)
        else:
            logger.info("preloaded %d packages for the task processes in %.1f s: %s", len(packages),
                        time.perf_counter() - started, ", ".join(packages))
        super().start()
