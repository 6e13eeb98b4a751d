"""The results root on S3-compatible storage (a real moto server on 127.0.0.1): what a cluster's
workers share. Runs, publishing through ``current.json``, the quality gate, pruning, upload and
prediction work there as they do on a local folder."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from etl import storage
from etl.catalog import IntegrityError, ParameterError
from etl.predict import predict
from etl.releases.reader import current_release, open_release, run_release
from etl.releases.registry import ensure_results_dir
from etl.releases.retention import prune
from etl.settings import load_settings
from etl.storage.layout import MODEL_FILES, RELEASE_FILES, TOP_FILES
from etl.upload_results import upload_results
from tests.conftest import build_run, decide_and_publish, gate_settings
from tests.servers import BUCKET

CONN_ID = "results_s3_test"

#: The shipped [scoring] drift settings.
SCORING = load_settings().scoring


@pytest.fixture
def s3_root(s3_server, monkeypatch):
    """A fresh ``s3://`` results root, as the settings resolve ``RESULTS_DIR``."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", s3_server.connection())
    prefix = f"results-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RESULTS_DIR", f"s3://{BUCKET}/{prefix}")
    monkeypatch.setenv("RESULTS_CONN_ID", CONN_ID)
    root = load_settings().results_dir
    assert type(root).__name__ == "ObjectStoragePath" and root.conn_id == CONN_ID
    return root, prefix


def test_a_run_is_published_on_s3_through_one_pointer_object(s3_root, s3_server, small_csv, tmp_path):
    root, prefix = s3_root
    assert ensure_results_dir(root) == [f"s3://{BUCKET}/{prefix}"]
    assert s3_server.objects(prefix) == {}  # the write check cleans up after itself

    run = build_run(root / "runs" / "2021-01-01T000000Z", small_csv, report=False)
    published = decide_and_publish(run.root, root, gate_settings(min_roc_auc=0.5), {"run_id": "first"})
    objects = s3_server.objects(prefix + "/")
    release = json.loads(objects[f"{prefix}/current.json"])["release"]
    assert published["release"].endswith(f"/published/{release}")
    manifest = json.loads(objects[f"{prefix}/manifest.json"])
    for name in TOP_FILES:  # top-level copies = the release's
        assert objects[f"{prefix}/{name}"] == objects[f"{prefix}/published/{release}/{name}"]
    for name in ("metrics.json", *MODEL_FILES):  # the run's files, as they are
        assert objects[f"{prefix}/published/{release}/{name}"] == (run.root / name).read_bytes()
    assert {k.rsplit("/", 1)[1] for k in objects if f"/published/{release}/" in k} == set(RELEASE_FILES)
    assert manifest["artifacts"]["model.pkl"]["size"] == len(objects[f"{prefix}/model.pkl"])
    assert current_release(root).name == release == run_release(run.root, root).name
    assert open_release(results_dir=root).model.n_features_in_ == 30
    # Signed and verified on S3 as locally: an object changed in the bucket is refused, in one line.
    model_object = root / "published" / release / "model.pkl"
    body = storage.read_bytes(model_object)
    storage.write_bytes(body[:-1] + bytes([body[-1] ^ 1]), model_object)
    with pytest.raises(IntegrityError, match=rf"^release {release}: its files differ from what was signed "
                                             r"\(model.pkl changed\); refusing to use it$"):
        open_release(results_dir=root)
    storage.write_bytes(body, model_object)

    # A second run is gated against the published model, read from S3, then replaces it.
    second = build_run(root / "runs" / "2021-01-02T000000Z", small_csv, C=0.5, report=False)
    compare_all = gate_settings(min_roc_auc=0.5, min_unseen_positives=1, min_unseen_negatives=1)
    outcome = decide_and_publish(second.root, root, compare_all, {"run_id": "second"})
    gate = storage.read_json(second.root / "gate.json")
    assert gate["published_release"] == release and gate["comparison"]["decided"] is True
    assert len(gate["checks"]) == 5  # two floors, three comparisons with the model read from S3
    assert current_release(root).name == storage.location(outcome["release"]).name != release

    # Prediction and upload read the published release from S3.
    out = predict(small_csv, tmp_path / "predictions.csv", root)
    assert out["release"] == current_release(root).name and out["rows"] > 0
    uploaded = upload_results(current_release(root), str(tmp_path / "uploads"), "k")
    assert sorted(uploaded) == sorted(RELEASE_FILES)  # every file, verified, the signature too

    # Pruning keeps the published release and its run; the first run and release go.
    deleted = prune(root, keep=1, min_age=timedelta(0))
    assert sorted(storage.location(d).name for d in deleted) == ["2021-01-01T000000Z", release]
    left = s3_server.objects(prefix + "/")
    assert not any("2021-01-01" in key for key in left)
    assert any(key.startswith(f"{prefix}/runs/2021-01-02T000000Z/") for key in left)


def test_a_failed_s3_publish_leaves_the_published_release_and_a_rerun_completes(
        s3_root, s3_server, small_csv, monkeypatch):
    root, prefix = s3_root
    first = build_run(root / "runs" / "2021-02-01T000000Z", small_csv, report=False)
    release = storage.location(decide_and_publish(first.root, root, gate_settings(min_roc_auc=0.5))["release"]).name
    published = {k: v for k, v in s3_server.objects(prefix + "/").items() if "/runs/" not in k}

    second = build_run(root / "runs" / "2021-02-02T000000Z", small_csv, C=0.5, report=False)
    import etl.releases.manifest as module  # etl.releases.registry imports it when it publishes

    def lost_connection(*args, **kwargs):  # dies after the artifacts, before manifest and switch
        raise ConnectionError("connection reset while publishing")

    monkeypatch.setattr(module, "build_manifest", lost_connection)
    with pytest.raises(ConnectionError):
        decide_and_publish(second.root, root, gate_settings(min_roc_auc=0.5, alpha=0.0))
    now = s3_server.objects(prefix + "/")
    assert {k: v for k, v in now.items() if k in published} == published  # nothing published changed
    assert current_release(root).name == release
    monkeypatch.undo()
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", s3_server.connection())
    redo = storage.location(decide_and_publish(second.root, root, gate_settings(min_roc_auc=0.5, alpha=0.0))["release"])
    assert current_release(root).name == redo.name != release
    assert storage.read_json(root / "manifest.json")["release"] == redo.name
    assert open_release(results_dir=root).model.n_features_in_ == 30


def test_a_missing_bucket_fails_the_write_check_in_one_line(s3_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_RESULTS_S3_NOBUCKET", s3_server.connection())
    monkeypatch.setenv("RESULTS_DIR", "s3://no-such-bucket/results")
    monkeypatch.setenv("RESULTS_CONN_ID", "results_s3_nobucket")
    with pytest.raises(ParameterError) as err:
        ensure_results_dir(load_settings().results_dir)
    assert "s3://no-such-bucket/results is not writable" in str(err.value)
    assert "\n" not in str(err.value) and s3_server.secret not in str(err.value)


def test_the_scoring_inbox_and_outputs_on_s3(s3_root, s3_server, small_csv, monkeypatch):
    """A cluster's inbox is an s3:// prefix (SCORING_INBOX, through results_conn_id): files are
    claimed, scored from the bucket into the bucket, and moved on, like a local inbox."""
    from etl.orchestration.triggers import InboxTrigger
    from etl.score import process
    from etl.storage.inbox import claim, queued

    root, prefix = s3_root
    run = build_run(root / "runs" / "2021-01-01T000000Z", small_csv, report=False)
    decide_and_publish(run.root, root, gate_settings(min_roc_auc=0.5))
    monkeypatch.setenv("SCORING_INBOX", f"s3://{BUCKET}/{prefix}-inbox")
    settings = load_settings()
    inbox = settings.inbox
    assert type(inbox.root).__name__ == "ObjectStoragePath"
    s3_server.client().put_object(Bucket=BUCKET, Key=f"{prefix}-inbox/new.csv", Body=small_csv.read_bytes())
    trigger = InboxTrigger(settings.scoring.inbox, CONN_ID, settings.scoring.poll_seconds)
    assert trigger._claim() == ["new.csv"] and claim(inbox) == []
    (path,) = queued(inbox)
    outcome = process(path, inbox, root, SCORING)
    objects = s3_server.objects(prefix)
    assert f"{prefix}/scoring/{outcome['batch']}/predictions.csv" in objects
    assert json.loads(objects[f"{prefix}/scoring/{outcome['batch']}/report.json"])["rows"] == 60
    assert set(s3_server.objects(f"{prefix}-inbox/")) == {f"{prefix}-inbox/processed/new.csv"}
