"""Fault injection for the end-to-end tests, through Airflow's own hook for changing tasks: a
cluster policy (``task_policy``) in ``airflow_local_settings``.

Airflow loads this module only when its folder is on ``PYTHONPATH``, which the failure tests set
for the runs they break. ``ETL_FAULT="<task_id>:<error|kill|error-then-kill>"`` picks the task
and the failure: at the task's first artifact write, just before the write's commit
(``etl.storage._commit``), or at its end if it writes no artifact, the task raises ``OSError``
(an I/O error, retried by Airflow) or its process is killed with SIGKILL (a worker lost
mid-write); ``error-then-kill``: the first attempt raises, the retry is killed.
"""

from __future__ import annotations

import functools
import os
import signal
from typing import Any


def _fail(task_id: str, kind: str) -> None:
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise OSError(f"injected fault in task {task_id}")


def task_policy(task: Any) -> None:
    spec = os.environ.get("ETL_FAULT", "")
    if not spec or spec.split(":")[0] != task.task_id:
        return
    task_id, kind = spec.split(":")
    mapped = getattr(task, "partial_kwargs", None)  # a mapped task (train_model): every instance
    callable_ = mapped["python_callable"] if mapped is not None else task.python_callable

    @functools.wraps(callable_)
    def faulty(**context: Any) -> Any:
        from etl import storage

        now = kind
        if kind == "error-then-kill":  # (the callable may not take the context: ask for it)
            from airflow.sdk import get_current_context

            now = "error" if get_current_context()["ti"].try_number == 1 else "kill"
        real_commit = storage._commit
        storage._commit = lambda tmp, target: _fail(task_id, now)
        try:
            result = callable_(**context)
        finally:
            storage._commit = real_commit
        _fail(task_id, now)
        return result

    if mapped is not None:
        mapped["python_callable"] = faulty
    else:
        task.python_callable = faulty
