"""Releases: the results folder, publishing a run all or nothing, and reading what is published.

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

Readers of releases (``upload_results``, ``predict``, ``summary``, the quality gate) use the
functions here, never the step module ``save_results``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etl import storage
from etl.catalog import IntegrityError, MissingInputError, ParameterError, StepInputs, first_line
from etl.storage import Location, Target
from etl.storage.layout import (
    CLI_RUN_KEY,
    MANIFEST,
    PUBLISHED_ARTIFACTS,
    RELEASE_DOCUMENTS,
    RELEASE_FILES,
    ReleasePaths,
    ResultsPaths,
    RunPaths,
)

logger = logging.getLogger(__name__)

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


# -- publishing ---------------------------------------------------------------------------------


def _run_artifacts(run: StepInputs) -> dict[str, Target]:
    """The run's files to publish, by their published name, pickles verified against their
    checksums."""
    files = {path.name: path for path in (run.metrics, run.model, run.scaler)}
    for name, path in files.items():
        storage.require(path)
        if name.endswith(".pkl"):
            storage.verify(path, storage.recorded_sha256(path), str(storage.checksum_file(path)))
    return files


def release_is_intact(release_dir: Target) -> bool:
    """Whether a release folder holds every file, each matching its manifest (``verified_files``)."""
    try:
        verified_files(release_dir)
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
    run: StepInputs,
    results_dir: Location,
    run_info: Mapping[str, Any] | None = None,
    signoff: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Publish the evaluated run to ``results_dir``, all or nothing.

    Args:
        run: ``save_results``' inputs (``etl.catalog``): the artifacts, and what the manifest
            records.
        results_dir: the results folder.
        run_info: what identifies the run (DAG id, run id, logical date, start time).
        signoff: who signed the release off (``etl.releases.model_card``; default: the quality gate
            alone, ``[release] approval = "auto"``), in the manifest and the model card. The
            card (``RELEASE_DOCUMENTS``) is written for the release, with its name; the manifest
            lists it with its SHA-256; it is not part of the release's content hash.

    Returns:
        ``release`` (the release folder), ``manifest`` and each published file's path.
    """
    results_dir = storage.location(results_dir)
    sources = _run_artifacts(run)
    artifacts = {name: storage.describe(path) for name, path in sources.items()}
    content = hashlib.sha256(json.dumps(artifacts, sort_keys=True).encode()).hexdigest()[:12]
    release = f"{run.run_key}-{content}"
    from etl.releases import model_card  # (the card reads the run's records; light)

    signoff = dict(signoff) if signoff is not None else dict(model_card.AUTO)
    facts = model_card.facts_of(run, run_info or {"run_id": CLI_RUN_KEY})
    docs = {model_card.CARD: model_card.render(facts, signoff, release).encode("utf-8")}

    def manifest() -> dict[str, Any]:
        # The manifest builder reads the training rows (pandas): imported by publishing only, so
        # the readers of releases (the UI plugin, the summary) stay light.
        from etl.releases.manifest import build_manifest

        record = build_manifest(run, artifacts, release, run_info or {"run_id": CLI_RUN_KEY})
        record["documents"] = {name: {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
                               for name, body in docs.items()}
        record["signoff"] = signoff
        return record

    store_and_switch = _publish_locally if storage.is_local(results_dir) else _publish_to_object_store
    release_dir = store_and_switch(results_dir, release, sources, manifest, docs)
    names = [name for name in RELEASE_FILES if name not in RELEASE_DOCUMENTS or name in docs]
    logger.info("published release %s to %s: %s", release, storage.uri(results_dir), ", ".join(names))
    layout = ResultsPaths(results_dir)
    return {"release": str(release_dir), **{name: str(layout.top(name)) for name in names}}


def _publish_locally(
    results_dir: Path, release: str, sources: Mapping[str, Target], manifest: Callable[[], dict[str, Any]],
    documents: Mapping[str, bytes],
) -> Path:
    """``publish`` on a local folder: the release staged and renamed into place, then the
    ``current`` link switched in one rename. Returns the release folder."""
    layout = ResultsPaths(results_dir)
    releases, release_dir = layout.releases, layout.release(release).root
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
            for name, body in documents.items():
                storage.write_bytes(body, staging / name)
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
    # (Relative links, so the results folder can be moved or mounted elsewhere.)
    current = layout.current.name
    for name in RELEASE_FILES:
        if name in RELEASE_DOCUMENTS and name not in documents:
            continue
        link = layout.top(name)
        if not (link.is_symlink() and os.readlink(link) == f"{current}/{name}"):
            _symlink(f"{current}/{name}", link)
    _symlink(f"{releases.name}/{release}", layout.current)
    return release_dir


def _publish_to_object_store(
    results_dir: Target, release: str, sources: Mapping[str, Target], manifest: Callable[[], dict[str, Any]],
    documents: Mapping[str, bytes],
) -> Target:
    """``publish`` on an object store: the release's objects, its manifest last, then the one
    write of ``current.json`` that switches; then the top-level copies. Returns the release
    folder."""
    layout = ResultsPaths(results_dir)
    release_dir = layout.release(release).root
    if release_is_intact(release_dir):
        logger.info("release %s already exists (same run, same artifacts): not copied again", release)
    else:  # new, or left incomplete by an interrupted publish: (re)write it, manifest last
        for name, path in sources.items():
            storage.copy_file(path, release_dir / name)
        for name, body in documents.items():
            storage.write_bytes(body, release_dir / name)
        storage.write_json(manifest(), release_dir / MANIFEST)
    storage.write_json({"release": release}, layout.current_object)
    for name in RELEASE_FILES:
        if name in RELEASE_DOCUMENTS and name not in documents:
            continue
        storage.copy_file(release_dir / name, layout.top(name))
    return release_dir


# -- reading what is published ------------------------------------------------------------------


def current_release(results_dir: Location) -> Target:
    """The folder of the published release (resolved once, so later reads are consistent)."""
    layout = ResultsPaths(storage.location(results_dir))
    if not storage.is_local(layout.root):
        record = storage.read_json(layout.current_object)
        return layout.release(record["release"]).root
    pointer = layout.current
    if not pointer.is_symlink():
        raise MissingInputError(pointer)  # (the catalog names its producer)
    return pointer.parent / os.readlink(pointer)


def publishable(verdict: dict[str, Any], run_key: str, results_dir: Location) -> str | None:
    """Why the run may not be published on its gate decision ``verdict``, or None if it may:
    the gate refused it, or it was compared with a release that is no longer the published one
    (another run published since; the decision is not made again here: rerun quality_gate)."""
    if not verdict["passed"]:
        return refusal(verdict)
    try:
        current = current_release(results_dir)
    except MissingInputError:
        current = None
    if current is None or ReleasePaths(current).run_key == run_key:
        return None  # nothing published, or this run's own release (a rerun)
    if verdict.get("published_release") != current.name:
        compared = verdict.get("published_release") or "no published model"
        return (f"not published: the quality gate compared this model with {compared}, and {current.name} was "
                f"published since; to publish it, run quality_gate again (in the UI: Clear quality_gate with its "
                f"downstream tasks), which compares it with {current.name}")
    return None


def refusal(verdict: dict[str, Any]) -> str:
    """The one-line reason a verdict refuses publishing."""
    failed = "; ".join(f"{c['check']}: {c['value']:.4f} {'>=' if c.get('passes_if') == '<' else '<'} "
                       f"{c['limit']:.4f}" for c in verdict["checks"] if not c["passed"])
    return f"quality gate: not published ({failed})"


def run_release(run_dir: Location, results_dir: Location) -> Target | None:
    """The release folder a run published (from its ``release.json``); ``None`` when the
    quality gate kept the run from being published."""
    return recorded_release(RunPaths(storage.location(run_dir)).release_record, results_dir)


def recorded_release(record_path: Location, results_dir: Location) -> Target | None:
    """The release folder a ``release.json`` at ``record_path`` names; ``None`` when it says
    nothing was published."""
    record = storage.read_json(record_path)
    if not record["published"]:
        return None
    return ResultsPaths(storage.location(results_dir)).release(record["release"]).root


def verified_files(release_dir: Location) -> dict[str, Target]:
    """Every file of a release, each artifact checked against the release's manifest.

    Raises:
        IntegrityError: an artifact's SHA-256 or size differs from the manifest's.
    """
    release = ReleasePaths(storage.location(release_dir))
    manifest_path = release.manifest
    manifest = storage.read_json(manifest_path)
    files = {}
    for name in PUBLISHED_ARTIFACTS:
        expected = manifest["artifacts"][name]
        files[name] = storage.verify(release.file(name), expected["sha256"], str(manifest_path))
    for name, expected in (manifest.get("documents") or {}).items():  # releases before the model card: none
        files[name] = storage.verify(release.file(name), expected["sha256"], str(manifest_path))
    files[MANIFEST] = manifest_path
    return files


def load_from_release(release_dir: Location, name: str, manifest: Mapping[str, Any] | None = None) -> Any:
    """Load a release's pickle (``model.pkl``, ``scaler.pkl``) after checking its SHA-256
    against the release's manifest (read unless given)."""
    release = ReleasePaths(storage.location(release_dir))
    manifest = manifest or storage.read_json(release.manifest)
    return storage.load_object(
        release.file(name), manifest["artifacts"][name]["sha256"], str(release.manifest)
    )


def load_published(results_dir: Location, name: str) -> Any:
    """Load a pickle of the published release, checked against its manifest."""
    return load_from_release(current_release(results_dir), name)


@dataclass(frozen=True)
class Release:
    """A release loaded for scoring: its manifest, and its model and scaler checked against it."""

    paths: ReleasePaths
    manifest: dict[str, Any]
    model: Any
    scaler: Any

    @property
    def name(self) -> str:
        return self.paths.name

    @property
    def threshold(self) -> float:
        """The decision threshold the release was published with."""
        return float(self.manifest["model"]["threshold"])

    def probabilities(self, rows: Any) -> Any:
        """Probabilities of malignancy for raw ``rows`` (``load_data``'s columns), through the
        release's own preprocessing."""
        from etl.data.schema import FEATURE_COLUMNS
        from etl.modeling.procedure import malignant_probability

        return malignant_probability(self.model, self.scaler.transform(rows[list(FEATURE_COLUMNS)]))


def open_release(release_dir: Location | None = None, results_dir: Location | None = None) -> Release:
    """Load ``release_dir``, or the published release of ``results_dir``, hash-checked."""
    if release_dir is None:
        if results_dir is None:
            raise ValueError("open_release needs a release folder or a results folder")
        release_dir = current_release(results_dir)
    paths = ReleasePaths(storage.location(release_dir))
    manifest = storage.read_json(paths.manifest)
    return Release(paths, manifest, load_from_release(paths.root, paths.model.name, manifest),
                   load_from_release(paths.root, paths.scaler.name, manifest))

