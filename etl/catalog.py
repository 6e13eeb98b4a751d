"""What a training run is, declared once: its tasks (and the module of each task's step), every
file a run writes with the task that writes it and the tasks that read it, the settings flags of
the steps' command lines, the run parameters' type, and the errors a step raises on purpose.
Everything else derives from it:

- ``etl.storage.layout.RunPaths`` (``run.metrics``, ``run.candidate(name).cv``, ``run.outer_fold(i)``):
  where each file is, in the run folder;
- ``etl.runner``: a step gets only the inputs the catalog says it reads (``StepInputs`` refuses
  any other), resolved from its producer's XCom or the run folder; its command line gets a flag
  for each;
- ``MissingInputError``: a missing input names the task that writes it;
- the tests: a full run writes exactly these files (``tests/etl/test_catalog.py``).

A new file written by a new step is one ``File`` line here (its typed attribute in
``etl.storage.layout``, and its name in the step's returned outputs). Standard library only:
imported when Airflow parses the DAG.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

#: The training DAG's id: its runs have run folders (``results/runs/<run key>/``).
TRAINING_DAG_ID = "breast_cancer_etl_pipeline"
#: The scoring DAG's id.
SCORING_DAG_ID = "breast_cancer_scoring"
#: The outcomes DAG's id.
OUTCOMES_DAG_ID = "breast_cancer_outcomes"
#: Where the api-server mounts the UI plugin's app (``etl.ui.app``; ``plugins/breast_cancer_ui.py``).
UI_URL_PREFIX = "/breast-cancer"

#: The training DAG's tasks, in the order a run runs them (``train_model`` and ``nested_cv`` are
#: mapped: over the enabled candidates and over the outer folds).
TASKS: tuple[str, ...] = (
    "ensure_results_dir", "load_data", "preprocess_data", "train_model", "select_model", "nested_cv",
    "evaluate_model", "quality_gate", "make_report", "save_results", "upload_results",
)
#: The module of each task's step: it declares the step (``STEPS``: its wiring) and runs it from
#: the command line (``python -m <module>``); ``etl.orchestration.pipeline`` runs it for Airflow.
MODULES: dict[str, str] = {
    "ensure_results_dir": "etl.runner", "load_data": "etl.load_data", "preprocess_data": "etl.preprocess_data",
    "train_model": "etl.train_model", "select_model": "etl.train_model", "nested_cv": "etl.nested_cv",
    "evaluate_model": "etl.evaluate_model", "quality_gate": "etl.quality_gate", "make_report": "etl.report",
    "save_results": "etl.save_results", "upload_results": "etl.upload_results",
}
#: What each task does (its ``doc_md`` in the UI).
ABOUT: dict[str, str] = {
    "ensure_results_dir": "Create the results folder and this run's folder.",
    "load_data": "Validate the input CSV (``[paths] data_path``, or the run's ``data_path``).",
    "preprocess_data": "Split and scale the validated data.",
    "train_model": "Cross-validate one candidate on the training split and fit it.",
    "select_model": "Give each candidate its operating point and choose one.",
    "nested_cv": "Run the whole procedure on all but one outer fold and score it on that fold.",
    "evaluate_model": "Score the selected model on the test split, with the nested folds' expected performance.",
    "quality_gate": 'Decide, once, whether the model may be published (``gate.json``).',
    "make_report": "Write the run's HTML report and its model card.",
    "save_results": ('Publish the run if its gate decision (and, with ``[release] approval = "required"``, a '
                     "person) allows it; prune old runs."),
    "upload_results": "Upload the release this run published.",
}
#: The settings a step's command line may set beside the run parameters, by task: each
#: ``(flag, section, key, help)`` (``etl.runner.main``; the DAG's tasks read them from the settings).
FLAGS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "load_data": (("--max-missing-share", "validation", "max_missing_share", "largest share of a feature imputed"),
                  ("--min-rows-per-class", "validation", "min_rows_per_class", "fewest rows of each diagnosis")),
    "evaluate_model": (("--bootstrap", "evaluation", "bootstrap_resamples", "bootstrap resamples of the intervals"),),
    "quality_gate": (("--results-dir", "paths", "results_dir", "the results folder whose release it compares with"),),
    "save_results": (("--results-dir", "paths", "results_dir", "publish here"),
                     ("--keep-runs", "retention", "keep_runs", "run folders and releases to keep")),
    "upload_results": (("--destination", "paths", "upload_uri", "a folder, file://, s3://bucket/prefix, gdrive://<id>"),
                       ("--conn-id", "upload", "conn_id", "the Airflow connection of an s3:// destination")),
}
#: The sign-off task: in the DAG between ``make_report`` and ``save_results`` only with
#: ``[release] approval = "required"``; an Airflow human-in-the-loop operator (``etl.orchestration.approval``),
#: not an etl step, so not in ``TASKS``.
APPROVAL_TASK = "approve_release"
#: Every task a training DAG can have, in order: ``TASKS`` with the sign-off before ``save_results``.
ALL_TASKS: tuple[str, ...] = (*TASKS[:TASKS.index("save_results")], APPROVAL_TASK,
                              *TASKS[TASKS.index("save_results"):])
#: Who writes the failure records: every task's ``on_failure_callback`` (``etl.orchestration.tasks.record_failure``).
ON_FAILURE = "on_failure_callback"


@dataclass(frozen=True)
class File:
    """One file of a run folder.

    Attributes:
        name: how it is named everywhere: the ``RunPaths`` attribute (``CandidatePaths`` for a
            ``{candidate}`` file), the key its producer returns its path under (its XCom), the
            ``StepInputs`` attribute a reader reads it by.
        path: where it is in the run folder; ``{candidate}``, ``{fold}``, ``{task}`` for the
            files of mapped tasks and of failures.
        producer: the task that writes it.
        readers: the tasks that read it.
        about: what it holds.
        optional: written only in some runs (its readers get None without it).
    """

    name: str
    path: str
    producer: str
    readers: tuple[str, ...]
    about: str
    optional: bool = False

    @property
    def mapped(self) -> bool:
        """Whether there is one such file per mapped task instance (or per failed task)."""
        return "{" in self.path

    @property
    def pattern(self) -> re.Pattern[str]:
        """A regular expression matching the end of a path to this file."""
        return _pattern(self.path)


FILES: tuple[File, ...] = (
    File("run_record", "run.json", "ensure_results_dir", (),
         "which DAG run the folder belongs to: DAG id, run id, logical date, start (the UI views)"),
    File("data", "data.parquet", "load_data",
         ("preprocess_data", "train_model", "nested_cv", "quality_gate", "save_results"),
         "the validated input table, raw features (the contract's one shape)"),
    File("profile", "profile.json", "load_data", ("make_report", "save_results"),
         "the input's structure: source, SHA-256, rows, class balance, what was dropped or imputed"),
    File("train", "train.parquet", "preprocess_data", ("train_model", "save_results"),
         "the training split, scaled (ids and labels too)"),
    File("test", "test.parquet", "preprocess_data", ("evaluate_model", "quality_gate", "make_report"),
         "the test split, scaled by the training split's scaler"),
    File("scaler", "scaler.skops", "preprocess_data", ("save_results",),
         "the imputer and StandardScaler fitted on the training split (published)"),
    File("preprocessing", "preprocessing.json", "preprocess_data", ("save_results",),
         "split sizes, method, seed and imputation counts"),
    File("candidate_model", "candidates/{candidate}/model.skops", "train_model", ("select_model",),
         "one candidate fitted on the whole training split"),
    File("cv", "candidates/{candidate}/cv.json", "train_model", ("select_model",),
         "one candidate's cross-validated scores and parameters"),
    File("oof", "candidates/{candidate}/oof.parquet", "train_model", ("select_model",),
         "one candidate's out-of-fold probabilities, per repeat, and each row's fold"),
    File("model", "model.skops", "select_model", ("evaluate_model", "make_report", "save_results"),
         "the selected candidate (published)"),
    File("training", "training.json", "select_model", ("evaluate_model", "make_report", "save_results"),
         "the winner, its parameters, its operating point and every candidate's scores"),
    File("outer_fold", "nested/fold-{fold}.json", "nested_cv", ("evaluate_model",),
         "one outer fold of the nested cross-validation: the whole procedure scored on unseen rows"),
    File("metrics", "metrics.json", "evaluate_model",
         ("quality_gate", "make_report", APPROVAL_TASK, "save_results"),
         "the test split's metrics, the expected performance, the guarantee (published)"),
    File("predictions", "predictions.csv", "evaluate_model", ("quality_gate", "make_report"),
         "the test split's predictions, one row per test row"),
    File("gate", "gate.json", "quality_gate", ("make_report", APPROVAL_TASK, "save_results"),
         "the quality gate's decision: every check, what was compared, on which rows"),
    File("report", "report.html", "make_report", (),
         "the run's self-contained HTML report (the UI's Report tab)"),
    File("model_card", "model_card.md", "make_report", (),
         "the model card, from the run's records, before the decision (the release's has the sign-off)"),
    File("signoff", "signoff.json", APPROVAL_TASK, ("save_results",),
         "who approved or rejected the release, when, and why ([release] approval = required)", optional=True),
    File("release_record", "release.json", "save_results", ("upload_results",),
         "what save_results did: the release it published, or why it published none"),
    File("failure", "failures/{task}.json", ON_FAILURE, (),
         "a task's one-line error once it failed for good (the UI's Report tab)"),
)

#: The files by name.
BY_NAME: dict[str, File] = {f.name: f for f in FILES}

#: The release files, read by their producer's name when missing (``published/<release>/``).
RELEASE_PRODUCER = "save_results"
_RELEASE_PATTERN = re.compile(r"(^|/)published/[^/]+/[^/]+$|(^|/)current(\.json)?$")


@cache
def _pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-z]+\})", path)
    body = "".join(r"[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(rf"(^|/)runs/[^/]+/{body}$")


def inputs(task: str) -> tuple[File, ...]:
    """The files ``task`` reads."""
    return tuple(f for f in FILES if task in f.readers)


def outputs(task: str) -> tuple[File, ...]:
    """The files ``task`` writes."""
    return tuple(f for f in FILES if f.producer == task)


def producer_of(path: object) -> str | None:
    """The task that writes the file at ``path`` (a run folder's or a release's), or None for
    a path the catalog does not know (a file named on the command line, say)."""
    text = str(path).replace("\\", "/")
    for f in sorted(FILES, key=lambda f: -len(f.path)):  # candidates/x/model.skops before model.skops
        if f.pattern.search(text):
            return f.producer
    return RELEASE_PRODUCER if _RELEASE_PATTERN.search(text) else None


def path_of(name: str, **fields: object) -> str:
    """The path of file ``name`` inside the run folder (``candidate=``, ``fold=``, ``task=`` for
    a mapped file; a fold is written with two digits)."""
    f = BY_NAME[name]
    values = {k: (f"{v:02d}" if k == "fold" else v) for k, v in fields.items()}
    return f.path.format(**values)


@dataclass(frozen=True)
class StepInputs:
    """The files a step reads, and nothing else: ``inputs.metrics`` is the path of the run's
    metrics for a step the catalog lets read them; any other name raises ``AttributeError``.

    Attributes:
        task: the task whose inputs these are.
        run_key: the run's folder name (a release is named after it).
    """

    task: str
    run_key: str
    files: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        files = self.__dict__.get("files", {})
        if name in files:
            return files[name]
        raise AttributeError(f"task {self.__dict__.get('task')!r} does not read {name!r} (etl.catalog)")


# -- the run parameters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunParam:
    """A run parameter, declared once: the trigger form's ``Param`` (``etl.settings.Settings.trigger_form``),
    the command-line flag of the steps that take it (``etl.runner``) and the override of its
    setting (``etl.settings.Settings.with_run_params``) all come from here.

    Attributes:
        name: its name, and its key in ``section`` (``settings.<section>.<name>``).
        section: where it acts (``split``: the test split; ``model``: the models and the CV).
        type: the value's type; a value is coerced to it (the trigger form sends ``C`` = 1.0 as
            the integer 1, and an estimator built with ``C=1`` pickles to other bytes).
        default: the value when neither the config nor the run sets it (None: ``[paths]``'s).
        minimum, maximum, exclusive: the bounds, refused themselves when ``exclusive``.
        steps: the tasks whose command line has the flag (``--test-size``).
        convert: what a value that is not a number becomes (``data_path``: an absolute path).
    """

    name: str
    section: str
    type: type
    default: Any
    title: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive: bool = False
    steps: tuple[str, ...] = ()
    convert: Callable[[Any], Any] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def coerce(self, value: Any) -> Any:
        """``value`` as this parameter's type, within its bounds.

        Raises:
            ParameterError: one line naming the parameter, its bounds and the value.
        """
        if self.convert is not None:
            return self.convert(value)
        try:
            typed = self.type(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{self.name} must be a{'n integer' if self.type is int else ' number'}, "
                                 f"got {value!r}") from None
        low, high = self.minimum, self.maximum
        if (low is not None and (typed < low or (self.exclusive and typed == low))) or \
                (high is not None and (typed > high or (self.exclusive and typed == high))):
            bounds = " and ".join(f"{op} {b}" for op, b in ((">" if self.exclusive else ">=", low),
                                                           ("<" if self.exclusive else "<=", high)) if b is not None)
            raise ParameterError(f"{self.name} must be {bounds}, got {value}")
        return typed

    def param(self, value: Any, configured: Any = None) -> Any:
        """The trigger form's ``airflow.sdk.Param`` with the value ``value``."""
        from airflow.sdk import Param

        bounds = {("exclusiveMinimum" if self.exclusive else "minimum"): self.minimum,
                  ("exclusiveMaximum" if self.exclusive else "maximum"): self.maximum}
        schema = {"type": ["null", "string"]} if self.type is str else {
            "type": "integer" if self.type is int else "number", **{k: v for k, v in bounds.items() if v is not None}}
        description = self.description + (f" Empty: {configured}." if configured is not None else "")
        return Param(value, title=self.title, description=description, **schema)


def refuse_unknown(names: Iterable[str], valid: Iterable[str]) -> None:
    """Refuse run parameters that do not exist (a typo such as ``c`` for ``C`` would otherwise
    run silently with the default): the one place unknown parameters are refused.

    Raises:
        ParameterError: one line naming the unknown keys, with a close match, and the valid ones.
    """
    valid = sorted(valid)
    unknown = sorted(set(names) - set(valid))
    if unknown:
        def hint(key: str) -> str:
            close = [v for v in valid if v.lower() == key.lower()] or difflib.get_close_matches(key, valid, n=1)
            return f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)

        raise ParameterError(f"unknown run parameter(s) {', '.join(map(hint, unknown))}; "
                             f"valid parameters: {', '.join(valid)}")


# -- how a step fails on purpose ------------------------------------------------------------------
#
# ``PipelineError`` and its subclasses describe a problem with the *input* (bad data, a missing file,
# an invalid parameter) that retrying will not fix: Airflow tasks fail at once, without a retry, and
# the command lines print them as one line. Anything else (``OSError`` and friends) is treated as
# possibly transient and left to Airflow's retries. ``Skipped``: a step found nothing to do.


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
    """The input data does not satisfy the data contract (see ``etl.data.schema``)."""


class ParameterError(PipelineError, ValueError):
    """A run parameter (test size, C, ...) is out of range."""


class MissingInputError(PipelineError, FileNotFoundError):
    """A step's input file does not exist, usually because an upstream step has not run."""

    def __init__(self, path: object, producer: str | None = None) -> None:
        if producer is None:  # the catalog knows who writes a run's or a release's files
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
