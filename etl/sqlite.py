"""Connection settings for Airflow's embedded SQLite database (``make run``, ``make airflow``).

SQLite lets one writer at a time; Python's driver waits 5 s for the lock and then fails with
"database is locked". The api-server, scheduler, triggerer and task processes of ``airflow
standalone`` all write, and on a busy 2-core machine a write (an XCom, a trigger from the UI)
was seen waiting 5.2 s, so a UI trigger failed with a 500 "Database error". ``scripts/env.sh``
points ``[database] sql_alchemy_connect_args`` (and its async twin) here for a longer wait.
Not used with PostgreSQL (``deploy/cluster.py`` clears the setting).

Not much longer: a wait blocks whoever waits, and 60 s was seen freezing the whole stack on an
overloaded machine (the triggerer's event loop, the api-server, and a task whose start call to
the execution API gave up after its 5 retries of 5 s). 20 s is four times the wait that failed;
``scripts/env.sh`` gives each execution API call 30 s, more than the lock wait.
"""

#: Seconds a connection waits for SQLite's write lock before "database is locked".
CONNECT_ARGS = {"timeout": 20}
