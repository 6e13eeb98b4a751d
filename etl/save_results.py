"""Create and check the results folder, and publish a finished run's artifacts.

Publishing copies the run's ``metrics.json``, ``model.pkl`` and ``scaler.pkl`` to the top of
the results folder, where users and ``upload_results`` find them. All three are staged beside
their targets first and only then renamed into place, so a failed publish leaves the previously
published files as they were.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

from etl import cli, storage
from etl.config import PUBLISHED_ARTIFACTS
from etl.errors import ParameterError

logger = logging.getLogger(__name__)


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


def publish(
    artifacts: Mapping[str, str | os.PathLike[str]], results_dir: str | os.PathLike[str]
) -> dict[str, str]:
    """Copy ``artifacts`` (published name -> source file) to ``results_dir``, all or nothing.

    Returns:
        published name -> path of the published file.
    """
    unknown = set(artifacts) - set(PUBLISHED_ARTIFACTS)
    if unknown:
        raise ParameterError(f"not a published artifact: {', '.join(sorted(unknown))}")
    results_dir = Path(results_dir)
    sources = {name: storage.require(path) for name, path in artifacts.items()}
    with ExitStack() as stack:  # stage every copy; rename only once all succeeded
        staged = {
            name: stack.enter_context(storage.atomic_path(results_dir / name)) for name in sources
        }
        for name, tmp in staged.items():
            shutil.copy2(sources[name], tmp)
    published = {name: str(results_dir / name) for name in sources}
    logger.info("published %s to %s", ", ".join(published), results_dir)
    return published


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, settings, run = cli.parser(__doc__)
    p.add_argument("--run-dir", type=cli.path_arg, default=run.root, help="run folder to publish")
    p.add_argument(
        "--results-dir", type=cli.path_arg, default=settings.results_dir, help="publish here"
    )

    def action(a):
        ensure_results_dir(a.results_dir)
        return publish({name: a.run_dir / name for name in PUBLISHED_ARTIFACTS}, a.results_dir)

    return cli.run(p, action, argv)


if __name__ == "__main__":
    raise SystemExit(main())
