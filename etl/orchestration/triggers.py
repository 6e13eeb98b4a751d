"""The scoring inbox's watcher: an Airflow event trigger that claims new CSVs and fires.

It runs in the triggerer (``airflow triggerer``, part of ``airflow standalone``) as the
``AssetWatcher`` of the inbox asset (the inbox folder) that schedules the scoring DAG. Every
``poll_seconds`` it moves the CSVs at the top of the inbox into ``queued/`` (``etl.storage.inbox.claim``:
one rename each, like the standard provider's ``FileDeleteTrigger`` deletes the file it saw, so a
file fires once) and, when it claimed any, yields one event: Airflow records an asset event and
the scheduler starts a scoring run, which scores everything in ``queued/``.

Imported when the DAG file is parsed: standard library and Airflow only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent


class InboxTrigger(BaseEventTrigger):
    """Fire when new CSVs arrive in ``inbox`` (after claiming them into ``inbox/queued/``)."""

    def __init__(self, inbox: str, conn_id: str, poll_seconds: float) -> None:
        super().__init__()
        self.inbox, self.conn_id, self.poll_seconds = inbox, conn_id, poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("etl.orchestration.triggers.InboxTrigger",
                {"inbox": self.inbox, "conn_id": self.conn_id, "poll_seconds": self.poll_seconds})

    def _claim(self) -> list[str]:
        from etl.storage.inbox import claim
        from etl.storage.layout import InboxPaths, results_root

        return [p.name for p in claim(InboxPaths(results_root(self.inbox, self.conn_id)))]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            claimed = await asyncio.to_thread(self._claim)
            if claimed:
                self.log.info("claimed %d new file(s) in %s: %s", len(claimed), self.inbox, ", ".join(claimed))
                yield TriggerEvent({"inbox": self.inbox, "claimed": claimed})
                return
            await asyncio.sleep(self.poll_seconds)
