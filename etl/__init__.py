"""Breast Cancer Wisconsin (Diagnostic) pipeline, packaged by concern (``docs/project.md``).

The top level holds the runnable steps of the DAGs (``python -m etl.<step> --help``), each a pure
core, a thin I/O wrapper that takes and returns file paths, and its task's wiring (``STEPS``),
beside the three modules every step uses: ``settings``, ``catalog`` and ``runner``. The
subpackages below them: ``data``, ``modeling``, ``releases``, ``storage``, ``monitoring``; above
them: ``orchestration`` (Airflow), ``ui``, ``runtime``.
"""
