"""Upload the release a run published (artifacts and manifest) to its destination.

The destination is ``upload_uri`` from the settings (``UPLOAD_URI`` overrides it): a local
folder, as a plain path or a ``file://`` URI. Each run goes to ``<destination>/<run key>/``;
uploading the same run again replaces its files. The local results are only read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from etl import cli, storage
from etl.config import CLI_RUN_KEY
from etl.errors import ParameterError
from etl.save_results import current_release, verified_files

logger = logging.getLogger(__name__)


def local_destination(uri: str) -> Path:
    """The folder a plain path or ``file://`` URI names.

    Raises:
        ParameterError: for any other scheme.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if "://" in uri:
        raise ParameterError(f"upload destination {uri!r}: unsupported scheme {parsed.scheme!r}")
    return Path(uri).expanduser()


def upload_results(
    release_dir: str | os.PathLike[str], destination: str, run_key: str
) -> dict[str, str]:
    """Copy a published release (artifacts and manifest) to ``<destination>/<run_key>/``.

    Each artifact is checked against the release's manifest before it is sent (a changed file
    is refused, not uploaded), and each copy is checked against its source's SHA-256.

    Returns:
        file name -> uploaded location.
    """
    target = local_destination(destination) / run_key
    uploaded = {}
    for name, src in verified_files(release_dir).items():
        dst = storage.copy_file(src, target / name)
        storage.verify(dst, storage.sha256(src), f"the published {name}")
        uploaded[name] = str(dst)
    logger.info("uploaded %d file(s) of release %s to %s", len(uploaded), Path(release_dir).name, target)
    return uploaded


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, settings, _ = cli.parser(__doc__)
    p.add_argument(
        "--release", type=cli.path_arg, default=None,
        help="release folder to upload (default: the published one, results/current)",
    )
    p.add_argument("--destination", default=settings.upload_uri, help="folder or file:// URI")
    p.add_argument("--run-key", default=CLI_RUN_KEY, help="sub-folder of the destination")
    return cli.run(
        p,
        lambda a: upload_results(
            a.release or current_release(settings.results_dir), a.destination, a.run_key
        ),
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
