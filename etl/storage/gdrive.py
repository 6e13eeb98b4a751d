"""Google Drive uploads through pydrive2 (``upload_uri = "gdrive://<folder id>"``).

Credentials, read from ``secrets/`` (paths in ``[upload]`` of ``pipeline.toml``; see
``secrets/README.md`` for how to make each):

- a **service account** key (``gdrive-service-account.json``): for servers; share the target
  folder (or the shared drive) with the service account's e-mail address;
- or saved **OAuth user credentials** (``gdrive-user-credentials.json``, with a refresh token):
  for a personal Drive.

A run's files go to a sub-folder named after the run key inside the target folder (shared
drives supported). A file that already exists there under the same name gets a new revision
(replaced, not duplicated). Each upload is checked against Drive's ``md5Checksum`` and
``fileSize``. Refused credentials or a missing folder raise ``UploadError`` (no retry); other
HTTP errors are left to Airflow's retries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from etl import storage
from etl.catalog import UploadError, first_line

logger = logging.getLogger(__name__)

FOLDER_MIME = "application/vnd.google-apps.folder"
SCOPES = ["https://www.googleapis.com/auth/drive"]


def _quote(value: str) -> str:
    """A string literal of Drive's query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def connect(
    service_account: str | os.PathLike[str] | None = None,
    user: str | os.PathLike[str] | None = None,
    http_factory: Callable[[], Any] | None = None,
) -> Any:
    """An authorised ``pydrive2.drive.GoogleDrive``.

    Args:
        service_account: a service account's JSON key; used when the file exists.
        user: saved OAuth user credentials (``GoogleAuth.SaveCredentialsFile``), else.
        http_factory: makes the ``httplib2.Http`` objects pydrive2 sends requests with
            (default: pydrive2's own). The tests answer Google's HTTP calls locally with it.

    Raises:
        UploadError: no credential file, or Google refused the credentials.
    """
    from oauth2client.client import AccessTokenRefreshError
    from pydrive2.auth import GoogleAuth, RefreshError
    from pydrive2.drive import GoogleDrive

    settings = {"client_config_backend": "service", "save_credentials": False, "oauth_scope": SCOPES,
                "service_config": {"client_json_file_path": str(service_account)}}
    if service_account and Path(service_account).is_file():
        source = Path(service_account)
        gauth = GoogleAuth(settings_file=None, settings=settings)
    elif user and Path(user).is_file():
        source = Path(user)
        gauth = GoogleAuth(settings_file=None, settings={**settings, "client_config_backend": "file"})
    else:
        raise UploadError(
            f"gdrive://: no Google Drive credentials: put a service account key in {service_account} "
            f"or saved OAuth user credentials in {user} (see secrets/README.md)"
        )
    if http_factory is not None:
        gauth._build_http = http_factory  # every request pydrive2 makes goes through it
    try:
        if source == Path(service_account or ""):
            gauth.ServiceAuth()
            gauth.credentials.refresh(gauth._build_http())
        else:
            gauth.LoadCredentialsFile(str(source))
            if gauth.access_token_expired:
                gauth.Refresh()
        gauth.Authorize()
    except (AccessTokenRefreshError, RefreshError) as exc:
        raise UploadError(f"gdrive://: Google refused the credentials in {source} ({_reason(exc)})") from None
    except (ValueError, KeyError) as exc:
        raise UploadError(f"gdrive://: {source} is not a usable credential file ({type(exc).__name__})") from None
    return GoogleDrive(gauth)


def _reason(exc: BaseException) -> str:
    """The first line of an error, without anything that looks like a token."""
    text = first_line(exc)
    return text.split(":", 1)[-1].strip() if "refresh failed" in text.lower() else text


def _folder(drive: Any, folder_id: str) -> dict[str, Any]:
    """The target folder's metadata; ``UploadError`` if it is missing or not a folder."""
    from pydrive2.files import ApiRequestError

    folder = drive.CreateFile({"id": folder_id})
    try:
        folder.FetchMetadata(fields="id,title,mimeType")
    except ApiRequestError as exc:
        if exc.error.get("code") == 404:
            raise UploadError(
                f"gdrive://{folder_id}: folder not found (or not shared with these credentials)"
            ) from None
        raise
    if folder["mimeType"] != FOLDER_MIME:
        raise UploadError(f"gdrive://{folder_id}: {folder['title']!r} is not a folder")
    return folder


def _find(drive: Any, parent: str, title: str, mime_type: str | None = None) -> Any | None:
    query = f"{_quote(parent)} in parents and title = {_quote(title)} and trashed = false"
    if mime_type:
        query += f" and mimeType = {_quote(mime_type)}"
    found = drive.ListFile({"q": query, "includeItemsFromAllDrives": True, "corpora": "allDrives"}).GetList()
    return found[0] if found else None


def upload(
    files: Mapping[str, storage.Location],
    folder_id: str,
    run_key: str,
    service_account: str | os.PathLike[str] | None = None,
    user: str | os.PathLike[str] | None = None,
    http_factory: Callable[[], Any] | None = None,
) -> dict[str, str]:
    """Upload ``files`` (name -> local path or ``ObjectStoragePath``) to
    ``<folder_id>/<run_key>/`` on Google Drive.

    Returns:
        name -> ``gdrive://<file id>`` of the uploaded file.
    """
    drive = connect(service_account, user, http_factory)
    _folder(drive, folder_id)
    sub = _find(drive, folder_id, run_key, FOLDER_MIME)
    if sub is None:
        sub = drive.CreateFile({"title": run_key, "mimeType": FOLDER_MIME, "parents": [{"id": folder_id}]})
        sub.Upload()
    uploaded = {}
    for name, path in files.items():
        path = storage.location(path)
        item = _find(drive, sub["id"], name) or drive.CreateFile({"title": name, "parents": [{"id": sub["id"]}]})
        if storage.is_local(path):
            item.SetContentFile(str(path))
        else:  # a release on an object store (a cluster's results root): streamed from there
            item.content = storage.open_read(path)
            item["mimeType"] = item.get("mimeType") or "application/octet-stream"
        item.Upload()
        item.content.close()
        md5 = storage.digest(path, "md5")
        if int(item["fileSize"]) != storage.size(path) or item["md5Checksum"] != md5:
            raise OSError(f"upload of {name} to gdrive://{folder_id}/{run_key}: Drive's size or MD5 differs")
        logger.info("uploaded %s to gdrive://%s/%s (file id %s; size+md5 checked)", name, folder_id, run_key, item["id"])
        uploaded[name] = f"gdrive://{item['id']}"
    return uploaded
