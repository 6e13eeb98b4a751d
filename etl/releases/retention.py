"""Retention: old run folders and releases under the results folder are pruned, never the
published release, its run or anything recent (a run still in progress)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import timedelta

from etl import storage
from etl.catalog import MissingInputError, ParameterError
from etl.releases.reader import current_release
from etl.storage import Location
from etl.storage.layout import ReleasePaths, ResultsPaths

logger = logging.getLogger(__name__)


def prune(
    results_dir: Location,
    keep: int,
    min_age: timedelta,
    protect: Iterable[str] = (),
    now: float | None = None,
) -> list[str]:
    """Delete run folders and releases beyond the ``keep`` most recently written of each.

    Never deleted: the published release and its run folder, the folders named in ``protect``,
    and anything
    written less than ``min_age`` ago (it may belong to a run still in progress). Leftovers of
    interrupted publishes older than ``min_age`` go too.

    Returns:
        The deleted folders.
    """
    if keep < 1:
        raise ParameterError(f"keep_runs must be >= 1, got {keep}")
    results_dir = storage.location(results_dir)
    local = storage.is_local(results_dir)
    cutoff = (time.time() if now is None else now) - min_age.total_seconds()
    protected = set(protect)
    try:
        published = ReleasePaths(current_release(results_dir))
        protected |= {published.name, published.run_key}  # the release and its run folder
    except MissingInputError:
        pass
    deleted = []
    layout = ResultsPaths(results_dir)
    for parent in (layout.runs, layout.releases):
        if not parent.is_dir():
            continue
        folders = [p for p in parent.iterdir() if p.is_dir() and not (local and p.is_symlink())]
        written = {p.name: storage.last_modified(p) for p in folders}
        staging = [p for p in folders if p.name.startswith(".")]
        kept = sorted((p for p in folders if p not in staging), key=lambda p: (written[p.name], p.name),
                      reverse=True)  # the name breaks ties: object stores keep whole seconds
        for folder in staging + kept[keep:]:
            if folder.name in protected or written[folder.name] > cutoff:
                continue
            storage.remove_tree(folder)
            deleted.append(str(folder))
    for leftover in results_dir.glob(".*.tmp") if local else []:  # a link switch interrupted by a kill
        if leftover.lstat().st_mtime <= cutoff:
            leftover.unlink(missing_ok=True)
    if deleted:
        logger.info("pruned %d old folder(s): %s", len(deleted), ", ".join(deleted))
    return deleted
