"""Every path and setting of the pipeline, defined once.

Precedence, lowest first: ``pipeline.toml`` at the project root, then the file named by
``PIPELINE_CONFIG`` (it needs only the keys it changes; several files separated by ``:`` are
read in order), then the environment variables
``DATA_PATH``, ``RESULTS_DIR``, ``RESULTS_CONN_ID``, ``UPLOAD_URI``, ``UPLOAD_CONN_ID`` and
``SCORING_INBOX``. Run parameters (``test_size``, ``random_state``, ``C``, ``max_iter``) are further
overridden per run by the DAG's params or a command's flags.

This module is imported when Airflow parses the DAG file, so it must stay light: standard
library only. An object-store results root becomes an ``ObjectStoragePath`` only when a task
first uses it (making one looks up the connection and sets up its file system: no work for
DAG parsing).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import tomllib

from etl import catalog
from etl.errors import ParameterError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

#: Where the pipeline's artifacts live: local, or on an object store shared by workers.
StoragePath = Union[Path, "ObjectStoragePath"]

#: The repository root (this package is installed in editable mode, so it is the checkout).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "pipeline.toml"

#: Environment variables that override a setting of the config file: (section, key) -> variable.
ENV_VARS = {
    ("paths", "data_path"): "DATA_PATH",
    ("paths", "results_dir"): "RESULTS_DIR",
    ("paths", "results_conn_id"): "RESULTS_CONN_ID",
    ("paths", "upload_uri"): "UPLOAD_URI",
    ("upload", "conn_id"): "UPLOAD_CONN_ID",
    ("scoring", "inbox"): "SCORING_INBOX",
    ("outcomes", "inbox"): "OUTCOMES_INBOX",
}


#: The training DAG's id: its runs have run folders (``results/runs/<run key>/``).
TRAINING_DAG_ID = "breast_cancer_etl_pipeline"
#: The scoring DAG's id.
SCORING_DAG_ID = "breast_cancer_scoring"
#: The outcomes DAG's id.
OUTCOMES_DAG_ID = "breast_cancer_outcomes"
#: Where the api-server mounts the UI plugin's app (``etl.web``; ``plugins/breast_cancer_ui.py``).
UI_URL_PREFIX = "/breast-cancer"


def _input_path(value: Any) -> Any:
    """The run parameter ``data_path``: a path made absolute (an ``ObjectStoragePath`` as given)."""
    return resolve_path(value) if isinstance(value, (str, os.PathLike)) and "://" not in str(value) else value


#: The run parameters: what a DAG run's params (the trigger form, ``--conf``) or a step's flags
#: set over the config file, each ``name: (section, key, type)``. A run's settings are the config's
#: with these replaced (``Settings.with_run_params``), so the steps read every setting, run
#: parameter or not, from its section. A new one is a line here, its key in ``pipeline.toml`` and
#: its ``Param`` in the DAG (``docs/model.md``). Each is coerced to its type: the UI's trigger form
#: sends JSON numbers as typed, so ``C`` = 1.0 arrives as the integer 1, and a run must not depend
#: on how a number was written (an estimator built with ``C=1`` pickles to other bytes than one
#: with ``C=1.0``).
RUN_PARAMS: dict[str, tuple[str, str, Any]] = {
    "data_path": ("paths", "data_path", _input_path),
    "test_size": ("split", "test_size", float),
    "random_state": ("split", "random_state", int),
    "C": ("model", "C", float),
    "max_iter": ("model", "max_iter", int),
}


def _location(value: Any) -> str:
    """A results or inbox location: a local path made absolute, or a URI as given."""
    return _results_location(str(value))


def _addresses(value: Any) -> tuple[str, ...]:
    """A comma-separated list of addresses, as a tuple (empty: none)."""
    return tuple(a.strip() for a in str(value).split(",") if a.strip())


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: Any) -> timedelta:
    """A duration written as a number and a unit: ``"90s"``, ``"30m"``, ``"72h"``, ``"7d"``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", str(value))
    if not match or float(match[1]) <= 0:
        raise ParameterError(f"a duration must be a positive number and a unit (s, m, h, d), like 72h; got {value!r}")
    return timedelta(seconds=float(match[1]) * _DURATION_UNITS[match[2]])


def _approval(value: Any) -> str:
    """``[release] approval``: auto or required."""
    if value not in ("auto", "required"):
        raise ParameterError(f"[release] approval must be \"auto\" or \"required\", got {value!r}")
    return str(value)


def _names(value: Any) -> tuple[str, ...]:
    """A list of user names (a TOML list, or one comma-separated string)."""
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(str(v).strip() for v in items if str(v).strip())


def _upload_uri(value: Any) -> str:
    """An upload destination: a plain local path made absolute, a URI as given."""
    return str(value) if "://" in str(value) else str(resolve_path(str(value)))


#: How a value of the config file becomes a setting, by the field's declared type (or the
#: ``convert`` of its metadata). Every default lives in ``pipeline.toml``, nowhere else.
_CONVERT: dict[str, Any] = {"float": float, "int": int, "str": str, "bool": bool, "Path": lambda v: resolve_path(v)}


def _setting(convert: Any) -> Any:
    """A section field whose config value is turned into the setting by ``convert``."""
    return field(metadata={"convert": convert})


@dataclass(frozen=True)
class PathsSettings:
    """``[paths]``: the input, the results folder, the upload destination."""

    data_path: Path
    results_dir: str = _setting(_location)  # an absolute path, or a URI such as s3://bucket/prefix
    results_conn_id: str
    upload_uri: str = _setting(_upload_uri)


@dataclass(frozen=True)
class ValidationSettings:
    """``[validation]``: what ``load_data`` accepts."""

    max_missing_share: float
    min_rows_per_class: int


@dataclass(frozen=True)
class SplitSettings:
    """``[split]``: the test split (a run parameter: test_size, random_state)."""

    test_size: float
    random_state: int
    method: str
    salt: str


@dataclass(frozen=True)
class ModelSettings:
    """``[model]``: the run parameters of the candidates that take them."""

    C: float
    max_iter: int


@dataclass(frozen=True)
class SelectionSettings:
    """``[selection]``: cross-validation on the training split, the operating-point rule and
    the choice between candidates."""

    metric: str
    cv_folds: int
    cv_repeats: int
    target_sensitivity: float
    rule: str
    threshold_confidence: float

    def procedure(self, random_state: int) -> Any:
        """The training procedure of this section seeded by ``random_state``
        (``etl.procedure.Procedure``; imported here only when asked for)."""
        from etl.procedure import Procedure

        return Procedure(self.cv_folds, self.cv_repeats, self.metric, self.target_sensitivity,
                         self.rule, self.threshold_confidence, random_state)


@dataclass(frozen=True)
class NestedCVSettings:
    """``[nested_cv]``: the expected performance on unseen patients."""

    outer_folds: int
    outer_repeats: int

    @property
    def count(self) -> int:
        """How many outer folds run (one mapped ``nested_cv`` task each)."""
        return self.outer_folds * self.outer_repeats


@dataclass(frozen=True)
class EvaluationSettings:
    """``[evaluation]``: the test split's confidence intervals."""

    bootstrap_resamples: int


@dataclass(frozen=True)
class GateSettings:
    """``[gate]``: what a new model must clear to be published (``etl.gate``). The sensitivity
    floor is the target the model's threshold was chosen for (``[selection]``, recorded in the
    run's metrics)."""

    min_roc_auc: float
    floor_confidence: float
    alpha: float
    sensitivity_margin: float
    specificity_margin: float
    roc_auc_margin: float
    min_unseen_positives: int
    min_unseen_negatives: int


@dataclass(frozen=True)
class RetentionSettings:
    """``[retention]``: the run folders and releases ``save_results`` keeps."""

    keep_runs: int
    prune_min_age_hours: float


@dataclass(frozen=True)
class AirflowSettings:
    """``[airflow]``: task retries (I/O errors only)."""

    retries: int
    retry_delay_seconds: float


@dataclass(frozen=True)
class UploadSettings:
    """``[upload]``: the credentials of ``[paths] upload_uri``."""

    conn_id: str
    drive_service_account: Path
    drive_user_credentials: Path

    @property
    def drive_credentials(self) -> dict[str, Path]:
        """Google Drive credential files (``etl.gdrive``): a service account, saved user OAuth."""
        return {"service_account": self.drive_service_account, "user": self.drive_user_credentials}


@dataclass(frozen=True)
class ScoringSettings:
    """``[scoring]``: the scoring DAG's inbox and drift check."""

    inbox: str = _setting(_location)  # an absolute path, or a URI such as s3://bucket/prefix
    poll_seconds: float
    drift_alpha: float
    drift_min_statistic: float
    drift_min_rows: int


@dataclass(frozen=True)
class AlertsSettings:
    """``[alerts]``: where failures (and, if asked, successes) are announced."""

    email_to: tuple[str, ...] = _setting(_addresses)
    smtp_conn_id: str
    webhook_conn_id: str
    on_success: bool


@dataclass(frozen=True)
class OutcomesSettings:
    """``[outcomes]``: confirmed diagnoses coming back (``etl.outcomes``), the alarm on a
    release's realized performance (``etl.monitoring``), the growing training data."""

    inbox: str = _setting(_location)  # an absolute path, or a URI such as s3://bucket/prefix
    alarm_confidence: float
    alarm_min_malignant: int
    alarm_min_cases: int
    retrain_min_cases: int


@dataclass(frozen=True)
class ReleaseSettings:
    """``[release]``: who signs a release off before it is published (``etl.approval``)."""

    approval: str = _setting(_approval)  # "auto": the quality gate decides alone; "required": a person too
    approvers: tuple[str, ...] = _setting(_names)  # the Airflow users who may answer
    approval_timeout: timedelta = _setting(_duration)  # noqa: RUF009  (no answer by then: nothing published)

    @property
    def required(self) -> bool:
        """Whether a person must approve each release (the DAG then has ``approve_release``)."""
        return self.approval == "required"


#: The config file's sections, each a dataclass of its keys (``[candidates]`` is free-form).
SECTIONS: dict[str, type] = {
    "paths": PathsSettings, "validation": ValidationSettings, "split": SplitSettings,
    "model": ModelSettings, "selection": SelectionSettings, "nested_cv": NestedCVSettings,
    "evaluation": EvaluationSettings, "gate": GateSettings, "retention": RetentionSettings,
    "airflow": AirflowSettings, "upload": UploadSettings, "scoring": ScoringSettings,
    "alerts": AlertsSettings, "release": ReleaseSettings, "outcomes": OutcomesSettings,
}


@dataclass(frozen=True)
class Settings:
    """Resolved settings, by section of ``pipeline.toml`` (``settings.split.test_size``,
    ``settings.gate.alpha``, ...); paths are absolute. ``candidates``: each enabled candidate's
    parameters from ``[candidates]``, in the order of ``enabled``."""

    paths: PathsSettings
    validation: ValidationSettings
    split: SplitSettings
    model: ModelSettings
    candidates: dict[str, dict[str, Any]]
    selection: SelectionSettings
    nested_cv: NestedCVSettings
    evaluation: EvaluationSettings
    gate: GateSettings
    retention: RetentionSettings
    airflow: AirflowSettings
    upload: UploadSettings
    scoring: ScoringSettings
    alerts: AlertsSettings
    release: ReleaseSettings
    outcomes: OutcomesSettings

    @functools.cached_property
    def results_dir(self) -> StoragePath:
        """The results folder: a ``Path``, or an Airflow ``ObjectStoragePath`` when
        ``[paths] results_dir`` is a URI such as ``s3://bucket/prefix`` (credentials from the
        connection ``results_conn_id``): the artifact root workers on several machines share."""
        return results_root(self.paths.results_dir, self.paths.results_conn_id)

    @property
    def layout(self) -> ResultsPaths:
        """The results folder's layout: runs, releases, the published pointer."""
        return ResultsPaths(self.results_dir)

    @property
    def run_params(self) -> dict[str, Any]:
        """The run parameters (``RUN_PARAMS``) of these settings. ``C`` and ``max_iter`` set the
        parameters of the same name of the candidates that take them
        (``etl.models.Candidate.run_params``)."""
        return {name: getattr(getattr(self, section), key) for name, (section, key, _) in RUN_PARAMS.items()}

    @staticmethod
    def typed_run_params(values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` with each run parameter as its type (``RUN_PARAMS``); None and "" (the
        form's empty field: the configured value) are left out."""
        return {key: RUN_PARAMS[key][2](value) if key in RUN_PARAMS else value
                for key, value in values.items() if value is not None and value != ""}

    def with_run_params(self, values: Mapping[str, Any]) -> Settings:
        """These settings with a run's parameters (``RUN_PARAMS``) in their sections.

        Raises:
            ParameterError: a name that is not a run parameter.
        """
        unknown = sorted(set(values) - set(RUN_PARAMS))
        if unknown:
            raise ParameterError(f"unknown run parameter(s) {', '.join(unknown)}; valid: {', '.join(RUN_PARAMS)}")
        changes: dict[str, dict[str, Any]] = {}
        for name, value in self.typed_run_params(values).items():
            section, key, _ = RUN_PARAMS[name]
            changes.setdefault(section, {})[key] = value
        return replace(self, **{section: replace(getattr(self, section), **keys) for section, keys in changes.items()})

    @property
    def inbox(self) -> InboxPaths:
        """The scoring inbox: new CSVs arrive at its top; ``queued/``, ``processed/``,
        ``rejected/`` inside it (an ``s3://`` inbox through ``[paths] results_conn_id``)."""
        return InboxPaths(results_root(self.scoring.inbox, self.paths.results_conn_id))

    @property
    def outcomes_inbox(self) -> InboxPaths:
        """The outcomes inbox (``[outcomes] inbox``): CSVs of confirmed diagnoses, laid out as
        the scoring inbox."""
        return InboxPaths(results_root(self.outcomes.inbox, self.paths.results_conn_id))


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """An absolute path: relative paths are taken from the project root, not the working dir."""
    path = Path(path).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else PROJECT_ROOT / path))


def _results_location(value: str) -> str:
    """A results folder setting made absolute: local paths and ``file://`` URIs to a path
    (relative to the project root), other URIs as given."""
    if value.startswith("file://") or "://" not in value:
        return str(resolve_path(value.removeprefix("file://")))
    return value.rstrip("/")


def results_root(location: str, conn_id: str) -> StoragePath:
    """The results folder of ``_results_location``'s value: a ``Path``, or an
    ``ObjectStoragePath`` for a URI (through Airflow connection ``conn_id``)."""
    if "://" not in location:
        return Path(location)
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(location, conn_id=conn_id)


def _section(name: str, values: Mapping[str, Any]) -> Any:
    """``[name]`` of the config as its dataclass, each value converted by its field's type."""
    cls = SECTIONS[name]
    kwargs = {}
    for f in fields(cls):
        convert = f.metadata.get("convert") or _CONVERT[str(f.type)]
        kwargs[f.name] = convert(values[f.name])
    return cls(**kwargs)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the config files and apply the environment overrides.

    Args:
        config_file: TOML file(s) read over ``pipeline.toml``, in order, separated by ``:``;
            default ``$PIPELINE_CONFIG``.
        environ: environment to read overrides from; default ``os.environ``.

    Raises:
        ParameterError: one line, for a section or key a config file has that
            ``pipeline.toml`` does not.
    """
    environ = os.environ if environ is None else environ
    with open(DEFAULT_CONFIG_FILE, "rb") as fh:
        raw = tomllib.load(fh)
    config_files = config_file or environ.get("PIPELINE_CONFIG") or ""
    for path in str(config_files).split(os.pathsep) if config_files else []:
        with open(resolve_path(path), "rb") as fh:
            for section, values in tomllib.load(fh).items():
                if section not in raw:
                    raise ParameterError(f"{path}: unknown section [{section}]")
                unknown = sorted(set(values) - set(raw[section]))
                if unknown:
                    raise ParameterError(
                        f"{path}: unknown setting(s) in [{section}]: {', '.join(unknown)}"
                    )
                raw[section].update(values)
    for (section, key), var in ENV_VARS.items():
        if environ.get(var):
            raw[section][key] = environ[var]
    candidates = {name: dict(raw["candidates"].get(name, {})) for name in raw["candidates"]["enabled"]}
    return Settings(candidates=candidates, **{name: _section(name, raw[name]) for name in SECTIONS})


def _template_fields(path: str) -> list[str]:
    """The placeholders of a catalog path (``candidates/{candidate}/cv.json``: ``candidate``)."""
    return re.findall(r"\{([a-z]+)\}", path)


@dataclass(frozen=True)
class CandidatePaths:
    """The files of one candidate model in a run (its ``train_model`` task), from the
    catalog's ``candidates/{candidate}/...`` entries: ``model`` (fitted on the whole training
    split), ``cv`` (its cross-validated scores), ``oof`` (its out-of-fold probabilities)."""

    root: StoragePath

    @classmethod
    def of(cls, folder: CandidatePaths | str | os.PathLike[str] | StoragePath) -> CandidatePaths:
        """The layout of ``folder`` (a path or URI), or ``folder`` if it is one already."""
        if isinstance(folder, CandidatePaths):
            return folder
        from etl.storage import location

        return cls(location(folder))

    @property
    def name(self) -> str:
        """The candidate's name."""
        return self.root.name

    def __getattr__(self, name: str) -> StoragePath:
        entry = catalog.BY_NAME.get("candidate_" + name) or catalog.BY_NAME.get(name)
        if entry is None or _template_fields(entry.path) != ["candidate"]:
            raise AttributeError(f"a candidate has no file {name!r} (etl.catalog)")
        return self.root / entry.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class RunPaths:
    """The file layout of one run's folder: each file the catalog (``etl.catalog.FILES``)
    declares is an attribute of that name (``run.data``, ``run.metrics``, ...); the files of
    mapped tasks through ``candidate(name)`` and ``outer_fold(index)``.

    Steps never spell each other's file names; the Airflow glue and the command-line defaults
    take them from here.
    """

    root: StoragePath

    def __getattr__(self, name: str) -> StoragePath:
        entry = catalog.BY_NAME.get(name)
        if entry is None or entry.mapped:
            raise AttributeError(f"a run folder has no file {name!r} (etl.catalog declares the run's files)")
        return self.root / entry.path

    def candidate(self, name: str) -> CandidatePaths:
        """The files of one candidate (``train_model``)."""
        return CandidatePaths((self.root / catalog.path_of("cv", candidate=name)).parent)

    def outer_fold(self, index: int) -> StoragePath:
        """One outer fold's result of the nested cross-validation (``nested_cv``)."""
        return self.root / catalog.path_of("outer_fold", fold=index)

    @property
    def failures(self) -> StoragePath:
        """The folder of failure records (``etl.tasks.record_failure``)."""
        return (self.root / catalog.path_of("failure", task="x")).parent

    def failure(self, task_id: str, map_index: int = -1) -> StoragePath:
        """The failure record of one task instance."""
        suffix = f"-{map_index}" if map_index is not None and map_index >= 0 else ""
        return self.root / catalog.path_of("failure", task=f"{task_id}{suffix}")

    def artifacts(self) -> dict[str, StoragePath]:
        """The run's files a release publishes, by their published name."""
        return {path.name: path for path in (self.metrics, self.model, self.scaler)}


#: The artifacts ``save_results`` publishes to the top of the results folder, by file name.
PUBLISHED_ARTIFACTS: tuple[str, ...] = ("metrics.json", "model.pkl", "scaler.pkl")
#: The record of a published release (hashes, data, parameters, versions, run).
MANIFEST = "manifest.json"
#: Files a release holds.
#: The release's documents: written for it at publication (with its name and sign-off), listed
#: in its manifest with their SHA-256, not part of its content hash.
MODEL_CARD = "model_card.md"
RELEASE_DOCUMENTS: tuple[str, ...] = (MODEL_CARD,)
RELEASE_FILES: tuple[str, ...] = (*PUBLISHED_ARTIFACTS, *RELEASE_DOCUMENTS, MANIFEST)


@dataclass(frozen=True)
class ReleasePaths:
    """The files of one published release (``results/published/<release>/``)."""

    root: StoragePath

    @property
    def name(self) -> str:
        """The release's name, ``<run key>-<content hash>``."""
        return self.root.name

    @property
    def run_key(self) -> str:
        """The key of the run that made the release."""
        return self.name.rsplit("-", 1)[0]

    @property
    def metrics(self) -> StoragePath:
        return self.root / "metrics.json"

    @property
    def model(self) -> StoragePath:
        return self.root / "model.pkl"

    @property
    def scaler(self) -> StoragePath:
        return self.root / "scaler.pkl"

    @property
    def manifest(self) -> StoragePath:
        """SHA-256 and size of each artifact, data, parameters, versions, run."""
        return self.root / MANIFEST

    @property
    def model_card(self) -> StoragePath:
        """The release's model card, with its sign-off (``etl.model_card``)."""
        return self.root / MODEL_CARD

    def file(self, name: str) -> StoragePath:
        """One of ``RELEASE_FILES`` by name."""
        if name not in RELEASE_FILES:
            raise ValueError(f"a release has no file {name!r}")
        return self.root / name


@dataclass(frozen=True)
class ResultsPaths:
    """The layout of the results folder (documented in ``etl.releases``)."""

    root: StoragePath

    @property
    def runs(self) -> StoragePath:
        """One sub-folder per run."""
        return self.root / "runs"

    @property
    def releases(self) -> StoragePath:
        """One sub-folder per published release."""
        return self.root / "published"

    @property
    def current(self) -> StoragePath:
        """The link to the published release (local results folder)."""
        return self.root / "current"

    @property
    def current_object(self) -> StoragePath:
        """The object naming the published release (object-store results folder)."""
        return self.root / "current.json"

    @property
    def scoring(self) -> StoragePath:
        """One sub-folder per scored batch (the scoring DAG)."""
        return self.root / "scoring"

    def batch(self, name: str) -> BatchPaths:
        """One scored batch's folder."""
        return BatchPaths(self.scoring / name)

    @property
    def monitoring(self) -> MonitoringPaths:
        """The confirmed outcomes and each release's realized performance (``etl.outcomes``)."""
        return MonitoringPaths(self.root / "monitoring")

    @property
    def datasets(self) -> StoragePath:
        """The versions of the labelled training data grown from confirmed cases
        (``etl.datasets``): ``v0001/``, ... and ``current.json``."""
        return self.root / "datasets"

    def run(self, key: str) -> RunPaths:
        """One run's folder."""
        return RunPaths(self.runs / key)

    def release(self, name: str) -> ReleasePaths:
        """One release's folder."""
        return ReleasePaths(self.releases / name)

    def top(self, name: str) -> StoragePath:
        """A published file at the top of the results folder (one of ``RELEASE_FILES``)."""
        if name not in RELEASE_FILES:
            raise ValueError(f"the results folder publishes no file {name!r}")
        return self.root / name


@dataclass(frozen=True)
class BatchPaths:
    """What the scoring DAG writes for one input file (``results/scoring/<batch>/``)."""

    root: StoragePath

    @property
    def predictions(self) -> StoragePath:
        """One row per input row: ``id``, ``malignant_probability``, ``predicted``, ``release``."""
        return self.root / "predictions.csv"

    @property
    def report(self) -> StoragePath:
        """Counts, share predicted malignant, the release that scored it, the drift check."""
        return self.root / "report.json"

    @property
    def rows(self) -> StoragePath:
        """The scored rows as the contract read them (``id`` and the features): with their
        confirmed diagnoses they join the training data (``etl.datasets``)."""
        return self.root / "rows.parquet"


@dataclass(frozen=True)
class MonitoringPaths:
    """``results/monitoring/``: the ledger of confirmed outcomes, one record per release."""

    root: StoragePath

    @property
    def ledger(self) -> StoragePath:
        """One table per outcome file received (``<stem>-<hash>.parquet``): id, diagnosis, date,
        file, received."""
        return self.root / "outcomes"

    def release(self, name: str) -> StoragePath:
        """A release's realized performance, per batch and month, and its alarm."""
        return self.root / "releases" / f"{name}.json"

    @property
    def summary(self) -> StoragePath:
        """The files received, the unmatched ids, the conflicts, each release's headline."""
        return self.root / "summary.json"


@dataclass(frozen=True)
class InboxPaths:
    """The scoring inbox: files arrive at the top; each moves to ``queued/`` when claimed for
    scoring, then to ``processed/`` once its outputs are complete, or to ``rejected/`` with a
    ``<name>.reason.txt`` beside it."""

    root: StoragePath

    @property
    def queued(self) -> StoragePath:
        return self.root / "queued"

    @property
    def processed(self) -> StoragePath:
        return self.root / "processed"

    @property
    def rejected(self) -> StoragePath:
        return self.root / "rejected"

    def reason(self, name: str) -> StoragePath:
        """The one-line reason a rejected file was refused."""
        return self.rejected / f"{name}.reason.txt"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def run_key(logical_date: datetime | None, run_id: str | None) -> str:
    """Name of a DAG run's folder under ``results/runs/``.

    The logical date when the run has one (it is unique per DAG, and ``airflow tasks test`` on
    the same date, which makes a new temporary run each call, finds the same folder); otherwise
    the run id. Only characters safe in file and object names are kept.
    """
    if logical_date is not None:
        utc = logical_date.astimezone(timezone.utc)
        key = utc.strftime("%Y-%m-%dT%H%M%S")
        if utc.microsecond:
            key += f".{utc.microsecond:06d}"
        return key + "Z"
    if not run_id:
        raise ValueError("a run needs a logical date or a run id")
    return _UNSAFE.sub("-", run_id).strip("-.")


#: Default run folder of the command-line entry points (``python -m etl.<step>``).
CLI_RUN_KEY = "cli"
