"""The Airflow glue: the task callables of the three DAGs, the pipeline's wiring, the assets and the inbox triggers, the sign-off operator, the alerts."""
