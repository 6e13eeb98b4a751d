"""Upload the published artifacts of a run to its destination.

The destination is ``upload_uri`` from the settings (``UPLOAD_URI`` overrides it): a local
folder, as a plain path or a ``file://`` URI. Each run goes to ``<destination>/<run key>/``;
uploading the same run again replaces its files. The local results are only read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from etl import cli, storage
from etl.config import CLI_RUN_KEY, PUBLISHED_ARTIFACTS
from etl.errors import ParameterError

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
    files: Mapping[str, str | os.PathLike[str]], destination: str, run_key: str
) -> dict[str, str]:
    """Copy ``files`` (name -> local path) to ``<destination>/<run_key>/<name>``.

    Every copy is checked against its source's size.

    Returns:
        name -> uploaded location.
    """
    target = local_destination(destination) / run_key
    uploaded = {}
    for name, src in files.items():
        dst = storage.copy_file(src, target / name)
        if dst.stat().st_size != Path(src).stat().st_size:
            raise OSError(f"upload of {name} to {dst}: size differs from {src}")
        uploaded[name] = str(dst)
    logger.info("uploaded %d file(s) to %s", len(uploaded), target)
    return uploaded


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, settings, _ = cli.parser(__doc__)
    p.add_argument(
        "--results-dir", type=cli.path_arg, default=settings.results_dir,
        help="folder holding the published artifacts",
    )
    p.add_argument("--destination", default=settings.upload_uri, help="folder or file:// URI")
    p.add_argument("--run-key", default=CLI_RUN_KEY, help="sub-folder of the destination")
    return cli.run(
        p,
        lambda a: upload_results(
            {name: a.results_dir / name for name in PUBLISHED_ARTIFACTS}, a.destination, a.run_key
        ),
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
