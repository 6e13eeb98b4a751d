"""Google Drive uploads: pydrive2's and Google's client code run for real; Google's HTTP
endpoints are answered by ``tests/fake_drive.py`` on 127.0.0.1. The live check against the real
Drive runs only when credentials and a folder are configured (see the last test)."""

import json
import os
import shutil
from pathlib import Path

import pytest

from etl.catalog import UploadError
from etl.releases.registry import publish
from etl.settings import load_settings
from etl.storage import gdrive
from etl.storage.layout import RELEASE_FILES
from etl.upload_results import upload_results
from tests.conftest import inputs_of
from tests.fake_drive import FakeDrive, new_key, rewriting_http, serve, service_account_json
from tests.servers import BUCKET


@pytest.fixture
def drive():
    key = new_key()
    fake = FakeDrive(public_key=key.public_key())
    server = serve(fake)
    fake.key = key
    fake.folder = fake.add("Model uploads")
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def service_account(tmp_path, drive) -> Path:
    path = tmp_path / "secrets" / "gdrive-service-account.json"
    path.parent.mkdir()
    path.write_text(json.dumps(service_account_json(drive.key, token_uri="https://oauth2.googleapis.com/token")))
    return path


@pytest.fixture
def files(tmp_path, evaluated_runs) -> dict[str, Path]:
    results = tmp_path / "results"
    shutil.copytree(evaluated_runs["new"], results / "runs" / "new")
    release = Path(publish(inputs_of(results / "runs" / "new"), results)["release"])
    return {p.name: p for p in sorted(release.iterdir())}


def test_upload_with_a_service_account_and_replace_on_rerun(drive, service_account, files):
    out = gdrive.upload(files, drive.folder, "2024-01-01T000000Z", service_account=service_account,
                        http_factory=rewriting_http(drive))
    (run_folder,) = drive.children(drive.folder).values()
    assert run_folder["title"] == "2024-01-01T000000Z" and run_folder["mimeType"] == gdrive.FOLDER_MIME
    stored = drive.children(run_folder["id"])
    assert {name: f["content"] for name, f in stored.items()} == {n: p.read_bytes() for n, p in files.items()}
    assert out == {name: f"gdrive://{f['id']}" for name, f in stored.items()}
    # The content went up through resumable uploads, authorised by a token for the signed JWT.
    assert ("POST", "/token") in drive.requests and ("POST", "/upload/drive/v2/files") in drive.requests

    gdrive.upload(files, drive.folder, "2024-01-01T000000Z", service_account=service_account,
                  http_factory=rewriting_http(drive))
    assert len(drive.children(drive.folder)) == 1  # the run folder is reused
    assert drive.children(run_folder["id"]).keys() == stored.keys()  # files replaced, not duplicated
    assert ("PUT", f"/upload/drive/v2/files/{stored['model.pkl']['id']}") in drive.requests


def test_upload_streams_a_release_kept_on_an_object_store(drive, service_account, files, s3_server, monkeypatch):
    """A cluster's results root is an object store: the files are ``ObjectStoragePath``s on S3
    (moto's server), streamed to Drive without a local copy."""
    from airflow.sdk import ObjectStoragePath

    monkeypatch.setenv("AIRFLOW_CONN_GDRIVE_TEST_S3", s3_server.connection())
    for name, path in files.items():
        s3_server.client().put_object(Bucket=BUCKET, Key=f"release/{name}", Body=path.read_bytes())
    remote = {name: ObjectStoragePath(f"s3://{BUCKET}/release/{name}", conn_id="gdrive_test_s3") for name in files}
    gdrive.upload(remote, drive.folder, "k", service_account=service_account, http_factory=rewriting_http(drive))
    (run_folder,) = drive.children(drive.folder).values()
    stored = drive.children(run_folder["id"])
    assert {name: f["content"] for name, f in stored.items()} == {n: p.read_bytes() for n, p in files.items()}


def test_upload_with_saved_user_credentials(drive, tmp_path, files):
    user = tmp_path / "gdrive-user-credentials.json"
    user.write_text(json.dumps({  # what GoogleAuth.SaveCredentialsFile writes (oauth2client)
        "_module": "oauth2client.client", "_class": "OAuth2Credentials", "access_token": "expired",
        "client_id": "cid.apps.googleusercontent.com", "client_secret": "csecret",
        "refresh_token": drive.refresh_token, "token_expiry": "2020-01-01T00:00:00Z",
        "token_uri": "https://oauth2.googleapis.com/token", "user_agent": None, "revoke_uri": None,
        "id_token": None, "id_token_jwt": None, "token_response": None, "scopes": gdrive.SCOPES,
        "token_info_uri": None, "invalid": False,
    }))
    gdrive.upload(files, drive.folder, "k", service_account=tmp_path / "absent.json", user=user,
                  http_factory=rewriting_http(drive))
    (run_folder,) = drive.children(drive.folder).values()
    assert drive.children(run_folder["id"]).keys() == set(RELEASE_FILES)  # every file, the signature too
    assert ("POST", "/token") in drive.requests  # the expired token was refreshed


def test_a_key_google_does_not_know_is_refused_in_one_line(drive, tmp_path, files):
    other = tmp_path / "other.json"
    other.write_text(json.dumps(service_account_json(new_key(), token_uri="https://oauth2.googleapis.com/token")))
    with pytest.raises(UploadError) as error:
        gdrive.upload(files, drive.folder, "k", service_account=other, http_factory=rewriting_http(drive))
    assert str(error.value) == f"gdrive://: Google refused the credentials in {other} (invalid_grant: Invalid JWT Signature.)"
    assert drive.children(drive.folder) == {}


def test_a_missing_folder_is_refused_in_one_line(drive, service_account, files):
    with pytest.raises(UploadError, match=r"^gdrive://1NoSuchFolder: folder not found \(or not shared with these credentials\)$"):
        gdrive.upload(files, "1NoSuchFolder", "k", service_account=service_account, http_factory=rewriting_http(drive))


def test_no_credentials_is_refused_in_one_line(tmp_path, files):
    with pytest.raises(UploadError, match="gdrive://: no Google Drive credentials: put a service account key in "):
        upload_results(files["manifest.json"].parent, "gdrive://1abc", "k",
                       drive_credentials={"service_account": tmp_path / "a.json", "user": tmp_path / "b.json"})


@pytest.mark.skipif(
    not os.environ.get("GDRIVE_TEST_FOLDER_ID"),
    reason="live Google Drive check: set GDRIVE_TEST_FOLDER_ID and put credentials in secrets/",
)
def test_live_upload_to_google_drive(files):  # pragma: no cover - needs the internet and an account
    settings = load_settings()
    out = upload_results(files["manifest.json"].parent, f"gdrive://{os.environ['GDRIVE_TEST_FOLDER_ID']}",
                         "live-check", drive_credentials=settings.upload.drive_credentials)
    assert set(out) == set(files)
