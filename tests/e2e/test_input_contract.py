"""Every accepted input shape, and a refusal of each kind, through a real DAG run with
``data_path`` in the run's conf (``airflow dags test ... --conf``).

Every refusal raises the same ``DataValidationError`` in ``load_data`` (each shape is checked
in-process and through ``python -m etl.load_data`` in tests/etl/test_load_data.py), which the
task wrapper turns into a failure without retry; the real runs here check that path for a
refusal of each kind: an empty file, bytes that are not UTF-8, a malformed row, a broken rule of
the data set. Each real run costs an Airflow process (about 25 s).
"""

import json
import os
import re

import pandas as pd
import pytest

from tests import input_shapes
from tests.conftest import AIRFLOW, DAG_ID, run_command

pytestmark = pytest.mark.airflow_cli


def _dags_test(date, conf, env):
    proc = run_command([AIRFLOW, "dags", "test", DAG_ID, date, "--conf", json.dumps(conf)], env=env)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def frame(small_csv):
    return pd.read_csv(small_csv)


@pytest.fixture(scope="module")
def published(airflow_db, tmp_path_factory):
    """A results folder holding a published model, and a snapshot of its published files."""
    root = tmp_path_factory.mktemp("published")
    env = {**os.environ, "RESULTS_DIR": str(root / "results"), "UPLOAD_URI": str(root / "uploads")}
    rc, log = _dags_test("2023-03-01", {}, env)
    assert rc == 0, log[-3000:]
    results = root / "results"
    return env, results, {p.name: p.read_bytes() for p in results.iterdir() if p.is_file()}


@pytest.mark.parametrize("shape", list(input_shapes.ACCEPTED))
def test_accepted_shape_runs_end_to_end(shape, frame, airflow_db, env, tmp_path):
    path = input_shapes.build(input_shapes.ACCEPTED, shape, frame, tmp_path)
    _, rows, missing = input_shapes.ACCEPTED[shape]
    date = f"2023-01-{list(input_shapes.ACCEPTED).index(shape) + 1:02d}"
    rc, log = _dags_test(date, {"data_path": str(path)}, env)
    assert rc == 0, log[-3000:]
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
    rc, log = _dags_test(date, {"data_path": str(path)}, env)
    assert rc == 1
    assert f"{path}: {input_shapes.REFUSED[shape][1]}" in log
    assert len(re.findall(r"starting task_id=load_data", log)) == 1  # not retried
    assert "up_for_retry" not in log
    assert "starting task_id=preprocess_data" not in log
    assert {p.name: p.read_bytes() for p in results.iterdir() if p.is_file()} == before
