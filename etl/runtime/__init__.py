"""The local runtime: make run's progress lines and summary, the local stack's executor and SQLite settings."""
