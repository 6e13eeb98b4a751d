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
from etl.gate import Gate, gate_from, quality_gate
from etl.releases import RELEASE_RECORD, ensure_results_dir, publish
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
    """Publish the run if it clears the quality gate, then prune old runs and releases.

    When the gate refuses the model, nothing is published: the reason is logged and recorded
    in the run's ``gate.json`` and ``release.json``.

    Returns:
        what ``publish`` returns, or ``{"published": False, "reason": ...}``.
    """
    run = RunPaths(storage.location(run_dir))
    verdict = quality_gate(run, storage.location(results_dir), gate or Gate())
    storage.write_json(verdict, run.root / "gate.json")
    if not verdict["passed"]:
        failed = "; ".join(f"{c['check']}: {c['value']:.4f} < {c['limit']:.4f}"
                           for c in verdict["checks"] if not c["passed"])
        reason = f"quality gate: not published ({failed})"
        logger.warning("%s; the published model stays %s", reason, verdict["published_release"])
        storage.write_json({"published": False, "reason": reason}, run.root / RELEASE_RECORD)
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

