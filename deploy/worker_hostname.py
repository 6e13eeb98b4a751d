"""``[core] hostname_callable`` for several Airflow workers on one machine.

On separate machines each worker's task instances carry that machine's host name. When two
workers share a machine (``deploy/cluster.py``), each gets its own name from
``AIRFLOW_WORKER_NAME`` so the UI and the API show which worker ran a task.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """``$AIRFLOW_WORKER_NAME``, else the machine's fully qualified name."""
    return os.environ.get("AIRFLOW_WORKER_NAME") or socket.getfqdn()
