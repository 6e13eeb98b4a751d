"""Exceptions the pipeline raises on purpose.

``PipelineError`` and its subclasses describe a problem with the *input* (bad data, a missing
file, an invalid parameter) that retrying will not fix: Airflow tasks turn them into
``AirflowFailException`` (no retry) and the command-line entry points print them as one line.
Anything else (``OSError`` and friends) is treated as possibly transient and left to Airflow's
retries.
"""

from __future__ import annotations


def first_line(value: object) -> str:
    """The first line of an exception's message (its type name when it has none) or of any
    other value ("" for None): what goes into a one-line error about a failure of a library
    (boto, s3fs, Google's client) or an alert."""
    if value is None:
        return ""
    fallback = type(value).__name__ if isinstance(value, BaseException) else ""
    return (str(value).strip().splitlines() or [fallback])[0]


class PipelineError(Exception):
    """A non-transient problem, reported to the user as a single line."""


class DataValidationError(PipelineError, ValueError):
    """The input data does not satisfy the data contract (see ``etl.schema``)."""


class ParameterError(PipelineError, ValueError):
    """A run parameter (test size, C, ...) is out of range."""


class MissingInputError(PipelineError, FileNotFoundError):
    """A step's input file does not exist, usually because an upstream step has not run."""

    def __init__(self, path: object, producer: str | None = None) -> None:
        if producer is None:  # the catalog knows who writes a run's or a release's files
            from etl.catalog import producer_of

            producer = producer_of(path)
        message = f"missing input {path}"
        if producer:
            message += f" (written by task {producer!r}: run it first)"
        super().__init__(message)
        self.path = path
        self.producer = producer


class IntegrityError(PipelineError):
    """An artifact's bytes differ from the SHA-256 recorded for it (changed, corrupted or
    replaced after it was written); it is refused, never loaded."""


class UploadError(PipelineError):
    """The upload destination refused the upload for a reason retrying will not fix: wrong
    credentials, a missing bucket or folder."""


class Skipped(Exception):
    """A step decided there is nothing for it to do (the gate kept the model unpublished, so
    there is no release to upload): the task ends skipped, with this reason, not failed."""
