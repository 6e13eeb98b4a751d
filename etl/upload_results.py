"""Upload the release a run published (every file, its signature too) to its destination.

The destination is ``upload_uri`` in the settings (``UPLOAD_URI`` overrides it):

- a local folder: a plain path or ``file:///some/path`` (the default, ``results/uploads``);
- S3-compatible storage (AWS S3, MinIO, ...): ``s3://bucket/prefix``, through Airflow's
  ``ObjectStoragePath``; credentials, region and endpoint come from the Airflow connection
  ``[upload] conn_id`` (``UPLOAD_CONN_ID``), so an
  ``AIRFLOW_CONN_AWS_DEFAULT`` environment variable works;
- Google Drive: ``gdrive://<folder id>``, through pydrive2 (see ``etl.storage.gdrive``).

Each run goes to ``<destination>/<run key>/``; uploading the same run again replaces its files.
Every file is verified against the release's signature before it is sent, and every uploaded
copy is checked afterwards: its size, and its checksum where the store gives one (SHA-256
locally, the MD5 ETag of S3, Drive's ``md5Checksum``). Wrong credentials or a missing bucket or
folder fail at once with one line (``UploadError``); connection errors are left to Airflow's
retries. The local results are only read.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from etl import runner, storage
from etl.catalog import ParameterError, Skipped, UploadError, first_line
from etl.releases.reader import recorded_release, verified_files
from etl.runner import Outputs, Run, Step

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class UploadOptions:
    """Where a destination's credentials are: never in its URI."""

    conn_id: str | None = None  # the Airflow connection of s3:// ([upload] conn_id)
    drive_credentials: Mapping[str, str | os.PathLike[str]] = field(default_factory=dict)  # gdrive://


class Destination(ABC):
    """Where a release is uploaded: one subclass per URI scheme, registered in ``DESTINATIONS``.

    A subclass checks its URI when made (``ParameterError``: nothing is sent), and ``upload``
    sends every file to ``<uri>/<run key>/``, replacing what a previous upload of that run left,
    and checks each copy.
    """

    #: URI schemes it handles ("" is a plain path).
    schemes: tuple[str, ...] = ()
    #: What the URI's host part names, when it must have one ("bucket", "folder id").
    host: str | None = None

    def __init__(self, uri: str, options: UploadOptions) -> None:
        self.uri, self.options = uri, options
        if self.host and not urlparse(uri).netloc:
            raise ParameterError(f"upload destination {uri!r}: no {self.host}")

    @abstractmethod
    def upload(self, files: Mapping[str, storage.Target], run_key: str) -> dict[str, str]:
        """Upload ``files`` (name -> verified source); return name -> uploaded location."""

    def __str__(self) -> str:
        return self.uri.rstrip("/")


def _check_copy(src: storage.Target, dst: Any) -> str:
    """Compare an uploaded copy with its source; return what was compared."""
    if storage.is_local(dst):
        storage.verify(dst, storage.sha256(src), f"the published {src.name}")
        return "sha256"
    info = dst.fs.info(dst.path)
    if int(info["size"]) != storage.size(src):
        raise OSError(f"upload of {src.name}: {info['size']} bytes arrived, {storage.size(src)} sent")
    etag = str(info.get("ETag", "")).strip('"')
    if etag and "-" not in etag:  # a single-part upload's ETag is the MD5 of its bytes
        if etag != storage.digest(src, "md5"):
            raise OSError(f"upload of {src.name}: the stored MD5 differs from the file sent")
        return "size+md5"
    return "size"


def _to_filesystem(files: Mapping[str, storage.Target], target: Any) -> dict[str, str]:
    """Copy ``files`` into a local folder or an ``ObjectStoragePath`` and check each copy."""
    uploaded = {}
    for name, src in files.items():
        dst = storage.copy_file(src, target / name)
        checked = _check_copy(src, dst)
        logger.info("uploaded %s to %s (%s checked)", name, storage.uri(dst), checked)
        uploaded[name] = storage.uri(dst)
    return uploaded


class LocalDestination(Destination):
    """A local folder: a plain path or ``file:///some/path`` (checked by SHA-256)."""

    schemes = ("", "file")

    @property
    def folder(self) -> Path:
        parsed = urlparse(self.uri)
        return Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(self.uri).expanduser()

    def upload(self, files: Mapping[str, storage.Target], run_key: str) -> dict[str, str]:
        return _to_filesystem(files, self.folder / run_key)


class S3Destination(Destination):
    """S3-compatible storage, ``s3://bucket/prefix``, through Airflow's ``ObjectStoragePath`` and
    the connection ``options.conn_id`` (checked by size and MD5 ETag)."""

    schemes, host = ("s3",), "bucket"

    def upload(self, files: Mapping[str, storage.Target], run_key: str) -> dict[str, str]:
        from airflow.sdk import ObjectStoragePath
        from botocore.exceptions import BotoCoreError

        conn_id = self.options.conn_id
        if not conn_id:
            raise ParameterError(f"uploading to {self}: no Airflow connection named ([upload] conn_id)")
        target = ObjectStoragePath(f"{self}/{run_key}", conn_id=conn_id)
        try:
            return _to_filesystem(files, target)
        except PermissionError as exc:
            raise UploadError(
                f"upload to {self}: access refused ({first_line(exc)}); check the credentials "
                f"in Airflow connection {conn_id!r}"
            ) from None
        except FileNotFoundError as exc:
            raise UploadError(f"upload to {self}: {first_line(exc)} (create the bucket first)") from None
        except BotoCoreError as exc:  # endpoint unreachable, timeouts: Airflow retries the task
            raise ConnectionError(f"upload to {self}: {first_line(exc)}") from None


class DriveDestination(Destination):
    """Google Drive, ``gdrive://<folder id>``, through pydrive2 (``etl.storage.gdrive``; checked by
    size and Drive's ``md5Checksum``)."""

    schemes, host = ("gdrive",), "folder id"

    def upload(self, files: Mapping[str, storage.Target], run_key: str) -> dict[str, str]:
        from etl.storage import gdrive

        return gdrive.upload(files, urlparse(self.uri).netloc, run_key, **dict(self.options.drive_credentials))


#: URI scheme -> its destination class. A new kind of destination is a subclass and a line here.
DESTINATIONS: dict[str, type[Destination]] = {
    scheme: cls for cls in (LocalDestination, S3Destination, DriveDestination) for scheme in cls.schemes
}
#: Schemes ``upload_results`` accepts, besides plain paths.
SCHEMES = tuple(s for s in DESTINATIONS if s)


def destination(uri: str, options: UploadOptions | None = None) -> Destination:
    """The destination a URI names, its form checked.

    Raises:
        ParameterError: an unknown scheme, a URI without a bucket or folder id, or credentials
            written into the URI (they belong in a connection or in ``secrets/``).
    """
    parsed = urlparse(uri)
    scheme = parsed.scheme if "://" in uri else ""
    if scheme not in DESTINATIONS:
        raise ParameterError(
            f"upload destination {uri.split('://')[0]}://...: unsupported scheme {scheme!r} "
            f"(use a folder, {', '.join(s + '://' for s in SCHEMES)})"
        )
    if parsed.username or parsed.password:
        raise ParameterError(
            f"upload destination {scheme}://...: credentials in the URI are refused; put them in "
            "the Airflow connection (s3://) or in secrets/ (gdrive://)"
        )
    return DESTINATIONS[scheme](uri, options or UploadOptions())


def upload_results(
    release_dir: storage.Location,
    destination_uri: str,
    run_key: str,
    conn_id: str | None = None,
    drive_credentials: Mapping[str, str | os.PathLike[str]] | None = None,
) -> dict[str, str]:
    """Upload a published release (artifacts and manifest) to ``<destination_uri>/<run_key>/``.

    Args:
        release_dir: the release folder (``results/published/<release>``).
        destination_uri: a folder, ``file://``, ``s3://bucket/prefix`` or ``gdrive://<folder id>``.
        run_key: the sub-folder of the destination.
        conn_id: the Airflow connection of an ``s3://`` destination.
        drive_credentials: for ``gdrive://``, ``{"service_account": path, "user": path}``.

    Returns:
        file name -> uploaded location.
    """
    target = destination(destination_uri, UploadOptions(conn_id, drive_credentials or {}))
    files = verified_files(release_dir)  # all checked before anything is sent
    uploaded = target.upload(files, run_key)
    logger.info("uploaded %d file(s) of release %s to %s/%s", len(uploaded),
                storage.location(release_dir).name, target, run_key)
    return uploaded


def _upload_results(run: Run) -> Outputs:
    """``upload_results`` of the release this run recorded, to ``[paths] upload_uri``."""
    s = run.settings
    release = recorded_release(run.inputs("upload_results").release_record, s.results_dir)
    if release is None:
        raise Skipped("nothing to upload: the quality gate kept this run's model unpublished")
    return upload_results(release, s.paths.upload_uri, run.folder.root.name, s.upload.conn_id, s.upload.drive_credentials)


STEPS = runner.steps(Step("upload_results", _upload_results))
main = runner.entry_point(STEPS, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
