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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import tomllib

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
}


#: The training DAG's id: its runs have run folders (``results/runs/<run key>/``).
TRAINING_DAG_ID = "breast_cancer_etl_pipeline"
#: The scoring DAG's id.
SCORING_DAG_ID = "breast_cancer_scoring"

#: The type of each numeric run parameter. The UI's trigger form sends JSON numbers as typed, so
#: ``C`` = 1.0 arrives as the integer 1; a run must not depend on how a number was written (an
#: estimator built with ``C=1`` pickles to other bytes than one with ``C=1.0``).
RUN_PARAM_TYPES: dict[str, type] = {"test_size": float, "random_state": int, "C": float, "max_iter": int}


@dataclass(frozen=True)
class Settings:
    """Resolved settings; paths are absolute."""

    data_path: Path
    results_location: str  # an absolute path, or a URI such as s3://bucket/prefix
    results_conn_id: str
    upload_uri: str
    max_missing_share: float
    min_rows_per_class: int
    test_size: float
    random_state: int
    split_method: str
    split_salt: str
    C: float
    max_iter: int
    candidates: dict[str, dict[str, Any]]
    selection_metric: str
    cv_folds: int
    cv_repeats: int
    target_sensitivity: float
    threshold_rule: str
    threshold_confidence: float
    outer_folds: int
    outer_repeats: int
    bootstrap_resamples: int
    gate_min_roc_auc: float
    gate_alpha: float
    gate_floor_confidence: float
    gate_sensitivity_margin: float
    gate_specificity_margin: float
    gate_roc_auc_margin: float
    gate_min_unseen_positives: int
    gate_min_unseen_negatives: int
    keep_runs: int
    prune_min_age_hours: float
    retries: int
    retry_delay_seconds: float
    upload_conn_id: str
    drive_service_account: Path
    drive_user_credentials: Path
    alert_emails: tuple[str, ...]
    smtp_conn_id: str
    webhook_conn_id: str
    alert_on_success: bool
    scoring_inbox: str  # an absolute path, or a URI such as s3://bucket/prefix
    drift_alpha: float
    drift_min_statistic: float
    drift_min_rows: int
    inbox_poll_seconds: float

    @functools.cached_property
    def results_dir(self) -> StoragePath:
        """The results folder: a ``Path``, or an Airflow ``ObjectStoragePath`` when
        ``results_location`` is a URI such as ``s3://bucket/prefix`` (credentials from the
        connection ``results_conn_id``): the artifact root workers on several machines share."""
        return results_root(self.results_location, self.results_conn_id)

    @property
    def layout(self) -> ResultsPaths:
        """The results folder's layout: runs, releases, the published pointer."""
        return ResultsPaths(self.results_dir)

    @property
    def run_params(self) -> dict[str, Any]:
        """The run parameters' defaults: what a run's params (the DAG's trigger form, ``--conf``)
        or a step's flags override. ``C`` and ``max_iter`` set the parameters of the same name
        of the candidates that take them (``etl.models.Candidate.run_params``)."""
        return {"data_path": None, "test_size": self.test_size, "random_state": self.random_state,
                "C": self.C, "max_iter": self.max_iter}

    @staticmethod
    def typed_run_params(values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` with each numeric run parameter as its type (``RUN_PARAM_TYPES``)."""
        return {key: RUN_PARAM_TYPES[key](value) if key in RUN_PARAM_TYPES and value is not None else value
                for key, value in values.items()}

    @property
    def inbox(self) -> InboxPaths:
        """The scoring inbox: new CSVs arrive at its top; ``queued/``, ``processed/``,
        ``rejected/`` inside it (an ``s3://`` inbox through ``results_conn_id``)."""
        return InboxPaths(results_root(self.scoring_inbox, self.results_conn_id))

    @property
    def drift_settings(self) -> dict[str, Any]:
        """The drift check's settings (``etl.drift.drift_report``'s keyword arguments)."""
        return {"alpha": self.drift_alpha, "min_statistic": self.drift_min_statistic,
                "min_rows": self.drift_min_rows}

    @property
    def selection_settings(self) -> dict[str, Any]:
        """How ``select_model`` chooses (its keyword arguments): ``[selection]``'s metric, the
        target sensitivity and the operating-point rule with its confidence."""
        return {"metric": self.selection_metric, "target_sensitivity": self.target_sensitivity,
                "rule": self.threshold_rule, "confidence": self.threshold_confidence}

    def procedure(self, random_state: int) -> Any:
        """The training procedure of ``[selection]`` seeded by ``random_state``
        (``etl.procedure.Procedure``; imported here only when asked for)."""
        from etl.procedure import Procedure

        return Procedure(self.cv_folds, self.cv_repeats, self.selection_metric, self.target_sensitivity,
                         self.threshold_rule, self.threshold_confidence, random_state)

    @property
    def outer_fold_count(self) -> int:
        """How many outer folds the nested cross-validation runs (one mapped task each)."""
        return self.outer_folds * self.outer_repeats

    @property
    def drive_credentials(self) -> dict[str, Path]:
        """Google Drive credential files (``etl.gdrive``): a service account, saved user OAuth."""
        return {"service_account": self.drive_service_account, "user": self.drive_user_credentials}


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


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the config files and apply the environment overrides.

    Args:
        config_file: TOML file(s) read over ``pipeline.toml``, in order, separated by ``:``;
            default ``$PIPELINE_CONFIG``.
        environ: environment to read overrides from; default ``os.environ``.
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
    paths = raw["paths"]
    upload_uri = paths["upload_uri"]
    if "://" not in upload_uri:  # a plain local path: make it absolute like the others
        upload_uri = str(resolve_path(upload_uri))
    return Settings(
        data_path=resolve_path(paths["data_path"]),
        results_location=_results_location(str(paths["results_dir"])),
        results_conn_id=str(paths["results_conn_id"]),
        upload_uri=upload_uri,
        max_missing_share=float(raw["validation"]["max_missing_share"]),
        min_rows_per_class=int(raw["validation"]["min_rows_per_class"]),
        test_size=float(raw["split"]["test_size"]),
        random_state=int(raw["split"]["random_state"]),
        split_method=str(raw["split"]["method"]),
        split_salt=str(raw["split"]["salt"]),
        C=float(raw["model"]["C"]),
        max_iter=int(raw["model"]["max_iter"]),
        candidates={name: dict(raw["candidates"].get(name, {})) for name in raw["candidates"]["enabled"]},
        selection_metric=str(raw["selection"]["metric"]),
        cv_folds=int(raw["selection"]["cv_folds"]),
        cv_repeats=int(raw["selection"]["cv_repeats"]),
        target_sensitivity=float(raw["selection"]["target_sensitivity"]),
        threshold_rule=str(raw["selection"]["rule"]),
        threshold_confidence=float(raw["selection"]["threshold_confidence"]),
        outer_folds=int(raw["nested_cv"]["outer_folds"]),
        outer_repeats=int(raw["nested_cv"]["outer_repeats"]),
        bootstrap_resamples=int(raw["evaluation"]["bootstrap_resamples"]),
        gate_min_roc_auc=float(raw["gate"]["min_roc_auc"]),
        gate_alpha=float(raw["gate"]["alpha"]),
        gate_floor_confidence=float(raw["gate"]["floor_confidence"]),
        gate_sensitivity_margin=float(raw["gate"]["sensitivity_margin"]),
        gate_specificity_margin=float(raw["gate"]["specificity_margin"]),
        gate_roc_auc_margin=float(raw["gate"]["roc_auc_margin"]),
        gate_min_unseen_positives=int(raw["gate"]["min_unseen_positives"]),
        gate_min_unseen_negatives=int(raw["gate"]["min_unseen_negatives"]),
        keep_runs=int(raw["retention"]["keep_runs"]),
        prune_min_age_hours=float(raw["retention"]["prune_min_age_hours"]),
        retries=int(raw["airflow"]["retries"]),
        retry_delay_seconds=float(raw["airflow"]["retry_delay_seconds"]),
        upload_conn_id=str(raw["upload"]["conn_id"]),
        drive_service_account=resolve_path(raw["upload"]["drive_service_account"]),
        drive_user_credentials=resolve_path(raw["upload"]["drive_user_credentials"]),
        alert_emails=tuple(a.strip() for a in raw["alerts"]["email_to"].split(",") if a.strip()),
        smtp_conn_id=str(raw["alerts"]["smtp_conn_id"]),
        webhook_conn_id=str(raw["alerts"]["webhook_conn_id"]),
        alert_on_success=bool(raw["alerts"]["on_success"]),
        scoring_inbox=_results_location(str(raw["scoring"]["inbox"])),
        drift_alpha=float(raw["scoring"]["drift_alpha"]),
        drift_min_statistic=float(raw["scoring"]["drift_min_statistic"]),
        drift_min_rows=int(raw["scoring"]["drift_min_rows"]),
        inbox_poll_seconds=float(raw["scoring"]["poll_seconds"]),
    )


@dataclass(frozen=True)
class CandidatePaths:
    """The files of one candidate model in a run (written by its ``train_model`` task)."""

    root: StoragePath

    @classmethod
    def of(cls, folder: CandidatePaths | str | os.PathLike[str] | StoragePath) -> CandidatePaths:
        """The layout of ``folder`` (a path or URI), or ``folder`` if it is one already."""
        if isinstance(folder, CandidatePaths):
            return folder
        from etl.storage import location

        return cls(location(folder))

    @property
    def model(self) -> StoragePath:
        """The candidate fitted on the whole training split."""
        return self.root / "model.pkl"

    @property
    def cv(self) -> StoragePath:
        """Its cross-validated scores and parameters."""
        return self.root / "cv.json"

    @property
    def oof(self) -> StoragePath:
        """Its out-of-fold predicted probabilities on the training split."""
        return self.root / "oof.parquet"


@dataclass(frozen=True)
class RunPaths:
    """The file layout of one run's folder: the catalog of every artifact a step writes.

    Steps never spell each other's file names; the Airflow glue and the command-line defaults
    take them from here. An attribute's name is also the key under which the step that writes
    the file returns its path (``etl.tasks`` resolves inputs by it).
    """

    root: StoragePath

    @property
    def data(self) -> StoragePath:
        """Validated input data (written by ``load_data``)."""
        return self.root / "data.parquet"

    @property
    def profile(self) -> StoragePath:
        """Structure analysis of the input data (written by ``load_data``)."""
        return self.root / "profile.json"

    @property
    def preprocessing(self) -> StoragePath:
        """Split sizes and imputation counts (written by ``preprocess_data``)."""
        return self.root / "preprocessing.json"

    @property
    def train(self) -> StoragePath:
        """Scaled training split (written by ``preprocess_data``)."""
        return self.root / "train.parquet"

    @property
    def test(self) -> StoragePath:
        """Scaled test split (written by ``preprocess_data``)."""
        return self.root / "test.parquet"

    @property
    def scaler(self) -> StoragePath:
        """Imputer + ``StandardScaler`` fitted on the training split (by ``preprocess_data``)."""
        return self.root / "scaler.pkl"

    @property
    def model(self) -> StoragePath:
        """The selected classifier, refitted on the whole training split (``select_model``)."""
        return self.root / "model.pkl"

    def candidate(self, name: str) -> CandidatePaths:
        """The files of one candidate (``train_model``)."""
        return CandidatePaths(self.root / "candidates" / name)

    def outer_fold(self, index: int) -> StoragePath:
        """One outer fold's result of the nested cross-validation (written by ``nested_cv``)."""
        return self.root / "nested" / f"fold-{index:02d}.json"

    @property
    def gate(self) -> StoragePath:
        """The quality gate's decision: what was compared, on which rows, why (``quality_gate``)."""
        return self.root / "gate.json"

    @property
    def training(self) -> StoragePath:
        """The winner, its parameters, threshold and every candidate's CV scores (written by
        ``select_model``)."""
        return self.root / "training.json"

    @property
    def report(self) -> StoragePath:
        """The run's self-contained HTML report (written by ``make_report``)."""
        return self.root / "report.html"

    @property
    def metrics(self) -> StoragePath:
        """Test-split metrics (written by ``evaluate_model``)."""
        return self.root / "metrics.json"

    @property
    def predictions(self) -> StoragePath:
        """Test-split predictions, one row per test row (written by ``evaluate_model``)."""
        return self.root / "predictions.csv"

    @property
    def release_record(self) -> StoragePath:
        """What ``save_results`` did: the release it published, or why it published none."""
        return self.root / "release.json"

    @property
    def run_record(self) -> StoragePath:
        """Which DAG run the folder belongs to: DAG id, run id, logical date, start
        (``ensure_results_dir``)."""
        return self.root / "run.json"

    @property
    def failures(self) -> StoragePath:
        """One ``<task>.json`` per task that failed for good: its one-line error
        (``etl.tasks.record_failure``)."""
        return self.root / "failures"

    def failure(self, task_id: str, map_index: int = -1) -> StoragePath:
        """The failure record of one task instance."""
        suffix = f"-{map_index}" if map_index is not None and map_index >= 0 else ""
        return self.failures / f"{task_id}{suffix}.json"

    def artifacts(self) -> dict[str, StoragePath]:
        """The run's files a release publishes, by their published name."""
        return {path.name: path for path in (self.metrics, self.model, self.scaler)}


#: The artifacts ``save_results`` publishes to the top of the results folder, by file name.
PUBLISHED_ARTIFACTS: tuple[str, ...] = ("metrics.json", "model.pkl", "scaler.pkl")
#: The record of a published release (hashes, data, parameters, versions, run).
MANIFEST = "manifest.json"
#: Files a release holds.
RELEASE_FILES: tuple[str, ...] = (*PUBLISHED_ARTIFACTS, MANIFEST)


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
