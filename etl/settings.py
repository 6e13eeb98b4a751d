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
from datetime import timedelta
from pathlib import Path
from typing import Any

import tomllib

from etl.catalog import ParameterError
from etl.storage import Target
from etl.storage.layout import InboxPaths, ResultsPaths, results_root

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
#: Where the api-server mounts the UI plugin's app (``etl.ui.app``; ``plugins/breast_cancer_ui.py``).
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
    """``[gate]``: what a new model must clear to be published (``etl.releases.gate``). The sensitivity
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
        """Google Drive credential files (``etl.storage.gdrive``): a service account, saved user OAuth."""
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
    release's realized performance (``etl.monitoring.performance``), the growing training data."""

    inbox: str = _setting(_location)  # an absolute path, or a URI such as s3://bucket/prefix
    alarm_confidence: float
    alarm_min_malignant: int
    alarm_min_cases: int
    retrain_min_cases: int


@dataclass(frozen=True)
class ReleaseSettings:
    """``[release]``: who signs a release off before it is published (``etl.orchestration.approval``)."""

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
    def results_dir(self) -> Target:
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
        (``etl.modeling.models.Candidate.run_params``)."""
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
