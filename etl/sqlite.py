"""Connection settings for Airflow's embedded SQLite database (``make run``, ``make airflow``).

SQLite lets one writer at a time; Python's driver waits 5 s for the lock and then fails with
"database is locked". The api-server, scheduler, triggerer and task processes of ``airflow
standalone`` all write, and on a busy 2-core machine a write (an XCom, a trigger from the UI)
was seen waiting 5.2 s, so a UI trigger failed with a 500 "Database error". ``scripts/env.sh``
points ``[database] sql_alchemy_connect_args`` (and its async twin) here for a longer wait.
Not used with PostgreSQL (``deploy/cluster.py`` clears the setting).
"""

#: Seconds a connection waits for SQLite's write lock before "database is locked".
CONNECT_ARGS = {"timeout": 60}
