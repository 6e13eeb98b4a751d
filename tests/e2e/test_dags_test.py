"""The whole DAG, run for real: once by ``make run`` (``airflow dags test`` behind one line per
task; the session's shared ``full_run``), a second time by ``airflow dags test``, the other runs
by ``dag.test()`` in-process (the same run without an Airflow start-up each)."""

import hashlib
import json
import os
import re

import joblib
import numpy as np
import pandas as pd
import pytest

from etl.data.schema import FEATURE_COLUMNS
from etl.releases.reader import current_release, open_release
from tests.conftest import AIRFLOW, CANDIDATES, DAG_ID, PROJECT_ROOT, copy_of, dag_test, run_command

pytestmark = pytest.mark.airflow_cli


RUN_FILES = [
    "candidates", "data.parquet", "gate.json", "metrics.json", "model.skops", "model.skops.sha256", "model_card.md",
    "nested", "predictions.csv", "preprocessing.json", "profile.json", "release.json", "report.html", "run.json",
    "scaler.skops", "scaler.skops.sha256", "test.parquet", "train.parquet", "training.json",
]


def _dags_test(date: str, env: dict, *args: str) -> str:
    proc = run_command([AIRFLOW, "dags", "test", DAG_ID, date, *args], env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "state=success" in proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.timeout(600)  # the shared full run is made here: room for a busy machine
def test_full_run_publishes_model_scaler_metrics_and_manifest(full_run, tmp_path, shipped_csv):
    copy_of(full_run, tmp_path)
    _, log, terminal = full_run
    # make run's terminal (checked as it is made: one line per task, under 30 lines, naming
    # Airflow's log): the summary, and nothing of Airflow's log.
    assert "Expected on unseen patients" in terminal and "Published artifacts" in terminal
    took = re.search(r"^DAG run success in (\d+) s$", terminal, re.MULTILINE)
    assert took and int(took.group(1)) < 900, terminal  # the run's time, not since its logical date
    assert "starting task_id" not in terminal  # Airflow's log went to the file
    # One mapped train_model task per enabled candidate, then one selection.
    # (Airflow runs the mapped instances in no fixed order)
    assert sorted(re.findall(r"starting task_id=train_model map_index=(\d+)", log)) == [str(i) for i in range(len(CANDIDATES))]
    # One mapped nested_cv task per outer fold (tests/fast.toml: 2), summarised in metrics.json.
    assert sorted(re.findall(r"starting task_id=nested_cv map_index=(\d+)", log)) == ["0", "1"]

    results = tmp_path / "results"
    metrics = json.loads((results / "metrics.json").read_text())
    for key in ("accuracy", "recall", "f1"):
        assert 0.9 <= metrics[key] <= 1.0, (key, metrics[key])
    assert 0.85 <= metrics["precision"] <= 1.0  # the sensitivity-first threshold calls some benign M
    assert metrics["guarantee"].startswith("Expected sensitivity on new patients of at least 97%")
    assert metrics["n_test"] == 114  # 20 % of 569, stratified
    expected = metrics["expected_performance"]
    assert expected["outer_folds"] == 2 and expected["rows_scored"] == 569  # every row scored once, unseen
    assert 0.9 <= expected["scores"]["recall"]["mean"] <= 1.0 and expected["scores"]["recall"]["sd"] >= 0
    model, scaler = open_release(results_dir=results).model, open_release(results_dir=results).scaler
    assert model.n_features_in_ == scaler.n_features_in_ == 30

    run = results / "runs" / "2024-03-01T000000Z"
    assert sorted(p.name for p in run.iterdir()) == RUN_FILES
    release = current_release(results)
    assert release.name.startswith("2024-03-01T000000Z-")
    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["data"]["sha256"] == hashlib.sha256(shipped_csv.read_bytes()).hexdigest()
    assert manifest["data"]["rows"] == 569
    assert manifest["params"]["train_model"]["random_state"] == 42
    assert manifest["model"]["candidate"] in CANDIDATES
    assert sorted(p.name for p in (run / "candidates").iterdir()) == sorted(CANDIDATES)
    assert (run / "report.html").read_text().count("data:image/png;base64,") == 6
    assert manifest["run"]["dag_id"] == DAG_ID
    assert manifest["run"]["run_id"].startswith("manual__")
    assert manifest["run"]["logical_date"] == "2024-03-01T00:00:00+00:00"
    assert manifest["versions"]["apache-airflow"] == "3.3.2"
    uploaded = tmp_path / "uploads" / "2024-03-01T000000Z"
    for name in ("metrics.json", "model.pkl", "scaler.pkl"):
        assert (uploaded / name).read_bytes() == (results / name).read_bytes()
    for name in ("metrics.json", "model.skops", "scaler.skops"):  # the run's files, as they are
        assert (uploaded / name).read_bytes() == (run / name).read_bytes()
    assert (uploaded / "manifest.json").read_bytes() == (results / "manifest.json").read_bytes()


@pytest.mark.timeout(600)  # two DAG runs (with full_run): 100 s idle, room for a busy machine
def test_two_runs_of_the_same_data_and_params_are_byte_identical(full_run, env, tmp_path):
    """Reproducible: metrics, test predictions and the model and scaler files match byte for byte
    (the release's content hash too); only the run section of the manifest (ids, times) differs,
    and the model card's record of it (the card says what the gate compared: the second run
    compared with the first's release). The pickles made for users at publication hold the same
    model, but pickle's bytes follow which equal strings the process happens to share: they are
    compared by what they predict."""
    copy_of(full_run, tmp_path)
    _dags_test("2024-03-06", env)  # a process of its own, as each run of a user's is
    runs = tmp_path / "results" / "runs"
    first, second = runs / "2024-03-01T000000Z", runs / "2024-03-06T000000Z"
    for name in ("metrics.json", "predictions.csv", "model.skops", "scaler.skops", "train.parquet", "test.parquet"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    releases = sorted((tmp_path / "results" / "published").iterdir())
    assert len(releases) == 2 and len({r.name.rsplit("-", 1)[1] for r in releases}) == 1  # same content
    manifests = [json.loads((r / "manifest.json").read_text()) for r in releases]
    for m in manifests:
        del m["run"], m["release"], m["documents"], m["artifacts"]["model.pkl"], m["artifacts"]["scaler.pkl"]
    assert manifests[0] == manifests[1]
    rows = pd.read_parquet(first / "data.parquet")[list(FEATURE_COLUMNS)]
    models = [(joblib.load(r / "model.pkl"), joblib.load(r / "scaler.pkl")) for r in releases]  # as a user does
    np.testing.assert_array_equal(*(m.predict_proba(s.transform(rows)) for m, s in models))
    cards = [(r / "model_card.md").read_text() for r in releases]
    assert "Not compared with a published model" in cards[0] and "Compared with the published release" in cards[1]


NEITHER = """
import json, sys
from datetime import UTC, datetime
from airflow.dag_processing.dagbag import DagBag
run = DagBag(dag_folder=sys.argv[1]).dags[sys.argv[2]].test(logical_date=datetime(2024, 3, 7, tzinfo=UTC))
print(json.dumps({"state": str(run.state), "ran": "etl.save_results" in sys.modules and "etl.orchestration.lineage" in sys.modules,
                  "imported": sorted(m for m in sys.modules if m.split(".")[0] in ("openlineage", "mlflow"))}))
"""


@pytest.mark.timeout(600)
def test_with_neither_configured_no_task_imports_openlineage_or_mlflow(airflow_db, env):
    """A whole run in a fresh interpreter (``dag.test()``: the tasks run in it, as ``make run``'s
    ``airflow dags test`` runs them), with neither OpenLineage nor MLflow configured: neither
    library is imported (the OpenLineage provider's own package is Airflow's: its plugin checks
    whether it is configured, and loads nothing more)."""
    import sys

    env = {k: v for k, v in env.items() if not k.startswith(("MLFLOW_", "OPENLINEAGE_", "AIRFLOW__OPENLINEAGE__"))}
    proc = run_command([sys.executable, "-c", NEITHER, str(PROJECT_ROOT / "dags"), DAG_ID], env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"state": "success", "ran": True, "imported": []}, result


def test_a_mistyped_run_parameter_fails_the_first_task_in_one_line(airflow_db, env, tmp_path):
    state, tasks = dag_test(DAG_ID, "2024-03-05", env, {"c": 0.5})
    assert state == "failed" and tasks.pop("ensure_results_dir") == ("failed", 1)
    assert {s for s, _ in tasks.values()} == {"upstream_failed"}  # no task did any work
    # Nothing written but the record of the failure, for the run's Report tab.
    results = tmp_path / "results"
    written = [p.relative_to(results).as_posix() for p in results.rglob("*") if p.is_file()]
    assert written == ["runs/2024-03-05T000000Z/failures/ensure_results_dir.json"], written
    record = json.loads((results / written[0]).read_text())
    assert record["error"] == ("unknown run parameter(s) 'c' (did you mean 'C'?); valid parameters: "
                               "C, data_path, max_iter, random_state, test_size")


def test_conf_overrides_the_params(airflow_db, env, tmp_path, small_csv):
    conf = {"data_path": os.path.relpath(small_csv, PROJECT_ROOT), "test_size": 0.25, "C": 0.1,
            "random_state": 3}  # a relative data_path is taken from the project root
    os.chdir(tmp_path)  # not the project root: the path is still taken from there
    try:
        state, tasks = dag_test(DAG_ID, "2024-03-02", env, conf)
    finally:
        os.chdir(PROJECT_ROOT)
    assert state == "success", tasks
    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert metrics["n_test"] == 15  # 25 % of the 60-row file
    assert open_release(results_dir=tmp_path / "results").model.C == 0.1
    params = json.loads((tmp_path / "results" / "manifest.json").read_text())["params"]
    assert params["load_data"]["data_path"] == str(small_csv)
    assert params["preprocess_data"] == {"test_size": 0.25, "random_state": 3,
                                         "split": {"method": "hash", "salt": "wdbc-test-split-1"}}


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"test_size": 1.5}, "Invalid input for param test_size: 1.5 is greater than or equal to the maximum of 1"),
        ({"C": -1}, "Invalid input for param C: -1 is less than or equal to the minimum of 0"),
        ({"random_state": "x"}, "Invalid input for param random_state: 'x' is not of type 'integer'"),
    ],
)
def test_invalid_conf_fails_the_run_with_a_clear_message(airflow_db, env, tmp_path, conf, message):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match=re.escape(message)):  # before the run is made
        dag_test(DAG_ID, "2024-03-03", env, conf)
    assert not (tmp_path / "results").exists()


def test_bad_data_fails_at_once_without_retries(airflow_db, env, tmp_path, small_csv):
    bad = tmp_path / "bad.csv"
    bad.write_text(small_csv.read_text().replace("area_worst", "area_wrst"))
    state, tasks = dag_test(DAG_ID, "2024-03-04", env, {"data_path": str(bad)})
    assert state == "failed"
    record = json.loads((tmp_path / "results" / "runs" / "2024-03-04T000000Z" / "failures" / "load_data.json").read_text())
    assert record["error"].startswith(f"{bad}: 1 required column(s) missing: 'area_worst'"), record
    # One attempt, no retry (retries are for I/O), and nothing downstream ran or was published.
    assert tasks["load_data"] == ("failed", 1) and tasks["preprocess_data"] == ("upstream_failed", 0)
    assert not (tmp_path / "results" / "metrics.json").exists()


@pytest.mark.timeout(600)
def test_predict_on_the_shipped_data_reproduces_the_evaluated_test_predictions(full_run, env, tmp_path, shipped_csv):
    import pandas as pd

    from tests.conftest import run_module

    copy_of(full_run, tmp_path)
    out = tmp_path / "scored.csv"
    proc = run_module("etl.predict", "--input", str(shipped_csv), "--output", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    scored = pd.read_csv(out).set_index("id")
    assert len(scored) == 569
    evaluated = pd.read_csv(tmp_path / "results" / "runs" / "2024-03-01T000000Z" / "predictions.csv").set_index("id")
    # Every test row in the release's scope gets the evaluated prediction; the few unlike the
    # training rows (the novelty check, etl.data.scope) get no answer, with the reason.
    mine = scored.loc[evaluated.index]
    inside = mine["out_of_scope"].isna().to_numpy()
    assert inside.mean() >= 0.95 and mine.loc[~inside, "out_of_scope"].str.startswith("unlike the training rows").all()
    assert (mine.loc[inside, "predicted"] == evaluated.loc[inside, "predicted"]).all()
    assert mine.loc[inside, "malignant_probability"].to_numpy() == pytest.approx(
        evaluated.loc[inside, "malignant_probability"].to_numpy(), abs=1e-12)


@pytest.mark.timeout(600)
def test_the_gate_keeps_the_published_model_when_a_worse_one_is_trained(full_run, env, tmp_path):
    from tests.conftest import with_config

    copy_of(full_run, tmp_path)
    results = tmp_path / "results"
    before = {n: (results / n).read_bytes() for n in ("metrics.json", "model.pkl", "scaler.pkl", "manifest.json")}
    worse = tmp_path / "stump.toml"  # a single one-split tree: clearly worse than the published model
    worse.write_text('[candidates]\nenabled = ["random_forest"]\nrandom_forest = { n_estimators = 1, max_depth = 1 }\n'
                     "[gate]\nalpha = 0.05\n")
    state, tasks = dag_test(DAG_ID, "2024-03-09", with_config(env, worse))
    assert state == "success"  # the run succeeds: a clear state
    reason = json.loads((results / "runs" / "2024-03-09T000000Z" / "release.json").read_text())["reason"]
    assert re.match(r"quality gate: not published \(.*roc_auc not worse than published by 0\.02 \(DeLong "
                    r"non-inferiority, p < alpha\): [01]\.\d+ >= 0\.0500.*\)$", reason), reason
    assert {n: (results / n).read_bytes() for n in before} == before
    assert tasks["save_results"][0] == "skipped"  # save_results ends skipped, not failed
    assert tasks["upload_results"][0] == "skipped"  # and nothing is uploaded
    assert not (tmp_path / "uploads" / "2024-03-09T000000Z").exists()
    gate = json.loads((results / "runs" / "2024-03-09T000000Z" / "gate.json").read_text())
    assert gate["passed"] is False and gate["published_release"].startswith("2024-03-01T000000Z-")
    assert gate["comparison"]["decided"] and gate["comparison"]["rows"] == 114  # same split: all unseen
