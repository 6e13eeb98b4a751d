"""The local stack's executor (etl/runtime/executor.py): its preload leaves the heavy libraries imported
and none of the project's modules, and covers what a whole run imports.

In a plain Python subprocess (no Airflow process): the preload changes ``sys.modules`` for good.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

#: Preload, then a whole run of the shipped candidates on the small data, in-process as the DAG's
#: tasks run them; prints what the preload kept and what the run imported of the heavy libraries.
SCRIPT = """
import json, sys
from pathlib import Path
from etl.runtime.executor import LIBRARIES, preload
project = lambda: {n for n in sys.modules if n == "etl" or n.startswith("etl.")}
already = project()  # etl.runtime.executor itself, and etl.runtime.sqlite that Airflow's settings import
preload()
kept = sorted({n.split(".")[0] for n in sys.modules})
left = sorted(project() - already)
import etl
attributes = sorted(n for n in vars(etl) if f"etl.{n}" not in sys.modules and n in ("load_data", "report", "orchestration"))
before = set(sys.modules)
from etl.orchestration import pipeline
from etl.settings import load_settings
from etl.storage.layout import RunPaths
from etl.storage import location
from dataclasses import replace
work = Path(sys.argv[2])
settings = load_settings()
settings = replace(settings, paths=replace(settings.paths, results_dir=str(work / "results")),
                   nested_cv=replace(settings.nested_cv, outer_folds=2, outer_repeats=1),
                   selection=replace(settings.selection, cv_folds=2, cv_repeats=1))
run = pipeline.Run.of_folder(settings, RunPaths(location(work / "results" / "runs" / "r1")), {"data_path": sys.argv[1]})
pipeline.run_tasks(run)
heavy = {name.split(".")[0] for name in LIBRARIES}
late = sorted(n for n in set(sys.modules) - before if n.split(".")[0] in heavy)
print(json.dumps({"kept": kept, "etl_left": left, "attributes": attributes, "late": late,
                  "published": (work / "results" / "model.pkl").exists()}))
"""


def test_the_preload_keeps_the_libraries_a_run_imports_and_none_of_the_projects_modules(small_csv, tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(small_csv), str(tmp_path)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"pandas", "numpy", "scipy", "sklearn", "pyarrow", "matplotlib", "jinja2"} <= set(result["kept"])
    # The project's code is imported afresh by each task: no module of etl stays that the
    # preload imported, not even as an attribute of the package (``from etl import report``).
    assert result["etl_left"] == [] and result["attributes"] == []
    assert result["published"]
    # Every module of the heavy libraries that a whole run needs was preloaded.
    assert result["late"] == [], f"imported by the run, not by etl.runtime.executor.preload: {result['late']}"


def test_a_failed_preload_does_not_stop_the_scheduler(monkeypatch):
    """The preload only saves time: an import error in it is logged and the workers start."""
    import logging

    from airflow.executors.local_executor import LocalExecutor

    from etl.runtime import executor

    def broken() -> list[str]:
        raise ImportError("no module named 'sklearn'")

    started, records = [], []
    monkeypatch.setattr(executor, "preload", broken)
    monkeypatch.setattr(LocalExecutor, "start", lambda self: started.append(self))
    handler = logging.Handler(logging.WARNING)  # (Airflow's log set-up bypasses caplog)
    handler.emit = lambda record: records.append(record.getMessage())
    executor.logger.addHandler(handler)
    try:
        executor.PreloadingLocalExecutor(parallelism=1).start()
    finally:
        executor.logger.removeHandler(handler)
    assert len(started) == 1
    assert len(records) == 1 and "preload for the task processes failed" in records[0], records
    assert "no module named 'sklearn'" in records[0]
