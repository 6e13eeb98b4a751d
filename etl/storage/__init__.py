"""The storage layer: every artifact read and write of the pipeline goes through here.

A location is a local path (``str``, ``os.PathLike``, a ``file://`` URI) or an Airflow
``ObjectStoragePath`` (``s3://...`` and the other fsspec schemes Airflow's providers register).
Steps only ever call the functions below with the locations they are given, so the results root
can become an object store shared by workers on several machines without touching a step.

- Writes are atomic. Locally the bytes go to a hidden temporary file beside the target, are
  flushed to disk, then renamed over the target (``_commit``); an object store makes a new
  object visible only once it is complete. A reader never sees a half-written artifact, and a
  failed write leaves the previous one as it was.
- Models and preprocessing are skops files (``etl.storage.objects``: loading one cannot run
  code, and only trusted types are built), written with a checksum file beside them
  (``model.skops.sha256``, the format of ``sha256sum``) and refused at load time when their
  SHA-256 does not match it: a file changed by accident is never used. (Against a deliberate
  change, a release is signed: ``etl.releases.signing``.)
- Reading a missing file raises ``MissingInputError``, which names the task that writes it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Union
from urllib.parse import unquote, urlparse

from etl.catalog import IntegrityError, MissingInputError

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import ObjectStoragePath

#: What the functions below accept: a local path, a URI, or an ``ObjectStoragePath``.
Location = Union[str, "os.PathLike[str]", "ObjectStoragePath"]
#: A resolved location.
Target = Union[Path, "ObjectStoragePath"]

CHECKSUM_SUFFIX = ".sha256"
_CHUNK = 1 << 20


def location(value: Location) -> Target:
    """Resolve ``value``: local paths and ``file://`` URIs to ``Path``, other URIs to
    ``ObjectStoragePath`` (credentials come from its Airflow connection)."""
    if isinstance(value, Path):
        return value
    if isinstance(value, str):
        if value.startswith("file://"):
            return Path(unquote(urlparse(value).path))
        if "://" in value:
            from airflow.sdk import ObjectStoragePath

            return ObjectStoragePath(value)
        return Path(value)
    if isinstance(value, os.PathLike):
        return Path(value)
    return value  # already an ObjectStoragePath


def uri(target: Location) -> str:
    """A location as text for logs: a local path, or ``scheme://bucket/key`` (without the
    connection id). Paths handed to another step (XCom) use ``str()``, which keeps the
    connection id (``s3://<conn id>@bucket/key``) so that ``location()`` resolves them again."""
    target = location(target)
    return str(target) if isinstance(target, Path) else f"{target.protocol}://{target.path}"


def is_local(target: Location) -> bool:
    """Whether ``target`` is on the local file system."""
    return isinstance(location(target), Path)


def _commit(tmp: Path, target: Path) -> None:
    """Flush ``tmp`` to disk and rename it over ``target`` (the one commit point of a write)."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)


@contextmanager
def atomic_open(target: Location, mode: str = "w") -> Iterator[IO[Any]]:
    """Open ``target`` for writing; it is replaced only if the block completes without error."""
    if "w" not in mode:
        raise ValueError(f"atomic_open is for writing, got mode {mode!r}")
    encoding = None if "b" in mode else "utf-8"
    target = location(target)
    if not isinstance(target, Path):  # an object store: the object appears when complete
        if target.protocol in ("file", "local"):  # object stores have no folders to make (and
            target.parent.mkdir(parents=True, exist_ok=True)  # s3fs would create a bucket)
        with target.open(mode, encoding=encoding) if encoding else target.open(mode) as fh:
            yield fh
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
        _commit(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def open_read(source: Location, producer: str | None = None) -> IO[bytes]:
    """Open ``source`` for reading bytes; ``MissingInputError`` (naming ``producer``) if absent."""
    return require(source, producer).open("rb")


def exists(target: Location) -> bool:
    """Whether ``target`` is an existing file."""
    return location(target).is_file()


def require(source: Location, producer: str | None = None) -> Target:
    """``source`` resolved, or ``MissingInputError`` naming the task that writes it."""
    source = location(source)
    if not source.is_file():
        raise MissingInputError(source, producer)
    return source


def digest(source: Location, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``md5`` only to compare with what a store reports)."""
    hasher = hashlib.new(algorithm, usedforsecurity=algorithm != "md5")
    with open_read(source) as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def sha256(source: Location) -> str:
    """Hex SHA-256 of a file's bytes."""
    return digest(source)


def size(source: Location) -> int:
    """Size of a file in bytes."""
    return int(require(source).stat().st_size)


def describe(source: Location) -> dict[str, Any]:
    """``{"sha256": ..., "size": ...}`` of a file (a manifest entry)."""
    return {"sha256": sha256(source), "size": size(source)}


def write_bytes(data: bytes, target: Location) -> Target:
    """Write ``data`` to ``target`` atomically."""
    with atomic_open(target, "wb") as fh:
        fh.write(data)
    return location(target)


def read_bytes(source: Location, producer: str | None = None) -> bytes:
    """All bytes of a file."""
    with open_read(source, producer) as fh:
        return fh.read()


def json_bytes(obj: Any) -> bytes:
    """``obj`` as indented, key-sorted JSON (the same content gives the same bytes)."""
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def write_json(obj: Any, target: Location) -> Target:
    """Write ``obj`` as ``json_bytes``."""
    return write_bytes(json_bytes(obj), target)


def read_json(source: Location, producer: str | None = None) -> Any:
    """Read a JSON file."""
    return json.loads(read_bytes(source, producer))


def write_frame(df: pd.DataFrame, target: Location) -> Target:
    """Write a DataFrame without its index, in the format the name says: ``.parquet`` (the
    tables steps hand each other: typed, exact, fast) or CSV (files people open, like
    ``predictions.csv``; floats keep their full precision)."""
    if location(target).name.endswith(".parquet"):
        with atomic_open(target, "wb") as fh:
            df.to_parquet(fh, index=False, engine="pyarrow", compression="snappy")
    else:
        with atomic_open(target, "w") as fh:
            df.to_csv(fh, index=False, lineterminator="\n")
    return location(target)


def read_frame(source: Location, producer: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a table written by ``write_frame`` (Parquet or CSV, by its name); ``columns``: only
    these (a Parquet file reads no others)."""
    import pandas as pd

    with open_read(source, producer) as fh:
        if location(source).name.endswith(".parquet"):
            return pd.read_parquet(fh, engine="pyarrow", columns=columns)
        return pd.read_csv(fh, usecols=columns)


def checksum_file(target: Location) -> Target:
    """Where the SHA-256 of ``target`` is recorded: ``<target>.sha256`` beside it."""
    target = location(target)
    return target.parent / (target.name + CHECKSUM_SUFFIX)


def dump_object(obj: Any, target: Location) -> Target:
    """Write ``obj`` (a model, a scaler) as a skops file to ``target`` and record its SHA-256 beside it."""
    from etl.storage.objects import dumps

    data = dumps(obj)
    target = write_bytes(data, target)
    digest = hashlib.sha256(data).hexdigest()
    write_bytes(f"{digest}  {target.name}\n".encode(), checksum_file(target))
    return target


def recorded_sha256(target: Location) -> str:
    """The SHA-256 recorded for ``target`` by ``dump_object``."""
    record = checksum_file(target)
    if not exists(record):
        raise IntegrityError(f"{target}: no checksum recorded ({record} is missing); refusing to load it")
    return read_bytes(record).decode().split()[0]


def _check(source: Target, actual: str, expected: str, record: str) -> None:
    if actual != expected:
        raise IntegrityError(
            f"{source}: SHA-256 {actual[:16]}... does not match {expected[:16]}... recorded in "
            f"{record}; the file was changed after it was written, refusing to use it"
        )


def verify(source: Location, expected_sha256: str, record: str) -> Target:
    """``source`` if its SHA-256 is ``expected_sha256``, else ``IntegrityError``.

    Args:
        record: where the expected hash comes from, for the message.
    """
    source = require(source)
    _check(source, sha256(source), expected_sha256, record)
    return source


def checked_bytes(source: Location) -> bytes:
    """The bytes of a file written by ``dump_object``, checked against the SHA-256 recorded
    beside it (read once: what is checked is what is used).

    Raises:
        IntegrityError: no recorded hash, or the file's hash differs.
    """
    source = require(source)
    expected, record = recorded_sha256(source), str(checksum_file(source))
    data = read_bytes(source)
    _check(source, hashlib.sha256(data).hexdigest(), expected, record)
    return data


def load_object(source: Location) -> Any:
    """Load a skops file written by ``dump_object`` (``checked_bytes``), building only trusted
    types (``etl.storage.objects.loads``).

    Raises:
        IntegrityError: the hash differs, the file is no skops file or names an untrusted
            type. Nothing of the file is run.
    """
    from etl.storage.objects import loads

    return loads(checked_bytes(source), location(source))


def copy_object(source: Location, target: Location) -> Target:
    """Copy a file written by ``dump_object`` and its checksum, after checking it, byte for byte
    (without loading it)."""
    expected = recorded_sha256(source)
    verify(source, expected, str(checksum_file(source)))
    target = copy_file(source, target)
    write_bytes(f"{expected}  {target.name}\n".encode(), checksum_file(target))
    return target


def copy_file(source: Location, target: Location) -> Target:
    """Copy a file's bytes to ``target`` atomically (between local and object storage too)."""
    with open_read(source) as src, atomic_open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)
    return location(target)


def remove_interrupted_writes(folder: Location, names: Iterable[str] | None = None) -> list[str]:
    """Delete the temporary files that writes killed before their commit left in ``folder``:
    every one, or only those of the files ``names`` (a task's own, before it runs again).

    Only call it when no write into ``folder`` (of ``names``) is in progress: at the start of
    a run, or of the one task that writes them.
    """
    folder = location(folder)
    if not isinstance(folder, Path) or not folder.is_dir():
        return []  # an object store has no partial objects
    patterns = [".*.tmp"] if names is None else [f".{glob.escape(name)}.*.tmp" for name in names]
    removed = []
    for leftover in sorted({p for pattern in patterns for p in folder.glob(pattern)}):
        leftover.unlink(missing_ok=True)
        removed.append(str(leftover))
    return removed


def last_modified(folder: Location) -> float:
    """When anything in ``folder`` was last written (epoch seconds): the newest modification
    time of the folder and the files directly in it locally, of every object under it in an
    object store."""
    folder = location(folder)
    if isinstance(folder, Path):
        return max([folder.lstat().st_mtime, *(p.lstat().st_mtime for p in folder.iterdir())])
    times = [info.get("LastModified") or info.get("mtime") or info.get("created")
             for info in folder.fs.find(folder.path, detail=True).values()]
    return max((t.timestamp() if hasattr(t, "timestamp") else float(t) for t in times if t), default=0.0)


def remove_tree(target: Location) -> None:
    """Delete a folder and everything in it (a no-op if it is already gone)."""
    target = location(target)
    if isinstance(target, Path):
        if target.is_dir():
            shutil.rmtree(target)
    elif target.exists():
        target.rmdir(recursive=True)


def move(source: Location, target: Location) -> Target:
    """Move a file to ``target``, replacing it: one rename locally (the folder is created);
    on an object store a copy, then the source is deleted."""
    source, target = location(source), location(target)
    if isinstance(source, Path) and isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        return target
    copy_file(source, target)
    source.unlink()
    return target


def list_folders(folder: Location) -> list[str]:
    """The names of the sub-folders directly in ``folder``, sorted; none when it does not exist.
    Hidden folders (a write in progress) are left out."""
    folder = location(folder)
    try:
        if not folder.exists():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def list_files(folder: Location, suffix: str) -> list[Target]:
    """The files directly in ``folder`` whose name ends with ``suffix`` (case-insensitive), by
    name; none when the folder does not exist. Hidden files (a write in progress) are left out."""
    folder = location(folder)
    if not folder.exists():
        return []
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(suffix)),
                  key=lambda p: p.name)
