"""The inboxes' moves that need neither pandas nor scikit-learn: claiming new files, listing the
queue, and filing a file away without ever overwriting one (the inbox watchers run them in
Airflow's triggerer; ``etl.score`` and ``etl.outcomes`` do the rest).

Every file a clinic submits is kept: a file whose name is already taken in ``queued/``,
``processed/`` or ``rejected/`` is filed as ``<stem>.2.csv``, ``<stem>.3.csv``, ...; a file with
the same bytes as one already there is the same file sent again, recognised as such (``keep``
says so) and not stored twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from etl import storage
from etl.storage import Location, Target
from etl.storage.layout import InboxPaths

logger = logging.getLogger(__name__)

SUFFIX = ".csv"


def _candidates(folder: Target, name: str):
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    yield folder / name
    n = 2
    while True:
        yield folder / (f"{stem}.{n}.{suffix}" if suffix else f"{stem}.{n}")
        n += 1


def keep(source: Location, folder: Location) -> tuple[Target, bool]:
    """Move ``source`` into ``folder`` without overwriting anything: under its own name when
    free, else the first free ``<stem>.<n><suffix>``. When a file there under one of those names
    has the same bytes, ``source`` is that file sent again: it is removed and the kept one is
    returned. Locally each attempt is one hard link (fails if the name is taken) then an
    unlink, so two processes filing at once never overwrite each other.

    Returns:
        where the file is now, and whether it was the same as one already kept.
    """
    source, folder = storage.location(source), storage.location(folder)
    digest = storage.sha256(source)
    for target in _candidates(folder, source.name):
        if storage.exists(target):
            if storage.sha256(target) == digest:
                source.unlink()
                logger.info("%s is the same file as %s (same SHA-256): kept once", source.name, target.name)
                return target, True
            continue
        if isinstance(source, Path) and isinstance(target, Path):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except FileExistsError:  # taken meanwhile: look again
                continue
            source.unlink()
        else:  # an object store: no atomic create-if-absent; the inbox's one claimer files it
            storage.copy_file(source, target)
            source.unlink()
        if target.name != source.name:
            logger.info("%s: the name is taken in %s by another file; kept as %s", source.name, folder.name, target.name)
        return target, False
    raise AssertionError("unreachable")


def file_away(path: Location, inbox: InboxPaths, step: Callable[[Target], dict[str, Any]]) -> dict[str, Any]:
    """Run ``step`` on a queued file, then keep it in ``processed/``; a file ``step`` refuses
    (``DataValidationError``) is kept in ``rejected/`` with its one-line reason beside it, and
    the error is raised again (the scoring and the outcomes inboxes alike)."""
    from etl.catalog import DataValidationError

    path = storage.location(path)
    try:
        outcome = step(path)
    except DataValidationError as exc:
        kept, _ = keep(path, inbox.rejected)
        storage.write_bytes(f"{exc}\n".encode(), inbox.reason(kept.name))
        logger.error("rejected %s: %s", path.name, exc)
        raise
    kept, _ = keep(path, inbox.processed)
    return {**outcome, "processed": str(kept)}


def claim_queue(inbox: InboxPaths) -> list[dict[str, str]]:
    """Claim the inbox's new files and list every file waiting in ``queued/`` (a DAG's first
    task: one mapped task per file)."""
    claim(inbox)
    waiting = queued(inbox)
    logger.info("%d file(s) waiting in %s", len(waiting), storage.uri(inbox.queued))
    return [{"path": str(path)} for path in waiting]


def claim(inbox: InboxPaths) -> list[Target]:
    """Move every CSV at the top of the inbox into ``queued/`` (``keep``: a file is claimed
    once, never over another); return the files claimed now."""
    claimed = []
    for path in storage.list_files(inbox.root, SUFFIX):
        try:
            target, _ = keep(path, inbox.queued)
        except FileNotFoundError:  # claimed by the other claimer (the watcher, the DAG's first task)
            continue
        claimed.append(target)
        logger.info("claimed %s", target.name)
    return claimed


def queued(inbox: InboxPaths) -> list[Target]:
    """Every claimed file not yet processed or rejected, by name."""
    return storage.list_files(inbox.queued, SUFFIX)
