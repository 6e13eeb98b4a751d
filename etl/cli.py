"""Shared plumbing for the ``python -m etl.<step>`` entry points."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from etl.config import CLI_RUN_KEY, RunPaths, Settings, load_settings
from etl.errors import PipelineError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parser(description: str | None) -> tuple[argparse.ArgumentParser, Settings, RunPaths]:
    """An argument parser for a step, with the settings and the CLI run folder for its defaults.

    The CLI run folder is ``<results_dir>/runs/cli``, so running the steps one after another with
    no arguments chains them, like the DAG does.
    """
    settings = load_settings()
    run = settings.layout.run(CLI_RUN_KEY)
    p = argparse.ArgumentParser(
        description=(description or "").strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p, settings, run


def run(
    p: argparse.ArgumentParser,
    action: Callable[[argparse.Namespace], dict[str, Any]],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv``, run ``action`` and print what it wrote as JSON on stdout.

    A ``PipelineError`` (bad data, missing input, bad parameter) is printed as one line on
    stderr, without a traceback, and gives exit status 1.
    """
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
    try:
        outputs = action(args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(outputs, indent=2, default=str))
    return 0


def path_arg(value: str) -> Path:
    """argparse type for paths: resolved against the current directory."""
    return Path(value).expanduser().resolve()
