"""The scoring inbox's moves that need neither pandas nor scikit-learn: claiming new files and
listing the queue (the inbox watcher runs them in Airflow's triggerer; ``etl.score`` does the
rest)."""

from __future__ import annotations

import logging

from etl import storage
from etl.config import InboxPaths
from etl.storage import Target

logger = logging.getLogger(__name__)

SUFFIX = ".csv"


def claim(inbox: InboxPaths) -> list[Target]:
    """Move every CSV at the top of the inbox into ``queued/`` (one rename each, so a file is
    claimed once); return the files claimed now."""
    claimed = [storage.move(path, inbox.queued / path.name) for path in storage.list_files(inbox.root, SUFFIX)]
    for path in claimed:
        logger.info("claimed %s for scoring", path.name)
    return claimed


def queued(inbox: InboxPaths) -> list[Target]:
    """Every claimed file not yet scored or rejected, by name."""
    return storage.list_files(inbox.queued, SUFFIX)
