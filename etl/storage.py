"""All artifact reads and writes go through here.

Writes are atomic: the bytes go to a hidden temporary file in the target folder, which is then
renamed over the target, so a reader never sees a half-written artifact and a failed write
leaves the previous file untouched. Reads of a missing file raise ``MissingInputError``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from etl.errors import MissingInputError

if TYPE_CHECKING:
    import pandas as pd


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``target`` when closed without error."""
    encoding = None if "b" in mode else "utf-8"
    with atomic_path(target) as tmp, open(tmp, mode, encoding=encoding) as fh:
        yield fh


def require(path: str | os.PathLike[str], producer: str | None = None) -> Path:
    """Return ``path`` as a ``Path``, or raise ``MissingInputError`` naming who writes it."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(path, producer)
    return path


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented, key-sorted JSON (stable bytes for the same content)."""
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return Path(path)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    with open(require(path), encoding="utf-8") as fh:
        return json.load(fh)


def write_frame(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a DataFrame as CSV (no index); floats keep their full precision."""
    with atomic_open(path) as fh:
        df.to_csv(fh, index=False, lineterminator="\n")
    return Path(path)


def read_frame(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV written by ``write_frame``."""
    import pandas as pd

    return pd.read_csv(require(path))


def dump_object(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Pickle ``obj`` with joblib (models, scalers)."""
    import joblib

    with atomic_path(path) as tmp:
        joblib.dump(obj, tmp)
    return Path(path)


def load_object(path: str | os.PathLike[str]) -> Any:
    """Load a joblib pickle. Only load files this pipeline wrote: unpickling runs code."""
    import joblib

    return joblib.load(require(path))


def copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy ``src`` to ``dst`` atomically, keeping its modification time."""
    with atomic_path(dst) as tmp:
        shutil.copy2(require(src), tmp)
    return Path(dst)
