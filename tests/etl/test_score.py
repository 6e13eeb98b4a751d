"""Scoring the inbox (etl.score): outputs, the inbox's moves, rejection, idempotence."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from etl.catalog import DataValidationError
from etl.predict import predict
from etl.releases.registry import publish
from etl.score import batch_name, claim, process, queued, score_batch
from etl.settings import load_settings
from etl.storage.layout import InboxPaths, ResultsPaths
from tests.conftest import inputs_of, run_main

#: The shipped [scoring] drift settings.
SCORING = load_settings().scoring


@pytest.fixture
def results(tmp_path, evaluated_runs) -> Path:
    results = tmp_path / "results"
    shutil.copytree(evaluated_runs["new"], results / "runs" / "new")
    publish(inputs_of(results / "runs" / "new"), results)
    return results


@pytest.fixture
def inbox(tmp_path) -> InboxPaths:
    (tmp_path / "incoming").mkdir()
    return InboxPaths(tmp_path / "incoming")


def test_a_batch_is_scored_like_predict_and_moved_to_processed(results, inbox, small_csv, tmp_path):
    shutil.copy(small_csv, inbox.root / "b1.csv")
    (inbox.root / ".partial.csv").write_text("id,")  # a file still being written: not claimed
    assert [p.name for p in claim(inbox)] == ["b1.csv"] and claim(inbox) == []
    (path,) = queued(inbox)
    name = batch_name(path)
    outcome = process(path, inbox, results, SCORING)
    batch = ResultsPaths(results).batch(name)
    predict(small_csv, tmp_path / "by-predict.csv", results)
    assert batch.predictions.read_bytes() == (tmp_path / "by-predict.csv").read_bytes()
    frame = pd.read_csv(batch.predictions)
    assert list(frame.columns) == ["id", "malignant_probability", "predicted", "release", "call", "out_of_scope",
                                     "reason_1", "reason_2", "reason_3"]
    report = json.loads(batch.report.read_text())
    assert report["rows"] == 60 and report["release"] == outcome["release"] == frame["release"][0]
    assert report["drift"]["drifted"] is False  # the published model's own data
    assert queued(inbox) == [] and (inbox.processed / "b1.csv").read_bytes() == small_csv.read_bytes()


def test_a_bad_file_is_rejected_with_its_reason(results, inbox, tmp_path):
    (inbox.root / "bad.csv").write_text("id,radius_mean\n1,2\n")
    claim(inbox)
    with pytest.raises(DataValidationError) as error:
        process(queued(inbox)[0], inbox, results, SCORING)
    reason = (inbox.rejected / "bad.csv.reason.txt").read_text()
    assert reason.strip() == str(error.value) and "required column(s) missing" in reason
    assert (inbox.rejected / "bad.csv").exists() and queued(inbox) == []
    assert not (results / "scoring").exists()


def test_scoring_again_gives_the_same_bytes(results, inbox, small_csv):
    """A run killed after writing the outputs and before moving the file scores it again."""
    shutil.copy(small_csv, inbox.root / "b.csv")
    claim(inbox)
    path = queued(inbox)[0]

    folder = results / "scoring" / score_batch(path, results, SCORING)["batch"]
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    process(path, inbox, results, SCORING)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_the_command_line_scores_one_file_or_the_inbox(results, small_csv, tmp_path, env, monkeypatch, capsys):
    env = {**env, "RESULTS_DIR": str(results), "SCORING_INBOX": str(tmp_path / "in")}
    status, out, err = run_main("etl.score", "--input", str(small_csv), env=env, monkeypatch=monkeypatch, capsys=capsys)
    assert status == 0, err
    out = json.loads(out)
    assert out["rows"] == 60 and out["drifted"] is False and small_csv.exists()
    (tmp_path / "in").mkdir()
    shutil.copy(small_csv, tmp_path / "in" / "a.csv")
    (tmp_path / "in" / "b.csv").write_text("nothing,useful\n")
    status, out, err = run_main("etl.score", env=env, monkeypatch=monkeypatch, capsys=capsys)
    assert status == 0, err
    # a.csv has the bytes of the file scored first: recognised as that batch, not scored again
    assert json.loads(out) == {"scored": [batch_name(small_csv)], "rejected": ["b.csv"]}
