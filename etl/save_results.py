"""Publish a finished, evaluated run to the top of the results folder, all or nothing; prune
old runs.

The results folder::

    results/
      metrics.json  -> current/metrics.json     what users and tools open (symbolic links)
      model.pkl     -> current/model.pkl
      scaler.pkl    -> current/scaler.pkl
      manifest.json -> current/manifest.json
      current       -> published/<release>      the one pointer saying what is published
      published/<release>/                      a published release; never changed once written
      runs/<run key>/                           every file of one run

Publishing verifies the run's pickles against their checksums, copies the artifacts into a new
release folder with its ``manifest.json`` (SHA-256 and size of each artifact, the input data's
hash and row count, every parameter, library versions, code revision, run id and times), then
renames a new ``current`` link over the old one. Up to that rename nothing published has
changed; after it, all four files are the new ones. A failure at any point (an exception, a
killed process, a full disk) leaves the previous release published, byte for byte, and readers
never see files of two releases mixed.

On an object store (``results_dir = "s3://bucket/prefix"``, the shared artifact root of a
cluster) there are no links or renames. A release's objects are written first, its
``manifest.json`` last (a release without a matching manifest is incomplete and is rewritten),
then one object, ``current.json`` (``{"release": "<release>"}``), is replaced: that single
write is the switch, and ``load_published`` and the quality gate read through it. The top-level
``metrics.json``, ``model.pkl``, ``scaler.pkl`` and ``manifest.json`` are copies of the
release's files made after the switch, each object complete but the four not switched together;
check them against ``manifest.json``, or read through ``current.json`` when that matters.

A release is named ``<run key>-<content hash>``: publishing the same run again with the same
artifacts (a rerun) reuses its release instead of writing another.

Before publishing, ``save_results`` applies the quality gate (``Gate``): the run's test ROC AUC
and sensitivity must clear floors, and its ROC AUC must not be below the published model's on
the same test rows. A refused model is not published; the reason goes to the log and to the
run's ``gate.json`` and ``release.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from etl import cli, storage
from etl.config import CLI_RUN_KEY, MANIFEST, PROJECT_ROOT, PUBLISHED_ARTIFACTS, RunPaths
from etl.errors import IntegrityError, MissingInputError, ParameterError, first_line
from etl.storage import Location, Target

logger = logging.getLogger(__name__)

#: The pointer to the published release, and the folders of releases and runs.
CURRENT, RELEASES, RUNS = "current", "published", "runs"
#: The pointer on an object store: an object naming the published release.
CURRENT_OBJECT = "current.json"
#: Record in the run folder of what the run published.
RELEASE_RECORD = "release.json"
#: Files a release holds.
RELEASE_FILES: tuple[str, ...] = (*PUBLISHED_ARTIFACTS, MANIFEST)
#: Libraries whose versions go into the manifest.
VERSIONED = ("apache-airflow", "pandas", "numpy", "scikit-learn", "joblib")


def _check_object_store(root: Target) -> None:
    """Write, read back and delete a probe object under ``root``: a wrong bucket or wrong
    credentials fail here, at the start of the run, in one line."""
    from botocore.exceptions import BotoCoreError

    probe = root / f".write-check-{uuid.uuid4().hex}"
    try:
        storage.write_bytes(b"ok", probe)
        if storage.read_bytes(probe) != b"ok":
            raise OSError(f"{storage.uri(probe)}: read back something else than was written")
        probe.unlink()
    except (PermissionError, FileNotFoundError) as exc:
        raise ParameterError(f"results folder {storage.uri(root)} is not writable: {first_line(exc)}") from None
    except BotoCoreError as exc:  # endpoint unreachable: an I/O error, Airflow retries
        raise ConnectionError(f"results folder {storage.uri(root)}: {exc}") from None


def ensure_results_dir(*folders: Location) -> list[str]:
    """Create each folder if needed and check that files can be written in it (on an object
    store, which has no folders: that an object can be written, read and deleted).

    Raises:
        ParameterError: a folder exists as a file, or is not writable.
    """
    created = []
    for folder in map(storage.location, folders):
        if not storage.is_local(folder):
            _check_object_store(folder)
            created.append(storage.uri(folder))
            continue
        if folder.exists() and not folder.is_dir():
            raise ParameterError(f"results folder {folder} exists but is not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except PermissionError:
            raise ParameterError(f"results folder {folder} is not writable") from None
        created.append(str(folder))
    logger.info("results folders ready: %s", ", ".join(created))
    return created


# -- the manifest -------------------------------------------------------------------------------


def library_versions() -> dict[str, str | None]:
    """Versions of Python and of the libraries that shape the model."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def code_revision(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The git commit of the code and whether tracked files were changed; ``None`` without git."""
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {"revision": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None}


def build_manifest(
    run: RunPaths, artifacts: Mapping[str, Mapping[str, Any]], release: str,
    run_info: Mapping[str, Any],
) -> dict[str, Any]:
    """The manifest of a release, from the records the run's steps wrote.

    Times and run ids are under ``run`` only; everything else is the same for the same data,
    parameters and code.
    """
    profile = storage.read_json(run.profile, "load_data")
    split = storage.read_json(run.preprocessing, "preprocess_data")
    training = storage.read_json(run.training, "select_model")
    return {
        "manifest_version": 1,
        "release": release,
        "artifacts": dict(artifacts),
        "data": {
            "source": profile["source"],
            "sha256": profile["source_sha256"],
            "bytes": profile["source_bytes"],
            "rows": profile["rows"],
            "rows_read": profile["rows_read"],
            "class_balance": profile["class_balance"],
        },
        "params": {
            "load_data": {"data_path": profile["source"], **profile["contract"]},
            "preprocess_data": {"test_size": split["test_size"], "random_state": split["random_state"]},
            "train_model": {"estimator": training["estimator"], **training["params"]},
            "select_model": {"candidate": training["candidate"],
                             "metric": training["selection"]["metric"],
                             "folds": training["selection"]["folds"],
                             "repeats": training["selection"]["repeats"],
                             "target_sensitivity": training["threshold"]["target_sensitivity"]},
        },
        "model": {"candidate": training["candidate"], "estimator": training["estimator"],
                  "threshold": training["threshold"]["threshold"]},
        "versions": library_versions(),
        "code": code_revision(),
        "run": {**run_info, "run_key": run.root.name,
                "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }


# -- publishing ---------------------------------------------------------------------------------


def _run_artifacts(run: RunPaths) -> dict[str, Path]:
    """The run's files to publish, pickles verified against their checksums."""
    files = {"metrics.json": run.metrics, "model.pkl": run.model, "scaler.pkl": run.scaler}
    producers = {"metrics.json": "evaluate_model", "model.pkl": "select_model",
                 "scaler.pkl": "preprocess_data"}
    for name, path in files.items():
        storage.require(path, producers[name])
        if name.endswith(".pkl"):
            storage.verify(path, storage.recorded_sha256(path), str(storage.checksum_file(path)))
    return files


def release_is_intact(release_dir: Target) -> bool:
    """Whether a release folder holds every file, each matching its manifest."""
    try:
        manifest = storage.read_json(release_dir / MANIFEST)
        for name in PUBLISHED_ARTIFACTS:
            storage.verify(release_dir / name, manifest["artifacts"][name]["sha256"], MANIFEST)
    except (IntegrityError, MissingInputError, KeyError, ValueError):
        return False
    return True


def _symlink(target: str, link: Path) -> None:
    """Make ``link`` point to ``target``, atomically replacing whatever ``link`` was."""
    tmp = link.parent / f".{link.name}.{uuid.uuid4().hex}.tmp"
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    finally:
        tmp.unlink(missing_ok=True)


def publish(
    run_dir: Location,
    results_dir: Location,
    run_info: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Publish the evaluated run in ``run_dir`` to ``results_dir``, all or nothing.

    Args:
        run_dir: the run folder (``results/runs/<run key>``).
        results_dir: the results folder.
        run_info: what identifies the run (DAG id, run id, logical date, start time).

    Returns:
        ``release`` (the release folder), ``manifest`` and each published file's path.
    """
    run, results_dir = RunPaths(storage.location(run_dir)), storage.location(results_dir)
    sources = _run_artifacts(run)
    artifacts = {name: storage.describe(path) for name, path in sources.items()}
    content = hashlib.sha256(json.dumps(artifacts, sort_keys=True).encode()).hexdigest()[:12]
    release = f"{run.root.name}-{content}"

    def manifest() -> dict[str, Any]:
        return build_manifest(run, artifacts, release, run_info or {"run_id": CLI_RUN_KEY})

    store_and_switch = _publish_locally if storage.is_local(results_dir) else _publish_to_object_store
    release_dir = store_and_switch(results_dir, release, sources, manifest)
    storage.write_json({"release": release, "published": True}, run.root / RELEASE_RECORD)
    logger.info("published release %s to %s: %s", release, storage.uri(results_dir), ", ".join(RELEASE_FILES))
    return {"release": str(release_dir), **{name: str(results_dir / name) for name in RELEASE_FILES}}


def _publish_locally(
    results_dir: Path, release: str, sources: Mapping[str, Target], manifest: Callable[[], dict[str, Any]],
) -> Path:
    """``publish`` on a local folder: the release staged and renamed into place, then the
    ``current`` link switched in one rename. Returns the release folder."""
    releases = results_dir / RELEASES
    release_dir = releases / release
    if release_dir.is_dir() and release_is_intact(release_dir):
        logger.info("release %s already exists (same run, same artifacts): not copied again", release)
    else:
        if release_dir.exists():
            raise IntegrityError(
                f"{release_dir} exists but does not match its manifest; delete it and rerun save_results"
            )
        releases.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{release}-", dir=releases))
        try:
            for name, path in sources.items():
                storage.copy_file(path, staging / name)
            storage.write_json(manifest(), staging / MANIFEST)
            try:
                os.rename(staging, release_dir)
            except OSError:  # published at the same moment by a rerun of this run: use that one
                if not release_is_intact(release_dir):
                    raise
        finally:
            storage.remove_tree(staging)

    # The links at the top of results/ go through `current`: make them first (they show the
    # old release until the switch), then switch `current` in one rename.
    for name in RELEASE_FILES:
        link = results_dir / name
        if not (link.is_symlink() and os.readlink(link) == f"{CURRENT}/{name}"):
            _symlink(f"{CURRENT}/{name}", link)
    _symlink(f"{RELEASES}/{release}", results_dir / CURRENT)
    return release_dir


def _publish_to_object_store(
    results_dir: Target, release: str, sources: Mapping[str, Target], manifest: Callable[[], dict[str, Any]],
) -> Target:
    """``publish`` on an object store: the release's objects, its manifest last, then the one
    write of ``current.json`` that switches; then the top-level copies. Returns the release
    folder."""
    release_dir = results_dir / RELEASES / release
    if release_is_intact(release_dir):
        logger.info("release %s already exists (same run, same artifacts): not copied again", release)
    else:  # new, or left incomplete by an interrupted publish: (re)write it, manifest last
        for name, path in sources.items():
            storage.copy_file(path, release_dir / name)
        storage.write_json(manifest(), release_dir / MANIFEST)
    storage.write_json({"release": release}, results_dir / CURRENT_OBJECT)
    for name in RELEASE_FILES:
        storage.copy_file(release_dir / name, results_dir / name)
    return release_dir


# -- the quality gate ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """What a new model must clear to be published."""

    min_roc_auc: float = 0.95
    min_sensitivity: float = 0.90
    max_roc_auc_drop: float = 0.0


def published_scores_on(run: RunPaths, release: Target) -> dict[str, float]:
    """ROC AUC and sensitivity of a published release's model on this run's test rows (raw
    rows from ``data.parquet``, transformed by the release's own preprocessing, at its threshold)."""
    import numpy as np
    from sklearn import metrics as skm

    from etl.models import malignant_probability
    from etl.schema import FEATURE_COLUMNS, ID_COLUMN, LABEL_CODES, TARGET_COLUMN

    manifest = storage.read_json(release / MANIFEST, "save_results")
    model = load_from_release(release, "model.pkl", manifest)
    scaler = load_from_release(release, "scaler.pkl", manifest)
    test_ids = storage.read_frame(run.test, "preprocess_data")[ID_COLUMN]
    rows = storage.read_frame(run.data, "load_data").set_index(ID_COLUMN).loc[test_ids]
    y = rows[TARGET_COLUMN].map(LABEL_CODES).to_numpy(dtype=int)
    p = malignant_probability(model, scaler.transform(rows[list(FEATURE_COLUMNS)]))
    threshold = manifest.get("model", {}).get("threshold", 0.5)
    return {"roc_auc": float(skm.roc_auc_score(y, p)),
            "sensitivity": float(np.mean(p[y == 1] >= threshold))}


def quality_gate(run: RunPaths, results_dir: Target, gate: Gate) -> dict[str, Any]:
    """Check the run's test metrics against the floors and against the published model on the
    same test rows. Returns the record written to ``gate.json``: ``passed`` and each check."""
    metrics = storage.read_json(run.metrics, "evaluate_model")
    checks = [
        {"check": "roc_auc >= min_roc_auc", "value": metrics["roc_auc"], "limit": gate.min_roc_auc,
         "passed": metrics["roc_auc"] >= gate.min_roc_auc},
        {"check": "sensitivity >= min_sensitivity", "value": metrics["recall"],
         "limit": gate.min_sensitivity, "passed": metrics["recall"] >= gate.min_sensitivity},
    ]
    record: dict[str, Any] = {"published_release": None}
    try:
        published = current_release(results_dir)
    except MissingInputError:
        published = None
    if published is not None and published.name.rsplit("-", 1)[0] != run.root.name:
        theirs = published_scores_on(run, published)
        limit = theirs["roc_auc"] - gate.max_roc_auc_drop
        checks.append({"check": "roc_auc >= published roc_auc - max_roc_auc_drop",
                       "value": metrics["roc_auc"], "limit": limit, "passed": metrics["roc_auc"] >= limit})
        record.update(published_release=published.name, published_on_this_test_split=theirs)
    record.update(passed=all(c["passed"] for c in checks), checks=checks)
    return record


# -- reading what is published ------------------------------------------------------------------


def current_release(results_dir: Location) -> Target:
    """The folder of the published release (resolved once, so later reads are consistent)."""
    results_dir = storage.location(results_dir)
    if not storage.is_local(results_dir):
        record = storage.read_json(results_dir / CURRENT_OBJECT, "save_results")
        return results_dir / RELEASES / record["release"]
    pointer = results_dir / CURRENT
    if not pointer.is_symlink():
        raise MissingInputError(pointer, "save_results")
    return pointer.parent / os.readlink(pointer)


def run_release(run_dir: Location, results_dir: Location) -> Target | None:
    """The release folder a run published (from its ``release.json``); ``None`` when the
    quality gate kept the run from being published."""
    record = storage.read_json(storage.location(run_dir) / RELEASE_RECORD, "save_results")
    return storage.location(results_dir) / RELEASES / record["release"] if record["published"] else None


def verified_files(release_dir: Location) -> dict[str, Target]:
    """Every file of a release, each artifact checked against the release's manifest.

    Raises:
        IntegrityError: an artifact's SHA-256 or size differs from the manifest's.
    """
    release_dir = storage.location(release_dir)
    manifest_path = release_dir / MANIFEST
    manifest = storage.read_json(manifest_path, "save_results")
    files = {}
    for name in PUBLISHED_ARTIFACTS:
        expected = manifest["artifacts"][name]
        files[name] = storage.verify(release_dir / name, expected["sha256"], str(manifest_path))
    files[MANIFEST] = manifest_path
    return files


def load_from_release(release_dir: Location, name: str, manifest: Mapping[str, Any] | None = None) -> Any:
    """Load a release's pickle (``model.pkl``, ``scaler.pkl``) after checking its SHA-256
    against the release's manifest (read unless given)."""
    release_dir = storage.location(release_dir)
    manifest = manifest or storage.read_json(release_dir / MANIFEST, "save_results")
    return storage.load_object(
        release_dir / name, manifest["artifacts"][name]["sha256"], str(release_dir / MANIFEST)
    )


def load_published(results_dir: Location, name: str) -> Any:
    """Load a pickle of the published release, checked against its manifest."""
    return load_from_release(current_release(results_dir), name)


# -- pruning ------------------------------------------------------------------------------------


def prune(
    results_dir: Location,
    keep: int,
    min_age: timedelta,
    protect: Iterable[str] = (),
    now: float | None = None,
) -> list[str]:
    """Delete run folders and releases beyond the ``keep`` most recently written of each.

    Never deleted: the published release and its run folder, the folders named in ``protect``,
    and anything
    written less than ``min_age`` ago (it may belong to a run still in progress). Leftovers of
    interrupted publishes older than ``min_age`` go too.

    Returns:
        The deleted folders.
    """
    if keep < 1:
        raise ParameterError(f"keep_runs must be >= 1, got {keep}")
    results_dir = storage.location(results_dir)
    local = storage.is_local(results_dir)
    cutoff = (time.time() if now is None else now) - min_age.total_seconds()
    protected = set(protect)
    try:
        published = current_release(results_dir).name
        protected |= {published, published.rsplit("-", 1)[0]}  # the release and its run folder
    except MissingInputError:
        pass
    deleted = []
    for parent in (results_dir / RUNS, results_dir / RELEASES):
        if not parent.is_dir():
            continue
        folders = [p for p in parent.iterdir() if p.is_dir() and not (local and p.is_symlink())]
        written = {p.name: storage.last_modified(p) for p in folders}
        staging = [p for p in folders if p.name.startswith(".")]
        kept = sorted((p for p in folders if p not in staging), key=lambda p: (written[p.name], p.name),
                      reverse=True)  # the name breaks ties: object stores keep whole seconds
        for folder in staging + kept[keep:]:
            if folder.name in protected or written[folder.name] > cutoff:
                continue
            storage.remove_tree(folder)
            deleted.append(str(folder))
    for leftover in results_dir.glob(".*.tmp") if local else []:  # a link switch interrupted by a kill
        if leftover.lstat().st_mtime <= cutoff:
            leftover.unlink(missing_ok=True)
    if deleted:
        logger.info("pruned %d old folder(s): %s", len(deleted), ", ".join(deleted))
    return deleted


def save_results(
    run_dir: Location,
    results_dir: Location,
    run_info: Mapping[str, Any] | None = None,
    keep_runs: int = 10,
    prune_min_age: timedelta = timedelta(hours=6),
    gate: Gate | None = None,
) -> dict[str, Any]:
    """Publish the run if it clears the quality gate, then prune old runs and releases.

    When the gate refuses the model, nothing is published: the reason is logged and recorded
    in the run's ``gate.json`` and ``release.json``.

    Returns:
        what ``publish`` returns, or ``{"published": False, "reason": ...}``.
    """
    run = RunPaths(storage.location(run_dir))
    verdict = quality_gate(run, storage.location(results_dir), gate or Gate())
    storage.write_json(verdict, run.root / "gate.json")
    if not verdict["passed"]:
        failed = "; ".join(f"{c['check']}: {c['value']:.4f} < {c['limit']:.4f}"
                           for c in verdict["checks"] if not c["passed"])
        reason = f"quality gate: not published ({failed})"
        logger.warning("%s; the published model stays %s", reason, verdict["published_release"])
        storage.write_json({"published": False, "reason": reason}, run.root / RELEASE_RECORD)
        return {"published": False, "reason": reason}
    published = publish(run_dir, results_dir, run_info)
    prune(results_dir, keep_runs, prune_min_age,
          protect=(run.root.name, storage.location(published["release"]).name))
    return published


def gate_from(settings: Any) -> Gate:
    """The quality gate of the settings' ``[gate]``."""
    return Gate(settings.gate_min_roc_auc, settings.gate_min_sensitivity, settings.gate_max_roc_auc_drop)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, settings, run = cli.parser(__doc__)
    p.add_argument("--run-dir", type=cli.path_arg, default=run.root, help="run folder to publish")
    p.add_argument(
        "--results-dir", type=cli.path_arg, default=settings.results_dir, help="publish here"
    )
    p.add_argument("--keep-runs", type=int, default=settings.keep_runs,
                   help="run folders and releases to keep")

    def action(a):
        ensure_results_dir(a.results_dir)
        return save_results(a.run_dir, a.results_dir, keep_runs=a.keep_runs,
                            prune_min_age=timedelta(hours=settings.prune_min_age_hours),
                            gate=gate_from(settings))

    return cli.run(p, action, argv)


if __name__ == "__main__":
    raise SystemExit(main())
