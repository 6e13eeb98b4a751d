"""The ``quality_gate`` step from the command line: decide whether an evaluated run may be
published and write its ``gate.json`` (``python -m etl.quality_gate``).

The decision itself is ``etl.releases.gate`` (see its docstring for every check); ``save_results``
publishes by it and never decides again.
"""

from __future__ import annotations

from etl import runner
from etl.releases.gate import check_run
from etl.storage.layout import RunPaths


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, settings, run = runner.parser(__doc__)
    p.add_argument("--run-dir", type=runner.path_arg, default=run.root, help="evaluated run folder")
    p.add_argument("--results-dir", type=runner.path_arg, default=settings.results_dir,
                   help="results folder whose published release the run is compared with")
    return runner.run(p, lambda a: check_run(runner.of_folder("quality_gate", a.run_dir), RunPaths(a.run_dir).gate,
                                          a.results_dir, settings.gate), argv)


if __name__ == "__main__":
    raise SystemExit(main())
