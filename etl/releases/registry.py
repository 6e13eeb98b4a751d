"""Releases: the results folder, publishing a run all or nothing, and reading what is published.

The results folder::

    results/
      metrics.json  -> current/metrics.json     what users and tools open (symbolic links)
      model.pkl     -> current/model.pkl
      scaler.pkl    -> current/scaler.pkl
      model_card.md -> current/model_card.md
      manifest.json -> current/manifest.json
      current       -> published/<release>      the one pointer saying what is published
      published/<release>/                      a published release; never changed once written:
        metrics.json, model.pkl, scaler.pkl       what users open (the pickles for joblib users)
        model.skops, scaler.skops                 the same model and scaler, what the pipeline loads
        model_card.md, manifest.json              the release's documents
        release.sig                               every other file, signed (etl.releases.signing)
      runs/<run key>/                           every file of one run

Publishing checks the run's model and scaler against their checksums and loads them (skops,
trusted types only), pickles them for users, writes the release folder with its
``manifest.json`` (SHA-256 and size of each artifact, the input data's hash and row count, every
parameter, library versions, code revision, run id and times, the signing key) and its
signature, then renames a new ``current`` link over the old one. Up to that rename nothing published has
changed; after it, all four files are the new ones. A failure at any point (an exception, a
killed process, a full disk) leaves the previous release published, byte for byte, and readers
never see files of two releases mixed.

On an object store (``results_dir = "s3://bucket/prefix"``, the shared artifact root of a
cluster) there are no links or renames. A release's objects are written first, its
``release.sig`` last (a release whose signature does not verify is incomplete and is rewritten),
then one object, ``current.json`` (``{"release": "<release>"}``), is replaced: that single
write is the switch, and ``open_release`` and the quality gate read through it. The top-level
``metrics.json``, ``model.pkl``, ``scaler.pkl`` and ``manifest.json`` are copies of the
release's files made after the switch, each object complete but the four not switched together;
check them against ``manifest.json``, or read through ``current.json`` when that matters.

A release is named ``<run key>-<content hash>``: publishing the same run again with the same
artifacts (a rerun) reuses its release instead of writing another.

Readers of releases (``upload_results``, ``predict``, ``score``, the outcomes loop, the UI, the
quality gate) use ``read_release`` and ``open_release`` here, never the step module
``save_results``: each file of a release is read once, checked against its signature with the
trusted keys, and only then used; a release that does not verify is refused in one line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from etl import storage
from etl.catalog import IntegrityError, MissingInputError, ParameterError, StepInputs, first_line
from etl.releases.reader import Keys, current_release, release_is_intact
from etl.settings import ReleaseSettings, load_settings
from etl.storage import Location, Target
from etl.storage.layout import (
    CLI_RUN_KEY,
    MANIFEST,
    PICKLES,
    RELEASE_DOCUMENTS,
    RELEASE_FILES,
    RUN_ARTIFACTS,
    SIGNATURE,
    TOP_FILES,
    ReleasePaths,
    ResultsPaths,
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


def _release_contents(run: StepInputs) -> dict[str, bytes]:
    """The run's files a release carries, by their published name: its metrics, its model and
    scaler as skops files (checked against their checksums and loaded, trusted types only) and
    as joblib pickles made from what was loaded."""
    from etl.storage.objects import loads, pickle_bytes

    pickle_of = {skops: pickle for pickle, skops in PICKLES.items()}
    contents = {storage.location(run.metrics).name: storage.read_bytes(storage.require(run.metrics))}
    for path in (run.model, run.scaler):
        name = storage.location(path).name
        contents[name] = storage.checked_bytes(path)
        contents[pickle_of[name]] = pickle_bytes(loads(contents[name], path))
    return contents


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
    release_settings: ReleaseSettings | None = None,
) -> dict[str, str]:
    """Publish the evaluated run to ``results_dir``, all or nothing, signed.

    Args:
        run: ``save_results``' inputs (``etl.catalog``): the artifacts, and what the manifest
            records.
        results_dir: the results folder.
        run_info: what identifies the run (DAG id, run id, logical date, start time).
        signoff: who signed the release off (``etl.releases.model_card``; default: the quality gate
            alone, ``[release] approval = "auto"``), in the manifest and the model card. The
            card (``RELEASE_DOCUMENTS``) is written for the release, with its name; the manifest
            lists it with its SHA-256; it is not part of the release's content hash.
        release_settings: ``[release]``: the signing key and the trusted keys (default: the configured).

    Returns:
        ``release`` (the release folder) and each file published at the top of the results folder.

    Raises:
        ParameterError: the signing key is not among the trusted keys.
    """
    from etl.releases import model_card, signing
    from etl.releases.manifest import build_manifest  # (pandas: publishing only; readers stay light)

    keys = release_settings or load_settings().release
    results_dir = storage.location(results_dir)
    contents = _release_contents(run)
    artifacts = {name: {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
                 for name, body in contents.items()}
    content = hashlib.sha256(json.dumps({n: artifacts[n] for n in RUN_ARTIFACTS},
                                        sort_keys=True).encode()).hexdigest()[:12]
    release = f"{run.run_key}-{content}"
    signing.ensure_signing_key(keys.signing_key)  # first: on a fresh machine its .pub is the trusted key
    trusted = signing.trusted_keys(keys.trusted_keys)
    signer = signing.fingerprint(signing.private_key(keys.signing_key).public_key())

    signoff = dict(signoff) if signoff is not None else dict(model_card.AUTO)
    facts = model_card.facts_of(run, run_info or {"run_id": CLI_RUN_KEY})
    files = {**contents, model_card.CARD: model_card.render(facts, signoff, release, signer).encode("utf-8")}
    record = build_manifest(run, artifacts, release, run_info or {"run_id": CLI_RUN_KEY})
    record["documents"] = {name: {"sha256": hashlib.sha256(files[name]).hexdigest(), "bytes": len(files[name])}
                           for name in RELEASE_DOCUMENTS}
    record["signoff"] = signoff
    record["signing"] = {"key": signer, "signature": SIGNATURE, "format": signing.FORMAT}
    files[MANIFEST] = storage.json_bytes(record)
    files[SIGNATURE], _ = signing.sign(files, release, keys.signing_key, trusted)

    store_and_switch = _publish_locally if storage.is_local(results_dir) else _publish_to_object_store
    release_dir = store_and_switch(results_dir, release, files, trusted)
    logger.info("published release %s to %s, signed by key %s...: %s", release, storage.uri(results_dir),
                signer[:16], ", ".join(RELEASE_FILES))
    layout = ResultsPaths(results_dir)
    return {"release": str(release_dir), **{name: str(layout.top(name)) for name in TOP_FILES}}


def _publish_locally(results_dir: Path, release: str, files: Mapping[str, bytes], trusted: Keys) -> Path:
    """``publish`` on a local folder: the release staged and renamed into place, then the
    ``current`` link switched in one rename. Returns the release folder."""
    layout = ResultsPaths(results_dir)
    releases, release_dir = layout.releases, layout.release(release).root
    if release_dir.is_dir() and release_is_intact(release_dir, trusted):
        logger.info("release %s already exists (same run, same artifacts): not copied again", release)
    else:
        if release_dir.exists():
            raise IntegrityError(
                f"{release_dir} exists but does not verify against its signature; delete it and rerun save_results"
            )
        releases.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{release}-", dir=releases))
        try:
            for name, body in files.items():
                storage.write_bytes(body, staging / name)
            try:
                os.rename(staging, release_dir)
            except OSError:  # published at the same moment by a rerun of this run: use that one
                if not release_is_intact(release_dir, trusted):
                    raise
        finally:
            storage.remove_tree(staging)

    # The links at the top of results/ go through `current`: make them first (they show the
    # old release until the switch), then switch `current` in one rename.
    # (Relative links, so the results folder can be moved or mounted elsewhere.)
    current = layout.current.name
    for name in TOP_FILES:
        link = layout.top(name)
        if not (link.is_symlink() and os.readlink(link) == f"{current}/{name}"):
            _symlink(f"{current}/{name}", link)
    _symlink(f"{releases.name}/{release}", layout.current)
    return release_dir


def _publish_to_object_store(results_dir: Target, release: str, files: Mapping[str, bytes], trusted: Keys) -> Target:
    """``publish`` on an object store: the release's objects, its signature last, then the one
    write of ``current.json`` that switches; then the top-level copies. Returns the release
    folder."""
    layout = ResultsPaths(results_dir)
    release_dir = layout.release(release).root
    if release_is_intact(release_dir, trusted):
        logger.info("release %s already exists (same run, same artifacts): not copied again", release)
    else:  # new, or left incomplete by an interrupted publish: (re)write it, the signature last
        for name, body in files.items():
            if name != SIGNATURE:
                storage.write_bytes(body, release_dir / name)
        storage.write_bytes(files[SIGNATURE], release_dir / SIGNATURE)
    storage.write_json({"release": release}, layout.current_object)
    for name in TOP_FILES:
        storage.copy_file(release_dir / name, layout.top(name))
    return release_dir


# -- reading what is published ------------------------------------------------------------------


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
