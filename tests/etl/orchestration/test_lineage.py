"""What each task reports for OpenLineage (etl.orchestration.lineage), derived from the run catalog,
in-process on an evaluated run folder. The events themselves: tests/e2e/test_lineage.py."""

import os
import shutil

from etl import catalog
from etl.orchestration.lineage import dataset_uri, training_files
from etl.orchestration.pipeline import Run
from etl.settings import load_settings
from etl.storage.layout import RunPaths


def test_dataset_names():
    assert dataset_uri("results/model.pkl") == "file://" + os.path.abspath("results/model.pkl")
    assert dataset_uri("file:///tmp/x.csv") == "file:///tmp/x.csv"
    assert dataset_uri("s3://bucket/prefix/model.pkl") == "s3://bucket/prefix/model.pkl"
    assert dataset_uri("gdrive://folder-id") is None  # not a dataset OpenLineage names


def test_each_task_reports_the_catalogs_files_it_read_and_wrote(evaluated_runs, tmp_path):
    shutil.copytree(evaluated_runs["old"], tmp_path / "runs" / "run")
    run = Run.of_folder(load_settings(), RunPaths(tmp_path / "runs" / "run"))
    root = tmp_path / "runs" / "run"
    for task in ("preprocess_data", "select_model", "evaluate_model", "make_report"):
        read, wrote = training_files(task, run, {})
        assert read and all(any(f.pattern.search(str(p)) for f in catalog.inputs(task)) for p in read), task
        assert {str(p) for p in wrote} == {str(root / f.path) for f in catalog.outputs(task)}, task
    read, _ = training_files("load_data", run, {})
    assert str(read[-1]) == str(load_settings().paths.data_path)  # the input CSV, outside the run folder
    # a mapped instance: its own files only
    _, wrote = training_files("train_model", run, {}, candidate="logistic_regression")
    assert {str(p.relative_to(root)) for p in wrote} == {
        "candidates/logistic_regression/model.skops", "candidates/logistic_regression/cv.json",
        "candidates/logistic_regression/oof.parquet"}
    _, wrote = training_files("nested_cv", run, {}, fold=1)
    assert [str(p.relative_to(root)) for p in wrote] == ["nested/fold-01.json"]
    read, _ = training_files("evaluate_model", run, {})
    assert sum("nested/fold-" in str(p) for p in read) == run.settings.nested_cv.count
