"""The scoring DAG for real (``dag.test()`` in-process, as ``airflow dags test
breast_cancer_scoring`` runs it; ``airflow dags test`` itself where a run is killed), on a model
the training DAG published: predictions byte-identical to ``etl.predict``, drift flagged and alerted
on a webhook receiver on 127.0.0.1, a bad file rejected beside good ones, idempotent after a
kill."""

import json
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from etl.data.schema import FEATURE_COLUMNS
from etl.score import batch_name
from etl.storage.layout import InboxPaths, ResultsPaths
from tests.conftest import AIRFLOW, PROJECT_ROOT, SCORING_DAG_ID, copy_of, dag_test, run_command, with_config

# Up to three scoring runs per test (and the session's full run, if no test made it yet): room for a busy machine.
pytestmark = [pytest.mark.airflow_cli, pytest.mark.timeout(900)]

FAULTS = PROJECT_ROOT / "tests" / "faults"


@pytest.fixture(scope="module")
def published(full_run, tmp_path_factory, shipped_csv):
    """A results folder where the training DAG published a model of the shipped data (a copy of
    the session's full run), and the shipped rows that model never saw (its test split), raw,
    as a CSV."""
    root = tmp_path_factory.mktemp("scoring")
    copy_of(full_run, root)
    test_ids = pd.read_parquet(root / "results" / "runs" / "2024-03-01T000000Z" / "test.parquet")["id"]
    raw = pd.read_csv(shipped_csv)
    unseen = root / "unseen.csv"
    raw[raw["id"].astype(str).isin(set(test_ids.astype(str)))].to_csv(unseen, index=False)
    assert 100 < len(pd.read_csv(unseen)) < 130  # the 20 % test split
    return root / "results", unseen


def _env(env, published, tmp_path):
    results, _ = published
    return {**env, "RESULTS_DIR": str(results), "SCORING_INBOX": str(tmp_path / "incoming")}


def _score(env, date):
    """``airflow dags test`` of the scoring DAG, in a process of its own (one that is killed)."""
    proc = run_command([AIRFLOW, "dags", "test", SCORING_DAG_ID, date], env=env, timeout=900)
    return proc.returncode, proc.stdout + proc.stderr


def test_batches_are_scored_like_predict_drift_is_alerted_and_bad_files_rejected(
        published, env, tmp_path, webhook_server):
    results, unseen = published
    config = tmp_path / "alerts.toml"
    config.write_text('[alerts]\nwebhook_conn_id = "drift_hook"\n')
    env = with_config(_env(env, published, tmp_path), config)
    env["AIRFLOW_CONN_DRIFT_HOOK"] = webhook_server.connection()
    inbox = InboxPaths(tmp_path / "incoming")
    inbox.root.mkdir()
    shutil.copy(unseen, inbox.root / "good.csv")
    rows = pd.read_csv(unseen)
    rows.assign(**{c: rows[c] * 1.5 for c in FEATURE_COLUMNS}).to_csv(inbox.root / "drifted.csv", index=False)
    rows.drop(columns=["area_worst"]).to_csv(inbox.root / "bad.csv", index=False)

    state, tasks = dag_test(SCORING_DAG_ID, "2024-06-02", env)
    assert state == "failed", tasks  # the bad file's task failed; the others succeeded
    scored = sorted(state for task, (state, _) in tasks.items() if task.startswith("score_batch["))
    assert scored == ["failed", "success", "success"], tasks
    assert sorted(p.name for p in inbox.processed.iterdir()) == ["drifted.csv", "good.csv"]

    layout = ResultsPaths(results)
    good = layout.batch(batch_name(inbox.processed / "good.csv"))
    proc = run_command([sys.executable, "-m", "etl.predict", "--input", str(unseen), "--output",
                        str(tmp_path / "predict.csv")], env=env)
    assert proc.returncode == 0, proc.stderr
    assert good.predictions.read_bytes() == (tmp_path / "predict.csv").read_bytes()
    report = json.loads(good.report.read_text())
    assert report["drift"]["drifted"] is False and report["rows"] == len(rows)
    assert report["release"] == json.loads((results / "manifest.json").read_text())["release"]

    drifted = json.loads(layout.batch(batch_name(inbox.processed / "drifted.csv")).report.read_text())
    assert drifted["drift"]["drifted"] is True and len(drifted["drift"]["moved"]) >= 20
    texts = [body["text"] for _, body in webhook_server.posts]
    drift_alerts = [t for t in texts if "drifted" in t]
    assert len(drift_alerts) == 1 and drifted["batch"] in drift_alerts[0]
    assert "features moved" in drift_alerts[0]

    assert sorted(p.name for p in inbox.processed.iterdir()) == ["drifted.csv", "good.csv"]
    assert (inbox.rejected / "bad.csv").exists()
    assert "bad.csv: 1 required column(s) missing: 'area_worst'" in (inbox.rejected / "bad.csv.reason.txt").read_text()
    assert list(inbox.queued.iterdir()) == []


def test_a_killed_batch_is_scored_again_and_a_finished_one_never_twice(published, env, tmp_path):
    results, unseen = published
    env = _env(env, published, tmp_path)
    inbox = InboxPaths(tmp_path / "incoming")
    inbox.root.mkdir()
    # The unseen rows in another order: bytes no other test of this module scores in the shared
    # results folder (a file with the bytes of a scored batch is not scored again, whatever the
    # order the tests run in).
    pd.read_csv(unseen).iloc[::-1].to_csv(inbox.root / "b.csv", index=False)
    broken = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(FAULTS), env.get("PYTHONPATH")])),
              "ETL_FAULT": "score_batch:kill"}
    code, log = _score(broken, "2024-06-03")
    assert code == -9, log[-3000:]  # killed while writing the predictions
    assert [p.name for p in inbox.queued.iterdir()] == ["b.csv"]  # still waiting

    state, tasks = dag_test(SCORING_DAG_ID, "2024-06-04", env)
    assert state == "success", tasks
    batch = ResultsPaths(results).batch(batch_name(inbox.processed / "b.csv"))
    first = {p.name: p.read_bytes() for p in batch.root.iterdir()}
    reference = tmp_path / "by-hand"
    proc = run_command([sys.executable, "-m", "etl.predict", "--input", str(inbox.processed / "b.csv"),
                        "--output", str(reference)], env=env)
    assert proc.returncode == 0 and first["predictions.csv"] == Path(reference).read_bytes()

    mtimes = {p.name: p.stat().st_mtime_ns for p in batch.root.iterdir()}
    state, tasks = dag_test(SCORING_DAG_ID, "2024-06-05", env)  # nothing new: nothing scored again
    assert state == "success", tasks
    assert not [t for t, (s, _) in tasks.items() if t.startswith("score_batch") and s == "success"], tasks
    assert {p.name: p.stat().st_mtime_ns for p in batch.root.iterdir()} == mtimes
