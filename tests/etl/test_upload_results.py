import json
import shutil
from pathlib import Path

import pytest

from etl.catalog import IntegrityError, ParameterError, UploadError
from etl.releases.registry import publish
from etl.storage.layout import RELEASE_FILES
from etl.upload_results import (
    DESTINATIONS,
    Destination,
    DriveDestination,
    LocalDestination,
    S3Destination,
    UploadOptions,
    destination,
    upload_results,
)
from tests.conftest import inputs_of
from tests.servers import BUCKET


def test_the_scheme_picks_the_destination_class(tmp_path):
    assert destination(str(tmp_path)).folder == tmp_path
    assert destination(tmp_path.as_uri()).folder == tmp_path
    assert [type(destination(u)) for u in ("x/y", "file:///x", "s3://b/p", "gdrive://1AbC")] == [
        LocalDestination, LocalDestination, S3Destination, DriveDestination]


def test_a_new_destination_is_one_class_and_one_registry_line(tmp_path, evaluated_runs, monkeypatch):
    """The interface a new kind of destination implements: it receives the verified files."""
    sent = {}

    class Recorder(Destination):
        schemes = ("memory",)

        def upload(self, files, run_key):
            sent.update({f"{run_key}/{name}": path.read_bytes() for name, path in files.items()})
            return {name: f"{self}/{run_key}/{name}" for name in files}

    monkeypatch.setitem(DESTINATIONS, "memory", Recorder)
    results = tmp_path / "results"
    shutil.copytree(evaluated_runs["new"], results / "runs" / "new")
    release = Path(publish(inputs_of(results / "runs" / "new"), results)["release"])
    uploaded = upload_results(release, "memory://box", "k")
    assert uploaded["model.pkl"] == "memory://box/k/model.pkl"
    assert sent["k/model.pkl"] == (release / "model.pkl").read_bytes() and len(sent) == len(RELEASE_FILES)
    assert isinstance(destination("memory://box", UploadOptions()), Recorder)


@pytest.mark.parametrize(("uri", "message"), [
    ("ftp://host/x", "upload destination ftp://...: unsupported scheme 'ftp' (use a folder, file://, s3://, gdrive://)"),
    ("s3://AKIA:hunter2@bucket/p", "upload destination s3://...: credentials in the URI are refused"),
    ("s3:///prefix", "upload destination 's3:///prefix': no bucket"),
    ("gdrive://", "upload destination 'gdrive://': no folder id"),
])
def test_bad_destinations_are_refused_without_echoing_secrets(uri, message):
    with pytest.raises(ParameterError) as error:
        destination(uri)
    assert str(error.value).startswith(message) and "hunter2" not in str(error.value)


def test_upload_sends_the_release_under_the_run_key_and_replaces_on_rerun(tmp_path, evaluated_runs):
    results = tmp_path / "results"
    shutil.copytree(evaluated_runs["new"], results / "runs" / "new")
    release = Path(publish(inputs_of(results / "runs" / "new"), results)["release"])
    dest = tmp_path / "remote"
    out = upload_results(release, dest.as_uri(), "2024-01-01T000000Z")
    target = dest / "2024-01-01T000000Z"
    assert set(out) == set(RELEASE_FILES)  # every file, the signature too
    for name, path in out.items():
        assert Path(path) == target / name and (target / name).read_bytes() == (release / name).read_bytes()
    upload_results(release, str(dest), "2024-01-01T000000Z")
    assert sorted(p.name for p in dest.rglob("*")) == sorted(["2024-01-01T000000Z", *out])


def test_upload_refuses_a_release_that_does_not_verify(tmp_path, evaluated_runs):
    results = tmp_path / "results"
    shutil.copytree(evaluated_runs["new"], results / "runs" / "new")
    release = Path(publish(inputs_of(results / "runs" / "new"), results)["release"])
    (release / "scaler.pkl").write_bytes(b"not the scaler")
    with pytest.raises(IntegrityError, match=r"release new-.*: its files differ from what was signed \(scaler.pkl changed\)"):
        upload_results(release, str(tmp_path / "remote"), "k")
    assert not (tmp_path / "remote").exists()  # checked before anything is sent


@pytest.fixture
def release(tmp_path, evaluated_runs) -> Path:
    results = tmp_path / "results"
    shutil.copytree(evaluated_runs["new"], results / "runs" / "new")
    return Path(publish(inputs_of(results / "runs" / "new"), results)["release"])


def test_s3_upload_matches_the_release_and_a_rerun_replaces(s3_server, release, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_UPLOAD_S3", s3_server.connection())
    out = upload_results(release, f"s3://{BUCKET}/team/models/", "2024-01-01T000000Z", "upload_s3")
    prefix = "team/models/2024-01-01T000000Z/"
    assert out == {n: f"s3://{BUCKET}/{prefix}{n}" for n in RELEASE_FILES}
    assert s3_server.objects(prefix) == {prefix + p.name: p.read_bytes() for p in release.iterdir()}
    upload_results(release, f"s3://{BUCKET}/team/models", "2024-01-01T000000Z", "upload_s3")
    assert len(s3_server.objects(prefix)) == len(RELEASE_FILES)  # replaced, not duplicated


def test_s3_wrong_credentials_fail_at_once_without_the_secret(s3_server, release, monkeypatch):
    # (a connection id of its own: Airflow caches a connection's file system per process)
    monkeypatch.setenv("AIRFLOW_CONN_UPLOAD_WRONG", s3_server.connection(secret="wrong-secret-value"))
    with pytest.raises(UploadError) as error:
        upload_results(release, f"s3://{BUCKET}/wrong", "k", "upload_wrong")
    message = str(error.value)
    assert message.startswith(f"upload to s3://{BUCKET}/wrong: access refused (The request signature we "
                              "calculated does not match")
    assert message.endswith("check the credentials in Airflow connection 'upload_wrong'")
    assert "\n" not in message and "wrong-secret-value" not in message and s3_server.secret not in message
    assert s3_server.objects("wrong/") == {}


def test_s3_missing_bucket_fails_at_once(s3_server, release, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_UPLOAD_S3", s3_server.connection())
    with pytest.raises(UploadError, match=r"^upload to s3://no-such-bucket/p: The specified bucket does not exist "
                                          r"\(create the bucket first\)$"):
        upload_results(release, "s3://no-such-bucket/p", "k", "upload_s3")


def test_s3_server_down_is_a_retryable_connection_error(release, monkeypatch):
    from tests.servers import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AIRFLOW_CONN_UPLOAD_DOWN", json.dumps({
        "conn_type": "aws", "login": "k", "password": "s",
        # one attempt, not botocore's backoff: the error is what is tested, not the retries' timing
        "extra": {"endpoint_url": endpoint, "config_kwargs": {"retries": {"total_max_attempts": 1}}}}))
    with pytest.raises(ConnectionError, match=f"upload to s3://{BUCKET}/p: Could not connect to the endpoint URL"):
        upload_results(release, f"s3://{BUCKET}/p", "k", "upload_down")
