"""The file layout of the results folder, a run folder, a release and an inbox: where each
artifact is, as plain attributes a type checker follows (``run.metrics``, ``release.model``,
``inbox.rejected``). The run's files come from the catalog (``etl.catalog.FILES``: each name and
path declared there once); the release's file names are declared here once.

Standard library only (an object-store root becomes an ``ObjectStoragePath`` only when asked).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from etl import catalog
from etl.storage import Target, location

#: The repository root (this package is installed in editable mode, so it is the checkout).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """An absolute path: relative paths are taken from the project root, not the working dir."""
    path = Path(path).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else PROJECT_ROOT / path))


def results_location(value: Any) -> str:
    """A results or inbox folder setting made absolute: local paths and ``file://`` URIs to a
    path (relative to the project root), other URIs as given."""
    value = str(value)
    if value.startswith("file://") or "://" not in value:
        return str(resolve_path(value.removeprefix("file://")))
    return value.rstrip("/")


def upload_location(value: Any) -> str:
    """An upload destination: a plain local path made absolute, a URI as given."""
    return str(value) if "://" in str(value) else str(resolve_path(str(value)))


def input_location(value: Any) -> Any:
    """An input file: a path made absolute (a URI or an ``ObjectStoragePath`` as given)."""
    return resolve_path(value) if isinstance(value, (str, os.PathLike)) and "://" not in str(value) else value


def results_root(value: str, conn_id: str) -> Target:
    """A results or inbox folder setting (``results_location``): a ``Path``, or an
    ``ObjectStoragePath`` for a URI (through Airflow connection ``conn_id``)."""
    if "://" not in value:
        return location(value)
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(value, conn_id=conn_id)


@dataclass(frozen=True)
class Folder:
    """A folder's layout: its ``root``, and the paths under it as typed attributes (``_At``,
    ``_File``)."""

    root: Target


class _At:
    """A path under a folder's root, as a typed attribute: ``ResultsPaths.runs`` is ``<root>/runs``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __get__(self, folder: Any, owner: type | None = None) -> Target:
        return self if folder is None else folder.root / self.path  # type: ignore[return-value]


class _File(_At):
    """A file the catalog declares (``etl.catalog.FILES``), as a typed attribute of a folder's
    layout: ``RunPaths.metrics`` is the catalog's ``metrics`` under the run folder. ``leaf``: the
    file's own name only (a candidate's folder, a release); ``entry``: the catalog's name, when
    it is not the attribute's."""

    def __init__(self, entry: str | None = None, leaf: bool = False) -> None:
        super().__init__("")
        self.entry, self.leaf = entry, leaf

    def __set_name__(self, owner: type, name: str) -> None:
        entry = catalog.BY_NAME[self.entry or name]
        self.path = entry.path.rsplit("/", 1)[-1] if self.leaf else entry.path


@dataclass(frozen=True)
class CandidatePaths(Folder):
    """The files of one candidate model in a run (its ``train_model`` task), from the
    catalog's ``candidates/{candidate}/...`` entries: ``model`` (fitted on the whole training
    split), ``cv`` (its cross-validated scores), ``oof`` (its out-of-fold probabilities)."""

    @classmethod
    def of(cls, folder: CandidatePaths | str | os.PathLike[str] | Target) -> CandidatePaths:
        """The layout of ``folder`` (a path or URI), or ``folder`` if it is one already."""
        if isinstance(folder, CandidatePaths):
            return folder
        return cls(location(folder))

    @property
    def name(self) -> str:
        """The candidate's name."""
        return self.root.name

    #: Fitted on the whole training split.
    model = _File("candidate_model", leaf=True)
    #: Its cross-validated scores and parameters.
    cv = _File(leaf=True)
    #: Its out-of-fold probabilities, per repeat, and each row's fold.
    oof = _File(leaf=True)


@dataclass(frozen=True)
class RunPaths(Folder):
    """The file layout of one run's folder: each file the catalog (``etl.catalog.FILES``)
    declares is an attribute of that name (``run.data``, ``run.metrics``, ...); the files of
    mapped tasks through ``candidate(name)`` and ``outer_fold(index)``.

    Steps never spell each other's file names; the Airflow glue and the command-line defaults
    take them from here.
    """

    run_record = _File()
    data = _File()
    profile = _File()
    train = _File()
    test = _File()
    scaler = _File()
    preprocessing = _File()
    model = _File()
    training = _File()
    metrics = _File()
    predictions = _File()
    gate = _File()
    report = _File()
    model_card = _File()
    signoff = _File()
    release_record = _File()

    def candidate(self, name: str) -> CandidatePaths:
        """The files of one candidate (``train_model``)."""
        return CandidatePaths((self.root / catalog.path_of("cv", candidate=name)).parent)

    def outer_fold(self, index: int) -> Target:
        """One outer fold's result of the nested cross-validation (``nested_cv``)."""
        return self.root / catalog.path_of("outer_fold", fold=index)

    @property
    def failures(self) -> Target:
        """The folder of failure records (``etl.orchestration.tasks.record_failure``)."""
        return (self.root / catalog.path_of("failure", task="x")).parent

    def failure(self, task_id: str, map_index: int = -1) -> Target:
        """The failure record of one task instance."""
        suffix = f"-{map_index}" if map_index is not None and map_index >= 0 else ""
        return self.root / catalog.path_of("failure", task=f"{task_id}{suffix}")


#: The run's files a release carries as they are, by their catalog names: the metrics and the
#: model and scaler in the skops format, the files the pipeline loads (``etl.storage.objects``;
#: the same content gives the same bytes), and what a release's content hash is computed from.
PUBLISHED: tuple[str, ...] = ("metrics", "model", "scaler")
RUN_ARTIFACTS: tuple[str, ...] = tuple(catalog.BY_NAME[name].path for name in PUBLISHED)
#: The model and scaler as joblib pickles, made at publication from their skops files, for users
#: who load them by hand (the pipeline never does), by the skops file each is made from. (Not in
#: the content hash: a pickle's bytes follow which equal strings the process happened to share.)
PICKLES: dict[str, str] = {str(PurePosixPath(name).with_suffix(".pkl")): name
                           for name in RUN_ARTIFACTS if name.endswith(".skops")}
#: What users open (``metrics.json``, ``model.pkl``, ``scaler.pkl``), at the top of the results folder too.
PUBLISHED_ARTIFACTS: tuple[str, ...] = (*(n for n in RUN_ARTIFACTS if not n.endswith(".skops")), *PICKLES)
#: The model and scaler the pipeline loads.
MODEL_FILES: tuple[str, ...] = tuple(PICKLES.values())
#: The record of a published release (hashes, data, parameters, versions, run).
MANIFEST = "manifest.json"
#: The release's documents: written for it at publication (with its name and sign-off), listed
#: in its manifest with their SHA-256, not part of its content hash.
RELEASE_DOCUMENTS: tuple[str, ...] = (catalog.BY_NAME["model_card"].path,)
#: The release's signature (``etl.releases.signing``): every other file of the release, signed.
SIGNATURE = "release.sig"
#: The files at the top of the results folder, each a link to (a copy of) the published release's.
TOP_FILES: tuple[str, ...] = (*PUBLISHED_ARTIFACTS, *RELEASE_DOCUMENTS, MANIFEST)
#: Files a release holds.
RELEASE_FILES: tuple[str, ...] = (*PUBLISHED_ARTIFACTS, *MODEL_FILES, *RELEASE_DOCUMENTS, MANIFEST, SIGNATURE)


@dataclass(frozen=True)
class ReleasePaths(Folder):
    """The files of one published release (``results/published/<release>/``)."""

    #: The run's files (``RUN_ARTIFACTS``: the model and scaler the pipeline loads, skops) and
    #: the model card, with its sign-off (``etl.releases.model_card``).
    metrics = _File(leaf=True)
    model = _File(leaf=True)
    scaler = _File(leaf=True)
    model_card = _File(leaf=True)

    #: SHA-256 and size of each artifact, data, parameters, versions, run; the signing key.
    manifest = _At(MANIFEST)
    #: Every other file of the release, signed (``etl.releases.signing``).
    signature = _At(SIGNATURE)

    def file(self, name: str) -> Target:
        """One of ``RELEASE_FILES`` by name."""
        if name not in RELEASE_FILES:
            raise ValueError(f"a release has no file {name!r}")
        return self.root / name

    @property
    def name(self) -> str:
        """The release's name, ``<run key>-<content hash>``."""
        return self.root.name

    @property
    def run_key(self) -> str:
        """The key of the run that made the release."""
        return self.name.rsplit("-", 1)[0]


@dataclass(frozen=True)
class ResultsPaths(Folder):
    """The layout of the results folder (documented in ``etl.releases.registry``)."""

    #: One sub-folder per run.
    runs = _At("runs")
    #: One sub-folder per published release.
    releases = _At("published")
    #: The link to the published release (local results folder).
    current = _At("current")
    #: The object naming the published release (object-store results folder).
    current_object = _At("current.json")
    #: One sub-folder per scored batch (the scoring DAG).
    scoring = _At("scoring")

    def batch(self, name: str) -> BatchPaths:
        """One scored batch's folder."""
        return BatchPaths(self.scoring / name)

    @property
    def monitoring(self) -> MonitoringPaths:
        """The confirmed outcomes and each release's realized performance (``etl.outcomes``)."""
        return MonitoringPaths(self.root / "monitoring")

    #: The versions of the labelled training data grown from confirmed cases (``etl.monitoring.datasets``):
    #: ``v0001/``, ... and ``current.json``.
    datasets = _At("datasets")

    def run(self, key: str) -> RunPaths:
        """One run's folder."""
        return RunPaths(self.runs / key)

    def release(self, name: str) -> ReleasePaths:
        """One release's folder."""
        return ReleasePaths(self.releases / name)

    def top(self, name: str) -> Target:
        """A published file at the top of the results folder: a release's, by name (``TOP_FILES``)."""
        return ReleasePaths(self.root).file(name)


@dataclass(frozen=True)
class BatchPaths(Folder):
    """What the scoring DAG writes for one input file (``results/scoring/<batch>/``)."""

    #: One row per input row: ``id``, ``malignant_probability``, ``predicted``, ``release``, ``call``,
    #: ``out_of_scope``, ``reason_1`` to ``reason_3`` (``etl.modeling.procedure.score_rows``).
    predictions = _At("predictions.csv")
    #: When, counts per call, share predicted malignant, the release that scored it, the drift check.
    report = _At("report.json")
    #: The scored rows as the contract read them (``id`` and the features): with their confirmed diagnoses
    #: they join the training data (``etl.monitoring.datasets``).
    rows = _At("rows.parquet")


@dataclass(frozen=True)
class MonitoringPaths(Folder):
    """``results/monitoring/``: the ledger of confirmed outcomes, one record per release."""

    #: One table per outcome file received (``<stem>-<hash>.parquet``): id, diagnosis, date, file, received.
    ledger = _At("outcomes")

    def release(self, name: str) -> Target:
        """A release's realized performance, per batch and month, and its alarm."""
        return self.root / "releases" / f"{name}.json"

    #: The files received, the unmatched ids, the conflicts, each release's headline.
    summary = _At("summary.json")


@dataclass(frozen=True)
class InboxPaths(Folder):
    """The scoring inbox: files arrive at the top; each moves to ``queued/`` when claimed for
    scoring, then to ``processed/`` once its outputs are complete, or to ``rejected/`` with a
    ``<name>.reason.txt`` beside it."""

    queued = _At("queued")
    processed = _At("processed")
    rejected = _At("rejected")

    def reason(self, name: str) -> Target:
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
        utc = logical_date.astimezone(UTC)
        key = utc.strftime("%Y-%m-%dT%H%M%S")
        if utc.microsecond:
            key += f".{utc.microsecond:06d}"
        return key + "Z"
    if not run_id:
        raise ValueError("a run needs a logical date or a run id")
    return _UNSAFE.sub("-", run_id).strip("-.")


#: Default run folder of the command-line entry points (``python -m etl.<step>``).
CLI_RUN_KEY = "cli"
