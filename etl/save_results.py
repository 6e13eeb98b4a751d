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

from etl import cli, storage
from etl.config import RunPaths
from etl.gate import Gate, check_run, current_verdict, gate_from, refusal
from etl.releases import ensure_results_dir, publish
from etl.retention import prune
from etl.storage import Location

logger = logging.getLogger(__name__)


def save_results(
    run_dir: Location,
    results_dir: Location,
    run_info: Mapping[str, Any] | None = None,
    keep_runs: int = 10,
    prune_min_age: timedelta = timedelta(hours=6),
    gate: Gate | None = None,
) -> dict[str, Any]:
    """Publish the run if it cleared the quality gate, then prune old runs and releases.

    The gate's decision is the run's ``gate.json`` (the ``quality_gate`` step), checked again
    when it is missing or another release was published since. When the gate refused the
    model, nothing is published: the reason is logged and recorded in ``release.json``.

    Returns:
        what ``publish`` returns, or ``{"published": False, "reason": ...}``.
    """
    run = RunPaths(storage.location(run_dir))
    gate = gate or Gate()
    if not storage.exists(run.gate):
        check_run(run.root, results_dir, gate)
    verdict = current_verdict(run, results_dir, gate)
    if not verdict["passed"]:
        reason = refusal(verdict)
        logger.warning("%s; the published model stays %s", reason, verdict["published_release"])
        storage.write_json({"published": False, "reason": reason}, run.release_record)
        return {"published": False, "reason": reason}
    published = publish(run_dir, results_dir, run_info)
    prune(results_dir, keep_runs, prune_min_age,
          protect=(run.root.name, storage.location(published["release"]).name))
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
                            prune_min_age=timedelta(hours=settings.prune_min_age_hours),
                            gate=gate_from(settings))

    return cli.run(p, action, argv)


if __name__ == "__main__":
    raise SystemExit(main())

