"""The ``quality_gate`` step from the command line: decide whether an evaluated run may be
published and write its ``gate.json`` (``python -m etl.quality_gate``).

The decision itself is ``etl.releases.gate`` (see its docstring for every check); ``save_results``
publishes by it and never decides again.
"""

from __future__ import annotations

from etl import runner
from etl.releases.gate import check_run
from etl.runner import Option, Outputs, Run, Step


def _quality_gate(run: Run) -> Outputs:
    """``check_run`` against the published release with ``[gate]``."""
    return check_run(run.inputs("quality_gate"), run.folder.gate, run.settings.results_dir, run.settings.gate)


STEPS = {"quality_gate": Step("quality_gate", _quality_gate, (
    Option("--results-dir", "paths", "results_dir", "results folder whose published release it compares with"),))}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: the DAG's task on a run folder (``etl.runner.main``)."""
    return runner.main(STEPS, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
