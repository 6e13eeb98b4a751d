"""The release reader: what is published, and a release's files, each read once and verified
against the release's signature before anything uses it (``etl.releases.signing``).

Every reader of releases goes through here: the quality gate, ``predict``, ``score`` and the
scoring DAG, the outcomes loop, ``upload_results``, the UI and ``make run``'s summary. A release
that does not verify (unsigned, signed by a key that is not trusted, a file changed, missing or
added, or a ``current`` pointer to such a folder) is refused with one line naming the release
and what failed, and nothing of it is used: no model is ever unpickled, the model and scaler
are built from their skops files' verified bytes (``etl.storage.objects``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from etl import storage
from etl.catalog import IntegrityError, MissingInputError
from etl.settings import load_settings
from etl.storage import Location, Target
from etl.storage.layout import MANIFEST, MODEL_FILES, SIGNATURE, ReleasePaths, ResultsPaths, RunPaths

if TYPE_CHECKING:
    from securesystemslib.signer import Key

#: Trusted public keys by fingerprint (``etl.releases.signing.trusted_keys``).
Keys = Mapping[str, "Key"]


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


@dataclass(frozen=True)
class SignedRelease:
    """Every file of a release, read once and verified against its signature (``read_release``)."""

    paths: ReleasePaths
    files: dict[str, bytes]
    signer: str  # the fingerprint of the key that signed it

    @property
    def name(self) -> str:
        return self.paths.name

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.files[MANIFEST])

    def json(self, name: str) -> Any:
        """One of the release's JSON files."""
        return json.loads(self.files[name])


def read_release(release_dir: Location, keys: Keys | None = None) -> SignedRelease:
    """Read every file of a release once and verify it (``etl.releases.signing.verify``): signed
    by a trusted key (``keys``; default ``[release] trusted_keys``), as this release, with no file
    missing, changed or added.

    Raises:
        IntegrityError: one line naming the release and what failed.
        MissingInputError: the release folder does not exist.
    """
    from etl.releases import signing

    paths = ReleasePaths(storage.location(release_dir))
    if keys is None:
        keys = signing.trusted_keys(load_settings().release.trusted_keys)
    entries = list(paths.root.iterdir()) if paths.root.exists() else []
    if not entries:
        raise MissingInputError(paths.manifest)  # (the catalog names its producer)
    files, odd = {}, []
    for entry in entries:
        if entry.is_file() and not entry.is_symlink():
            files[entry.name] = storage.read_bytes(entry)
        else:
            odd.append(entry.name)
    if odd:  # a folder or a link inside a release: never written by publish
        raise IntegrityError(f"release {paths.name}: holds what publishing never writes ({', '.join(sorted(odd))}); "
                             "refusing to use it")
    signature = files.pop(SIGNATURE, None)
    signer = signing.verify(files, signature, paths.name, keys)
    return SignedRelease(paths, files, signer)


def verified_files(release_dir: Location, keys: Keys | None = None) -> dict[str, Target]:
    """Every file of a release, by name, after ``read_release`` verified the release.

    Raises:
        IntegrityError: the release does not verify.
    """
    release = read_release(release_dir, keys)
    return {name: release.paths.root / name for name in (*release.files, SIGNATURE)}


def release_is_intact(release_dir: Target, keys: Keys | None = None) -> bool:
    """Whether a release folder verifies (``read_release``)."""
    try:
        read_release(release_dir, keys)
    except (IntegrityError, MissingInputError):
        return False
    return True


@dataclass(frozen=True)
class Release:
    """A release loaded for scoring: verified (``read_release``), its model and scaler loaded from
    their skops files (trusted types only)."""

    paths: ReleasePaths
    manifest: dict[str, Any]
    model: Any
    scaler: Any
    signer: str

    @property
    def name(self) -> str:
        return self.paths.name

    @property
    def threshold(self) -> float:
        """The decision threshold the release was published with: below it a case is called benign."""
        return float(self.manifest["model"]["threshold"])

    @property
    def scope(self) -> dict[str, Any]:
        """Which cases the release may answer for (``etl.data.scope``)."""
        return self.manifest["scope"]

    @property
    def malignant_threshold(self) -> float:
        """At or above it a case is called malignant; between the two, referred (``etl.modeling.thresholds``)."""
        return float(self.manifest["model"]["malignant_threshold"])

    def probabilities(self, rows: Any) -> Any:
        """Probabilities of malignancy for raw ``rows`` (``load_data``'s columns), through the
        release's own preprocessing."""
        from etl.data.schema import FEATURE_COLUMNS
        from etl.modeling.procedure import malignant_probability

        return malignant_probability(self.model, self.scaler.transform(rows[list(FEATURE_COLUMNS)]))


def open_release(release_dir: Location | None = None, results_dir: Location | None = None,
                 keys: Keys | None = None) -> Release:
    """Load ``release_dir``, or the published release of ``results_dir``: verified
    (``read_release``), then its model and scaler built from the verified bytes of their skops
    files (``etl.storage.objects``). Never unpickles anything."""
    from etl.storage.objects import loads

    if release_dir is None:
        if results_dir is None:
            raise ValueError("open_release needs a release folder or a results folder")
        release_dir = current_release(results_dir)
    signed = read_release(release_dir, keys)
    model, scaler = (loads(signed.files[name], f"release {signed.name}: {name}") for name in MODEL_FILES)
    return Release(signed.paths, signed.manifest, model, scaler, signed.signer)


def main(argv: list[str] | None = None) -> int:
    """``python -m etl.releases.reader [RELEASE] [--key PUBLIC_KEY.pem ...]``: verify a release
    folder (default: the published one) before loading its ``model.pkl`` by hand; one line, and
    exit status 1 when it does not verify."""
    import argparse
    import sys
    from pathlib import Path

    from etl.catalog import PipelineError
    from etl.releases.signing import trusted_keys

    p = argparse.ArgumentParser(prog="python -m etl.releases.reader", description=main.__doc__)
    p.add_argument("release", nargs="?", help="release folder (default: the published one, results/current)")
    p.add_argument("--key", action="append", type=Path,
                   help="a trusted public key (PEM; repeat for several; default: [release] trusted_keys)")
    a = p.parse_args(argv)
    settings = load_settings()
    try:
        folder = a.release or current_release(settings.results_dir)
        release = read_release(folder, trusted_keys(a.key or settings.release.trusted_keys))
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"release {release.name}: verified, signed with key {release.signer}; "
          f"{len(release.files) + 1} files: {', '.join(sorted([*release.files, SIGNATURE]))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
