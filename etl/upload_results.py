"""Upload the release a run published (artifacts and manifest) to its destination.

The destination is ``upload_uri`` in the settings (``UPLOAD_URI`` overrides it):

- a local folder: a plain path or ``file:///some/path`` (the default, ``results/uploads``);
- S3-compatible storage (AWS S3, MinIO, ...): ``s3://bucket/prefix``, through Airflow's
  ``ObjectStoragePath``; credentials, region and endpoint come from the Airflow connection
  ``[upload] conn_id`` (``UPLOAD_CONN_ID``, default ``aws_default``), so an
  ``AIRFLOW_CONN_AWS_DEFAULT`` environment variable works;
- Google Drive: ``gdrive://<folder id>``, through pydrive2 (see ``etl.gdrive``).

Each run goes to ``<destination>/<run key>/``; uploading the same run again replaces its files.
Every file is checked against the release's manifest before it is sent, and every uploaded
copy is checked afterwards: its size, and its checksum where the store gives one (SHA-256
locally, the MD5 ETag of S3, Drive's ``md5Checksum``). Wrong credentials or a missing bucket or
folder fail at once with one line (``UploadError``); connection errors are left to Airflow's
retries. The local results are only read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from etl import cli, storage
from etl.config import CLI_RUN_KEY
from etl.errors import ParameterError, UploadError, first_line
from etl.releases import current_release, verified_files

logger = logging.getLogger(__name__)

#: Schemes ``upload_results`` accepts, besides plain paths.
SCHEMES = ("file", "s3", "gdrive")


def local_destination(uri: str) -> Path:
    """The folder a plain path or ``file://`` URI names."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if "://" in uri:
        raise ParameterError(f"upload destination {uri!r}: not a local folder")
    return Path(uri).expanduser()


def check_destination(uri: str) -> str:
    """The scheme of an upload destination, after checking its form.

    Raises:
        ParameterError: an unknown scheme, a URI without a bucket or folder id, or credentials
            written into the URI (they belong in a connection or in ``secrets/``).
    """
    parsed = urlparse(uri)
    scheme = parsed.scheme if "://" in uri else ""
    if scheme and scheme not in SCHEMES:
        raise ParameterError(
            f"upload destination {uri.split('://')[0]}://...: unsupported scheme {scheme!r} "
            f"(use a folder, {', '.join(s + '://' for s in SCHEMES)})"
        )
    if parsed.username or parsed.password:
        raise ParameterError(
            f"upload destination {scheme}://...: credentials in the URI are refused; put them in "
            "the Airflow connection (s3://) or in secrets/ (gdrive://)"
        )
    if scheme in ("s3", "gdrive") and not parsed.netloc:
        raise ParameterError(f"upload destination {uri!r}: no {'bucket' if scheme == 's3' else 'folder id'}")
    return scheme


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


def _to_s3(files: Mapping[str, storage.Target], destination: str, run_key: str, conn_id: str) -> dict[str, str]:
    from airflow.sdk import ObjectStoragePath
    from botocore.exceptions import BotoCoreError

    target = ObjectStoragePath(f"{destination.rstrip('/')}/{run_key}", conn_id=conn_id)
    try:
        return _to_filesystem(files, target)
    except PermissionError as exc:
        raise UploadError(
            f"upload to {destination}: access refused ({first_line(exc)}); check the credentials "
            f"in Airflow connection {conn_id!r}"
        ) from None
    except FileNotFoundError as exc:
        raise UploadError(f"upload to {destination}: {first_line(exc)} (create the bucket first)") from None
    except BotoCoreError as exc:  # endpoint unreachable, timeouts: Airflow retries the task
        raise ConnectionError(f"upload to {destination}: {first_line(exc)}") from None


def upload_results(
    release_dir: storage.Location,
    destination: str,
    run_key: str,
    conn_id: str = "aws_default",
    drive_credentials: Mapping[str, str | os.PathLike[str]] | None = None,
) -> dict[str, str]:
    """Upload a published release (artifacts and manifest) to ``<destination>/<run_key>/``.

    Args:
        release_dir: the release folder (``results/published/<release>``).
        destination: a folder, ``file://``, ``s3://bucket/prefix`` or ``gdrive://<folder id>``.
        run_key: the sub-folder of the destination.
        conn_id: the Airflow connection of an ``s3://`` destination.
        drive_credentials: for ``gdrive://``, ``{"service_account": path, "user": path}``.

    Returns:
        file name -> uploaded location.
    """
    scheme = check_destination(destination)
    files = verified_files(release_dir)  # all checked before anything is sent
    if scheme == "s3":
        uploaded = _to_s3(files, destination, run_key, conn_id)
    elif scheme == "gdrive":
        from etl import gdrive

        uploaded = gdrive.upload(files, urlparse(destination).netloc, run_key, **dict(drive_credentials or {}))
    else:
        uploaded = _to_filesystem(files, local_destination(destination) / run_key)
    logger.info("uploaded %d file(s) of release %s to %s", len(uploaded), storage.location(release_dir).name,
                f"{destination.rstrip('/')}/{run_key}")
    return uploaded


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, settings, _ = cli.parser(__doc__)
    p.add_argument(
        "--release", type=cli.path_arg, default=None,
        help="release folder to upload (default: the published one, results/current)",
    )
    p.add_argument("--destination", default=settings.upload_uri,
                   help="folder, file://, s3://bucket/prefix or gdrive://<folder id>")
    p.add_argument("--conn-id", default=settings.upload_conn_id, help="Airflow connection for s3://")
    p.add_argument("--run-key", default=CLI_RUN_KEY, help="sub-folder of the destination")
    return cli.run(
        p,
        lambda a: upload_results(
            a.release or current_release(settings.results_dir), a.destination, a.run_key,
            a.conn_id, settings.drive_credentials,
        ),
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
