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

A release is named ``<run key>-<content hash>``: publishing the same run again with the same
artifacts (a rerun) reuses its release instead of writing another.
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
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from etl import cli, storage
from etl.config import CLI_RUN_KEY, MANIFEST, PROJECT_ROOT, PUBLISHED_ARTIFACTS, RunPaths
from etl.errors import IntegrityError, MissingInputError, ParameterError

logger = logging.getLogger(__name__)

#: The pointer to the published release, and the folders of releases and runs.
CURRENT, RELEASES, RUNS = "current", "published", "runs"
#: Record in the run folder of what the run published.
RELEASE_RECORD = "release.json"
#: Files a release holds.
RELEASE_FILES: tuple[str, ...] = (*PUBLISHED_ARTIFACTS, MANIFEST)
#: Libraries whose versions go into the manifest.
VERSIONED = ("apache-airflow", "pandas", "numpy", "scikit-learn", "joblib")


def ensure_results_dir(*folders: str | os.PathLike[str]) -> list[str]:
    """Create each folder if needed and check that files can be written in it.

    Raises:
        ParameterError: a folder exists as a file, or is not writable.
    """
    created = []
    for folder in map(Path, folders):
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
    training = storage.read_json(run.training, "train_model")
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
        },
        "versions": library_versions(),
        "code": code_revision(),
        "run": {**run_info, "run_key": run.root.name,
                "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }


# -- publishing ---------------------------------------------------------------------------------


def _run_artifacts(run: RunPaths) -> dict[str, Path]:
    """The run's files to publish, pickles verified against their checksums."""
    files = {"metrics.json": run.metrics, "model.pkl": run.model, "scaler.pkl": run.scaler}
    producers = {"metrics.json": "evaluate_model", "model.pkl": "train_model",
                 "scaler.pkl": "preprocess_data"}
    for name, path in files.items():
        storage.require(path, producers[name])
        if name.endswith(".pkl"):
            storage.verify(path, storage.recorded_sha256(path), str(storage.checksum_file(path)))
    return files


def release_is_intact(release_dir: Path) -> bool:
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
    run_dir: str | os.PathLike[str],
    results_dir: str | os.PathLike[str],
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
    run, results_dir = RunPaths(Path(run_dir)), Path(results_dir)
    sources = _run_artifacts(run)
    artifacts = {name: storage.describe(path) for name, path in sources.items()}
    content = hashlib.sha256(json.dumps(artifacts, sort_keys=True).encode()).hexdigest()[:12]
    release = f"{run.root.name}-{content}"
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
            manifest = build_manifest(run, artifacts, release, run_info or {"run_id": CLI_RUN_KEY})
            storage.write_json(manifest, staging / MANIFEST)
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
    storage.write_json({"release": release, "published": True}, run.root / RELEASE_RECORD)
    logger.info("published release %s: %s", release, ", ".join(RELEASE_FILES))
    return {"release": str(release_dir), **{name: str(results_dir / name) for name in RELEASE_FILES}}


# -- reading what is published ------------------------------------------------------------------


def current_release(results_dir: str | os.PathLike[str]) -> Path:
    """The folder of the published release (resolved once, so later reads are consistent)."""
    pointer = Path(results_dir) / CURRENT
    if not pointer.is_symlink():
        raise MissingInputError(pointer, "save_results")
    return pointer.parent / os.readlink(pointer)


def run_release(run_dir: str | os.PathLike[str], results_dir: str | os.PathLike[str]) -> Path:
    """The release folder a run published (from its ``release.json``)."""
    record = storage.read_json(Path(run_dir) / RELEASE_RECORD, "save_results")
    return Path(results_dir) / RELEASES / record["release"]


def verified_files(release_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Every file of a release, each artifact checked against the release's manifest.

    Raises:
        IntegrityError: an artifact's SHA-256 or size differs from the manifest's.
    """
    release_dir = Path(release_dir)
    manifest_path = release_dir / MANIFEST
    manifest = storage.read_json(manifest_path, "save_results")
    files = {}
    for name in PUBLISHED_ARTIFACTS:
        expected = manifest["artifacts"][name]
        files[name] = storage.verify(release_dir / name, expected["sha256"], str(manifest_path))
    files[MANIFEST] = manifest_path
    return files


def load_published(results_dir: str | os.PathLike[str], name: str) -> Any:
    """Load a published pickle (``model.pkl``, ``scaler.pkl``) after checking its SHA-256
    against the manifest of the published release."""
    release = current_release(results_dir)
    manifest = storage.read_json(release / MANIFEST, "save_results")
    return storage.load_object(
        release / name, manifest["artifacts"][name]["sha256"], str(release / MANIFEST)
    )


# -- pruning ------------------------------------------------------------------------------------


def _last_write(folder: Path) -> float:
    """Newest modification time of a folder and the files directly in it."""
    return max([folder.lstat().st_mtime, *(p.lstat().st_mtime for p in folder.iterdir())])


def prune(
    results_dir: str | os.PathLike[str],
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
    results_dir = Path(results_dir)
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
        folders = [p for p in parent.iterdir() if p.is_dir() and not p.is_symlink()]
        staging = [p for p in folders if p.name.startswith(".")]
        kept = sorted((p for p in folders if p not in staging), key=_last_write, reverse=True)
        for folder in staging + kept[keep:]:
            if folder.name in protected or _last_write(folder) > cutoff:
                continue
            storage.remove_tree(folder)
            deleted.append(str(folder))
    for leftover in results_dir.glob(".*.tmp"):  # a link switch interrupted by a kill
        if leftover.lstat().st_mtime <= cutoff:
            leftover.unlink(missing_ok=True)
    if deleted:
        logger.info("pruned %d old folder(s): %s", len(deleted), ", ".join(deleted))
    return deleted


def save_results(
    run_dir: str | os.PathLike[str],
    results_dir: str | os.PathLike[str],
    run_info: Mapping[str, Any] | None = None,
    keep_runs: int = 10,
    prune_min_age: timedelta = timedelta(hours=6),
) -> dict[str, str]:
    """Publish the run, then prune old runs and releases (never this run's).

    Returns:
        what ``publish`` returns.
    """
    published = publish(run_dir, results_dir, run_info)
    prune(results_dir, keep_runs, prune_min_age,
          protect=(Path(run_dir).name, Path(published["release"]).name))
    return published


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
                            prune_min_age=timedelta(hours=settings.prune_min_age_hours))

    return cli.run(p, action, argv)


if __name__ == "__main__":
    raise SystemExit(main())
