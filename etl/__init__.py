"""Breast Cancer Wisconsin (Diagnostic) training pipeline: one module per pipeline step.

Every step is a pure core (DataFrames and models in, DataFrames and models out), a thin I/O
wrapper that takes and returns file paths, and a command-line entry point
(``python -m etl.<step> --help``). ``etl.orchestration.tasks`` adapts the wrappers to Airflow.
"""
