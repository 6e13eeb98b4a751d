"""Connection settings for Airflow's embedded SQLite database (``make run``, ``make airflow``).

SQLite lets one writer at a time; Python's driver waits 5 s for the lock and then fails with
"database is locked". The api-servers, scheduler, dag-processor and triggerer of ``make airflow``
all write, and on a busy 2-core machine a write was seen waiting over 5 s. ``scripts/env.sh``
points ``[database] sql_alchemy_connect_args`` (and its async twin) here for a longer wait; it
gives each execution API call 30 s, more than this. Not used with PostgreSQL
(``deploy/cluster.py`` clears the setting).

Not much longer: a wait blocks whoever waits, on an event loop everything behind it. Waits of
20 and 60 s were a deadlock inside one api-server (the audit-log commit on its event loop
against an execution-API transaction that needs the loop to commit), which no lock wait cures:
``scripts/airflow-stack.sh`` runs the execution API in a process of its own (docs/ui.md).
"""

#: Seconds a connection waits for SQLite's write lock before "database is locked".
CONNECT_ARGS = {"timeout": 20}
