"""The run's catalog (``etl.catalog``): it names every file a run writes, and the wiring
(``etl.orchestration.pipeline``) holds to it: a step reads only what it declares, a missing input names its
producer, and the quality gate's decision is made once."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from etl import catalog, storage
from etl.catalog import MissingInputError, Skipped, StepInputs
from etl.orchestration import pipeline
from etl.settings import load_settings
from etl.storage.layout import RELEASE_FILES, RunPaths
from tests.conftest import decide_and_publish, gate_settings


def _expected_files(settings, folder: RunPaths) -> set[Path]:
    """Every file the catalog says a full run writes (no failures), for these settings."""
    files = set()
    for entry in catalog.FILES:
        if entry.name == "failure" or entry.optional:
            continue
        if "{candidate}" in entry.path:
            files |= {folder.root / catalog.path_of(entry.name, candidate=c) for c in settings.candidates}
        elif "{fold}" in entry.path:
            files |= {folder.root / catalog.path_of(entry.name, fold=i) for i in range(settings.nested_cv.count)}
        else:
            files.add(folder.root / entry.path)
    return files


def test_the_catalog_names_the_dags_tasks_in_order():
    from dags.pipeline_dag import dag

    assert set(dag.task_ids) == set(catalog.TASKS)
    for task in dag.tasks:  # the catalog's order is one the DAG can run in
        assert all(catalog.TASKS.index(u) < catalog.TASKS.index(task.task_id) for u in task.upstream_task_ids), task
    order = catalog.ALL_TASKS  # with the sign-off task of [release] approval = "required"
    assert [t for t in order if t != catalog.APPROVAL_TASK] == list(catalog.TASKS)
    for entry in catalog.FILES:
        assert entry.producer in (*order, catalog.ON_FAILURE), entry
        assert set(entry.readers) <= set(order), entry
        assert all(order.index(r) > order.index(entry.producer) for r in entry.readers
                   if entry.producer in order), f"{entry.name} is read before it is written"
        assert entry.optional == (entry.producer == catalog.APPROVAL_TASK), entry
    assert {task: pipeline.step(task).task for task in catalog.TASKS} == {task: task for task in catalog.TASKS}


def test_a_full_run_writes_exactly_the_catalogs_files(tmp_path, small_csv):
    """Every step through ``etl.orchestration.pipeline`` on the small data (the DAG's wiring, in-process): the
    run folder then holds the catalog's files and nothing else (besides pickles' checksums), so
    a new file must be declared; each task returned the paths of its catalog outputs."""
    settings = load_settings()
    settings = replace(settings, candidates={n: settings.candidates[n] for n in list(settings.candidates)[:2]},
                       paths=replace(settings.paths, results_dir=str(tmp_path / "results"),
                                     upload_uri=str(tmp_path / "uploads")))
    folder = settings.layout.run("2026-01-01T000000Z")
    done = pipeline.run_tasks(pipeline.Run.of_folder(settings, folder, {"data_path": small_csv}))
    assert "release" in done["save_results"] and sorted(done["upload_results"]) == sorted(RELEASE_FILES)
    written = {p for p in folder.root.rglob("*") if p.is_file() and not p.name.endswith(".sha256")}
    assert written == _expected_files(settings, folder)
    for task, returned in done.items():
        for instance in returned if isinstance(returned, list) else [returned]:
            for entry in catalog.outputs(task):
                if entry.name in instance:
                    assert storage.location(instance[entry.name]).is_file(), (task, entry.name)
    assert {e.name for e in catalog.outputs("train_model")} <= set(done["train_model"][0])
    assert {e.name for e in catalog.outputs("nested_cv")} <= set(done["nested_cv"][0])


def test_a_step_reads_only_what_the_catalog_declares(tmp_path, evaluated_runs):
    run = pipeline.Run.of_folder(load_settings(), RunPaths(evaluated_runs["new"]))
    with pytest.raises(KeyError, match="task 'make_report' does not read 'scaler'"):
        run.input("make_report", "scaler")
    inputs = run.inputs("make_report")
    assert isinstance(inputs, StepInputs) and inputs.metrics == evaluated_runs["new"] / "metrics.json"
    with pytest.raises(AttributeError, match="does not read 'scaler'"):
        inputs.scaler  # noqa: B018


def test_a_missing_input_names_the_task_that_writes_it(tmp_path, evaluated_runs):
    folder = tmp_path / "runs" / "k"
    shutil.copytree(evaluated_runs["new"], folder)
    (folder / "predictions.csv").unlink()
    run = pipeline.Run.of_folder(load_settings(), RunPaths(folder))
    with pytest.raises(MissingInputError, match=r"predictions.csv \(written by task 'evaluate_model'"):
        pipeline.run_step("make_report", run)
    # A task run too early (as `airflow tasks test` lets a user do): one line, the producer named.
    early = pipeline.Run.of_folder(load_settings(), RunPaths(tmp_path / "runs" / "early"))
    (tmp_path / "runs" / "early").mkdir()
    shutil.copy(folder / "data.parquet", tmp_path / "runs" / "early" / "data.parquet")
    with pytest.raises(MissingInputError, match=r"train.parquet \(written by task 'preprocess_data': run it first\)"):
        pipeline.run_step("train_model", early, candidate=next(iter(early.settings.candidates)))
    two = list(early.settings.candidates)[:2]
    shutil.copytree(folder / "candidates" / two[0], tmp_path / "runs" / "early" / "candidates" / two[0])
    with pytest.raises(MissingInputError, match=rf"candidates/{two[1]}/cv.json \(written by task 'train_model'"):
        pipeline.run_step("select_model", early)  # the other candidates have not run yet
    assert catalog.producer_of(folder / "candidates" / "svm" / "model.skops") == "train_model"
    assert catalog.producer_of(folder / "model.skops") == "select_model"
    assert catalog.producer_of(tmp_path / "published" / "r-1" / "manifest.json") == "save_results"
    assert catalog.producer_of(tmp_path / "elsewhere.csv") is None


@pytest.fixture
def results(tmp_path, evaluated_runs) -> Path:
    for key, run in evaluated_runs.items():
        shutil.copytree(run, tmp_path / "results" / "runs" / key)
    return tmp_path / "results"


def test_save_results_publishes_by_the_gates_decision_alone(results):
    """A decision that refused is not made again (the model would pass today's gate), and one
    made against a release that has been replaced since publishes nothing."""
    run = results / "runs" / "new"
    decide_and_publish(run, results, gate_settings(min_roc_auc=1.01))  # refused
    verdict = json.loads((run / "gate.json").read_text())
    assert verdict["passed"] is False

    settings = replace(load_settings(), paths=replace(load_settings().paths, results_dir=str(results)))
    with pytest.raises(Skipped, match="roc_auc >= min_roc_auc"):
        pipeline.run_step("save_results", pipeline.Run.of_folder(settings, RunPaths(run)))  # the decision stands
    assert not (results / "current").exists()

    old = results / "runs" / "old"
    pipeline.run_step("quality_gate", pipeline.Run.of_folder(settings, RunPaths(old)))  # compared with nothing published
    assert "release" in decide_and_publish(run, results)  # another run publishes meanwhile
    with pytest.raises(Skipped, match=r"compared this model with no published model, and new-[0-9a-f]+ was published since; "
                       r"to publish it, run quality_gate again"):
        pipeline.run_step("save_results", pipeline.Run.of_folder(settings, RunPaths(old)))
    assert storage.read_json(RunPaths(old).release_record)["published"] is False
    assert (results / "current").resolve().name.startswith("new-")


def test_a_task_run_again_first_removes_what_its_interrupted_attempt_left(tmp_path, monkeypatch):
    """A retry after a lost worker, or a task cleared and run again, starts by deleting the
    half-written temporary files of its own outputs (the catalog's, for its map index); another
    task's or another instance's stay (they may be being written now)."""
    folder = RunPaths(tmp_path / "run")
    ours = [folder.root / "candidates" / "svm" / ".cv.json.a1.tmp",
            folder.root / "candidates" / "svm" / ".model.skops.b2.tmp"]
    theirs = [folder.root / "candidates" / "logistic_regression" / ".cv.json.c3.tmp",  # another instance
              folder.root / ".model.skops.d4.tmp",  # select_model's model.skops, not a candidate's
              folder.root / ".data.parquet.e5.tmp"]
    for leftover in ours + theirs:
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"half")
    seen = []
    from etl import train_model

    monkeypatch.setitem(train_model.STEPS, "train_model", replace(
        train_model.STEPS["train_model"], func=lambda run, candidate: seen.append((candidate, [p.exists() for p in ours])) or {}))
    run = pipeline.Run.of_folder(load_settings(), folder)

    assert pipeline.run_step("train_model", run, candidate="svm") == {}
    assert seen == [("svm", [False, False])]  # gone before the step ran
    assert all(p.exists() for p in theirs)
