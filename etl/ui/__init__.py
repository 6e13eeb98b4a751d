"""The model in the Airflow UI: the app the api-server mounts (the Model page, each run's Report tab) and the read-only history of runs and releases."""
