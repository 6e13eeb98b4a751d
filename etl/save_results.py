"""Publish a finished, evaluated run if it clears the quality gate; prune old runs.

The step's work is in the modules every reader of releases shares: ``etl.gate`` decides,
``etl.releases`` publishes all or nothing (and documents the results folder's layout),
``etl.retention`` prunes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from etl import cli, inputs, storage
from etl.config import CLI_RUN_KEY, RunPaths
from etl.gate import publishable
from etl.inputs import StepInputs
from etl.releases import ensure_results_dir, publish
from etl.retention import prune
from etl.storage import Location

logger = logging.getLogger(__name__)


def save_results(
    inputs: StepInputs,
    record_path: Location,
    results_dir: Location,
    run_info: Mapping[str, Any],
    keep_runs: int,
    prune_min_age: timedelta,
) -> dict[str, Any]:
    """Publish the run if its quality gate decision (``inputs.gate``) allows it, then prune old
    runs and releases; record what was done at ``record_path`` (``release.json``).

    The decision is the ``quality_gate`` step's, made once: when it refused the model, or when
    it compared with a release that another run has replaced since, nothing is published, and
    the reason is logged and recorded.

    Returns:
        what ``publish`` returns, or ``{"published": False, "reason": ...}``.
    """
    verdict = storage.read_json(inputs.gate)
    reason = publishable(verdict, inputs.run_key, results_dir)
    if reason is not None:
        logger.warning("%s; the published model stays %s", reason, verdict["published_release"])
        storage.write_json({"published": False, "reason": reason}, record_path)
        return {"published": False, "reason": reason}
    published = publish(inputs, results_dir, run_info)
    storage.write_json({"release": storage.location(published["release"]).name, "published": True}, record_path)
    prune(results_dir, keep_runs, prune_min_age,
          protect=(inputs.run_key, storage.location(published["release"]).name))
    return published


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, settings, run = cli.parser(__doc__)
    p.add_argument("--run-dir", type=cli.path_arg, default=run.root, help="run folder to publish")
    p.add_argument(
        "--results-dir", type=cli.path_arg, default=settings.results_dir, help="publish here"
    )
    p.add_argument("--keep-runs", type=int, default=settings.retention.keep_runs,
                   help="run folders and releases to keep")

    def action(a):
        ensure_results_dir(a.results_dir)
        return save_results(inputs.of_folder("save_results", a.run_dir), RunPaths(a.run_dir).release_record,
                            a.results_dir, {"run_id": CLI_RUN_KEY}, a.keep_runs,
                            timedelta(hours=settings.retention.prune_min_age_hours))

    return cli.run(p, action, argv)


if __name__ == "__main__":
    raise SystemExit(main())
