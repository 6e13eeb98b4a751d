"""Every accepted input shape, and a refusal of each kind, through a real DAG run with
``data_path`` in the run's conf (``dag.test()`` in-process: what ``airflow dags test ... --conf``
does, without an Airflow start-up per run).

Every refusal raises the same ``DataValidationError`` in ``load_data`` (each shape is checked
in-process and through ``python -m etl.load_data`` in tests/etl/test_load_data.py), which the
task wrapper turns into a failure without retry; the real runs here check that path for a
refusal of each kind: an empty file, bytes that are not UTF-8, a malformed row, a broken rule of
the data set. The user-facing line is checked where users read it: the failed task's record
in the run folder (the run's Report tab).
"""

import json
import os

import pandas as pd
import pytest

from tests import input_shapes
from tests.conftest import DAG_ID, copy_of, dag_test


@pytest.fixture(scope="module")
def frame(small_csv):
    return pd.read_csv(small_csv)


@pytest.fixture(scope="module")
def published(full_run, tmp_path_factory):
    """A results folder holding a published model (a copy of the session's full run), and a
    snapshot of its published files."""
    root = tmp_path_factory.mktemp("published")
    copy_of(full_run, root)
    env = {**os.environ, "RESULTS_DIR": str(root / "results"), "UPLOAD_URI": str(root / "uploads")}
    results = root / "results"
    return env, results, {p.name: p.read_bytes() for p in results.iterdir() if p.is_file()}


@pytest.mark.parametrize("shape", list(input_shapes.ACCEPTED))
def test_accepted_shape_runs_end_to_end(shape, frame, airflow_db, env, tmp_path):
    path = input_shapes.build(input_shapes.ACCEPTED, shape, frame, tmp_path)
    _, rows, missing = input_shapes.ACCEPTED[shape]
    date = f"2023-01-{list(input_shapes.ACCEPTED).index(shape) + 1:02d}"
    state, tasks = dag_test(DAG_ID, date, env, {"data_path": str(path)})
    assert state == "success", tasks
    run = tmp_path / "results" / "runs" / f"{date}T000000Z"
    profile = json.loads((run / "profile.json").read_text())
    assert profile["rows"] == rows and profile["missing_total"] == missing
    assert json.loads((run / "preprocessing.json").read_text())["imputed_total"] == missing
    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert metrics["n_test"] == 12
    assert 0.8 <= metrics["accuracy"] <= 1.0


#: One refusal of each kind (reading, decoding, parsing, a rule of the data set).
REAL_RUN_REFUSALS = ["empty_file", "not_utf8", "truncated_row", "one_class"]


@pytest.mark.parametrize("shape", REAL_RUN_REFUSALS)
def test_refused_input_fails_once_and_leaves_published_results_untouched(shape, frame, published, tmp_path):
    env, results, before = published
    path = input_shapes.build(input_shapes.REFUSED, shape, frame, tmp_path)
    date = f"2023-02-{REAL_RUN_REFUSALS.index(shape) + 1:02d}"
    state, tasks = dag_test(DAG_ID, date, env, {"data_path": str(path)})
    assert state == "failed"
    assert tasks["load_data"] == ("failed", 1)  # one attempt: not retried
    assert {s for t, (s, _) in tasks.items() if t not in ("ensure_results_dir", "load_data")} == {"upstream_failed"}
    record = json.loads((results / "runs" / f"{date}T000000Z" / "failures" / "load_data.json").read_text())
    assert record["error"].startswith(f"{path}: {input_shapes.REFUSED[shape][1]}"), record
    assert {p.name: p.read_bytes() for p in results.iterdir() if p.is_file()} == before
