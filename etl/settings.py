"""The settings of the pipeline, by section of ``pipeline.toml``, typed, each read once.

Precedence, lowest first: a run parameter's declared default (``RUN_PARAMS``), ``pipeline.toml``,
the files named by ``PIPELINE_CONFIG`` (only the keys they change; several separated by ``:``),
the environment variables of ``ENV_VARS``; then, per run, the DAG's params or a step's flags.
Imported when Airflow parses the DAG files: standard library only (an object-store results root
becomes an ``ObjectStoragePath`` only when a task first uses it).
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from etl.catalog import ParameterError, RunParam, refuse_unknown
from etl.storage import Target
from etl.storage.layout import (
    PROJECT_ROOT,
    InboxPaths,
    ResultsPaths,
    input_location,
    resolve_path,
    results_location,
    results_root,
    upload_location,
)

DEFAULT_CONFIG_FILE = PROJECT_ROOT / "pipeline.toml"

#: Environment variables that override a setting of the config file: (section, key) -> variable.
ENV_VARS = {
    ("paths", "data_path"): "DATA_PATH", ("paths", "results_dir"): "RESULTS_DIR",
    ("paths", "results_conn_id"): "RESULTS_CONN_ID", ("paths", "upload_uri"): "UPLOAD_URI",
    ("upload", "conn_id"): "UPLOAD_CONN_ID", ("scoring", "inbox"): "SCORING_INBOX", ("outcomes", "inbox"): "OUTCOMES_INBOX",
    ("release", "signing_key"): "RELEASE_SIGNING_KEY", ("release", "trusted_keys"): "RELEASE_TRUSTED_KEYS",
}


#: The run parameters: a DAG run's params (the trigger form, ``--conf``) and the steps' flags set
#: them over the config file. Adding one is a line here with its field in its section, and the code
#: that uses it (``docs/model.md``).
RUN_PARAMS: dict[str, RunParam] = {p.name: p for p in (
    RunParam("data_path", "paths", str, None, "Input CSV",
             "Input CSV, absolute or relative to the project root.", steps=("load_data",), convert=input_location),
    RunParam("test_size", "split", float, 0.2, "Test share",
             "Share of rows held out for the test split (stratified by class).", 0, 1, exclusive=True,
             steps=("preprocess_data",)),
    RunParam("random_state", "model", int, 42, "Random seed",
             "Seed of the models and the cross-validation (and of a random split).", 0,
             steps=("preprocess_data", "train_model", "nested_cv", "evaluate_model", "make_report")),
    RunParam("C", "model", float, 1.0, "C", "Inverse regularisation strength of the logistic regression.",
             0, exclusive=True, steps=("train_model", "nested_cv")),
    RunParam("max_iter", "model", int, 1000, "Max iterations", "Solver iterations of the logistic regression.",
             1, steps=("train_model", "nested_cv")),
)}


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
    """A list of names, addresses or paths (a TOML list, or one comma-separated string)."""
    return tuple(str(v).strip() for v in (value if isinstance(value, list) else str(value).split(",")) if str(v).strip())


#: How a config value becomes a setting, by the field's declared type (or its metadata's ``convert``).
_CONVERT: dict[str, Any] = {"float": float, "int": int, "str": str, "bool": bool, "Path": lambda v: resolve_path(v)}


def _setting(convert: Any) -> Any:
    """A section field whose config value is turned into the setting by ``convert``."""
    return field(metadata={"convert": convert})


@dataclass(frozen=True)
class PathsSettings:
    """``[paths]``: the input, the results folder, the upload destination."""

    data_path: Path
    results_dir: str = _setting(results_location)  # an absolute path, or a URI such as s3://bucket/prefix
    results_conn_id: str
    upload_uri: str = _setting(upload_location)


@dataclass(frozen=True)
class ValidationSettings:
    """``[validation]``: what ``load_data`` accepts."""

    max_missing_share: float
    min_rows_per_class: int


@dataclass(frozen=True)
class SplitSettings:
    """``[split]``: the test split (``test_size`` is a run parameter)."""

    test_size: float
    method: str
    salt: str


@dataclass(frozen=True)
class ModelSettings:
    """``[model]``: the models' and cross-validation's seed, the candidates' parameters (run parameters)."""

    random_state: int
    C: float
    max_iter: int


@dataclass(frozen=True)
class SelectionSettings:
    """``[selection]``: cross-validation on the training split, the operating points, the choice."""

    metric: str
    cv_folds: int
    cv_repeats: int
    target_sensitivity: float
    target_malignant_specificity: float  # the three-way call's second promise (etl.modeling.thresholds)
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
    """``[scoring]``: the scoring DAG's inbox, the per-case scope check, the batch drift check."""

    inbox: str = _setting(results_location)  # an absolute path, or a URI such as s3://bucket/prefix
    poll_seconds: float
    novelty_alpha: float  # at most this share of cases like the training rows is refused (etl.data.scope)
    drift_alpha: float
    drift_min_statistic: float
    drift_min_rows: int


@dataclass(frozen=True)
class AlertsSettings:
    """``[alerts]``: where failures (and, if asked, successes) are announced."""

    email_to: tuple[str, ...] = _setting(_names)
    smtp_conn_id: str
    webhook_conn_id: str
    on_success: bool


@dataclass(frozen=True)
class OutcomesSettings:
    """``[outcomes]``: confirmed diagnoses (``etl.outcomes``), the alarm, the growing training data."""

    inbox: str = _setting(results_location)  # an absolute path, or a URI such as s3://bucket/prefix
    alarm_confidence: float
    alarm_min_malignant: int
    alarm_min_cases: int
    retrain_min_cases: int


@dataclass(frozen=True)
class ReleaseSettings:
    """``[release]``: who signs a release off (``etl.orchestration.approval``), its keys (``etl.releases.signing``)."""

    approval: str = _setting(_approval)  # "auto": the quality gate decides alone; "required": a person too
    approvers: tuple[str, ...] = _setting(_names)  # the Airflow users who may answer
    approval_timeout: timedelta = _setting(_duration)  # noqa: RUF009  (no answer by then: nothing published)
    signing_key: Path  # the private key that signs each release (made on first use)
    trusted_keys: tuple[Path, ...] = _setting(lambda v: tuple(map(resolve_path, _names(v))))  # public keys

    @property
    def required(self) -> bool:
        """Whether a person must approve each release (the DAG then has ``approve_release``)."""
        return self.approval == "required"


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
        """The results folder: a ``Path``, or an ``ObjectStoragePath`` for a URI such as
        ``s3://bucket/prefix`` (through ``results_conn_id``), which workers on several machines share."""
        return results_root(self.paths.results_dir, self.paths.results_conn_id)

    @property
    def layout(self) -> ResultsPaths:
        """The results folder's layout: runs, releases, the published pointer."""
        return ResultsPaths(self.results_dir)

    @property
    def run_params(self) -> dict[str, Any]:
        """The run parameters (``RUN_PARAMS``) of these settings."""
        return {name: getattr(getattr(self, p.section), name) for name, p in RUN_PARAMS.items()}

    def with_run_params(self, values: Mapping[str, Any]) -> Settings:
        """These settings with a run's parameters (``RUN_PARAMS``, each coerced to its type and
        bounds) in their sections; None and "" (the form's empty field) keep the configured value.

        Raises:
            ParameterError: a name that is not a run parameter, a value out of bounds.
        """
        refuse_unknown(values, RUN_PARAMS)
        settings = self
        for name, value in values.items():
            if value is not None and value != "":
                settings = settings._set(RUN_PARAMS[name].section, name, RUN_PARAMS[name].coerce(value))
        return settings

    def override(self, section: str, key: str, value: Any) -> Settings:
        """These settings with ``[section] key`` set to ``value`` (a step's flag)."""
        return self._set(section, key, _convert(section, key, value))

    def _set(self, section: str, key: str, value: Any) -> Settings:
        return replace(self, **{section: replace(getattr(self, section), **{key: value})})

    def trigger_form(self) -> dict[str, Any]:
        """The training DAG's params: one ``Param`` per run parameter, at these settings' value."""
        values = {name: getattr(getattr(self, p.section), name) for name, p in RUN_PARAMS.items()}
        # a parameter without a default of its own is empty on the form: the configured value
        return {name: p.param(None, values[name]) if p.default is None else p.param(values[name])
                for name, p in RUN_PARAMS.items()}

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


#: The config file's sections, each a dataclass of its keys (``[candidates]`` is free-form).
SECTIONS: dict[str, type] = {f.name: globals()[str(f.type)] for f in fields(Settings) if f.name != "candidates"}


def _convert(section: str, key: str, value: Any) -> Any:
    """A config value as the setting ``[section] key``: by its field's ``convert`` or type."""
    f = next(f for f in fields(SECTIONS[section]) if f.name == key)
    return (f.metadata.get("convert") or _CONVERT[str(f.type)])(value)


def _section(name: str, values: Mapping[str, Any]) -> Any:
    """``[name]`` of the config as its dataclass."""
    return SECTIONS[name](**{f.name: _convert(name, f.name, values[f.name]) for f in fields(SECTIONS[name])})


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The settings: ``pipeline.toml``, the config files over it, the environment overrides.
    Read once per process: again only when a file or a variable they come from has changed.

    Args:
        config_file: TOML file(s) read over ``pipeline.toml``, in order, separated by ``:``;
            default ``$PIPELINE_CONFIG``.
        environ: environment to read overrides from; default ``os.environ``.

    Raises:
        ParameterError: one line, for a section or key a config file has that
            ``pipeline.toml`` does not (a run parameter's key is always known).
    """
    environ = os.environ if environ is None else environ
    config_files = str(config_file or environ.get("PIPELINE_CONFIG") or "")
    paths = [DEFAULT_CONFIG_FILE, *(resolve_path(f) for f in config_files.split(os.pathsep) if f)]
    mtimes = tuple((str(f), f.stat().st_mtime_ns if f.exists() else None) for f in paths)  # (open says why)
    return _read_settings((mtimes, tuple(environ.get(var) for var in ENV_VARS.values())))


@functools.lru_cache(maxsize=8)
def _read_settings(key: tuple[tuple[tuple[str, int | None], ...], tuple[str | None, ...]]) -> Settings:
    files, env = key
    with open(files[0][0], "rb") as fh:
        raw = tomllib.load(fh)
    for p in RUN_PARAMS.values():  # a run parameter's default is its declaration's
        if p.default is not None:
            raw[p.section].setdefault(p.name, p.default)
    for path, _ in files[1:]:
        with open(path, "rb") as fh:
            for section, values in tomllib.load(fh).items():
                if section not in raw:
                    raise ParameterError(f"{path}: unknown section [{section}]")
                unknown = sorted(set(values) - set(raw[section]))
                if unknown:
                    raise ParameterError(f"{path}: unknown setting(s) in [{section}]: {', '.join(unknown)}")
                raw[section].update(values)
    for (section, name), value in zip(ENV_VARS, env, strict=True):
        if value:
            raw[section][name] = value
    candidates = {name: dict(raw["candidates"].get(name, {})) for name in raw["candidates"]["enabled"]}
    return Settings(candidates=candidates, **{name: _section(name, raw[name]) for name in SECTIONS})
